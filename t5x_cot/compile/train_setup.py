"""What a run's jitted train step is made of (built by `run_config.train_setup`)."""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

T5X_PRECOMPILE_LEARNING_RATE = 1e-3  # T5X's precompile traces its step at this constant rate


@dataclasses.dataclass
class TrainSetup:
    """What the jitted train step of a run is made of."""

    model: Any
    partitioner: Any
    optimizer: Any
    learning_rate_fn: Callable[[Any], Any] | None
    num_microbatches: int
    input_shapes: dict[str, tuple[int, ...]]
    seed: int
    entry: str

    def trainer(self) -> Any:
        """The `t5x_cot.trainer.Trainer` that `train` builds for this run."""
        from t5x_cot.trainer import Trainer

        return Trainer(self.model, self.optimizer, self.partitioner, self.input_shapes,
                       learning_rate_fn=self.learning_rate_fn, num_microbatches=self.num_microbatches, seed=self.seed)
