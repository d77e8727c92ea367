"""T5X's `t5x.trainer`: `Trainer` (`trainer_cls = @trainer.Trainer`) and the `train.actions`."""
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from t5x_cot.t5x_compat import UnsupportedT5XFeature


class Trainer:
    """What T5X's `trainer.Trainer` bindings set: the learning-rate schedule and gradient
    accumulation (`num_microbatches`; None or 1: none). The jitted step is t5x_cot's Trainer."""

    def __init__(self, *, learning_rate_fn: Callable[[Any], Any] | None = None,
                 num_microbatches: int | None = None) -> None:
        self.learning_rate_fn = learning_rate_fn
        self.num_microbatches = num_microbatches or 1


@dataclasses.dataclass(frozen=True)
class TerminateOnNanAction:
    """T5X's `trainer.TerminateOnNanAction(task, metric='loss')`, in `train.actions`: training
    stops at the first step whose loss is not finite."""

    task: str
    metric: str = "loss"


class EarlyStoppingAction:
    """T5X's `trainer.EarlyStoppingAction`: not available (refused when built)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise UnsupportedT5XFeature(
            "trainer.EarlyStoppingAction is not available: set TRAIN_STEPS and evaluate the saved "
            "checkpoints with python -m t5x_cot.eval (RestoreCheckpointConfig.mode = 'all')")


ACTION_MODES = ("TRAIN", "TRAIN_EVAL", "INFER_EVAL")


def terminate_on_nan(actions: Mapping[str, Sequence[Any]] | None) -> bool:
    """Whether T5X's `train.actions` ask to stop on NaN; any other action is refused."""
    found = False
    for mode, mode_actions in (actions or {}).items():
        if mode not in ACTION_MODES:
            raise UnsupportedT5XFeature(f"train.actions: unknown mode {mode!r}; expected one of {', '.join(ACTION_MODES)}")
        for action in mode_actions:
            if not isinstance(action, TerminateOnNanAction):
                raise UnsupportedT5XFeature(f"train.actions[{mode!r}]: {type(action).__name__} is not available; "
                                            "trainer.TerminateOnNanAction is")
            if action.metric != "loss":
                raise UnsupportedT5XFeature(f"trainer.TerminateOnNanAction.metric={action.metric!r}: "
                                            "training stops on a non-finite 'loss'")
            found = True
    return found
