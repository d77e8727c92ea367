"""T5X's `t5x.trainer`: `Trainer`, bound in gin as `trainer_cls = @trainer.Trainer`."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any


class Trainer:
    """What T5X's `trainer.Trainer` bindings set: the learning-rate schedule and gradient
    accumulation (`num_microbatches`; None or 1: none). The jitted step is t5x_cot's Trainer."""

    def __init__(self, *, learning_rate_fn: Callable[[Any], Any] | None = None,
                 num_microbatches: int | None = None) -> None:
        self.learning_rate_fn = learning_rate_fn
        self.num_microbatches = num_microbatches or 1
