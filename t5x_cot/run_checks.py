"""Up-front checks of a run's numbers (steps, periods, batch size, lengths), before anything runs.

Each failure is one line naming the gin macro or field and what is expected, so a bad value
never reaches TensorFlow (a zero length crashes its packing op) or the train loop (a negative
TRAIN_STEPS used to train nothing and exit 0).
"""
from __future__ import annotations

import numbers
from collections.abc import Mapping
from typing import Any

from t5x_cot.errors import UserError


class RunConfigError(UserError, ValueError):
    """A run setting with a value the run cannot use; the message names it."""


def require_int(value: Any, name: str, minimum: int, *, optional: bool = False,
                error: type[UserError] = RunConfigError) -> int | None:
    """`value` as an int >= `minimum` (None allowed when `optional`), else `error` naming `name`."""
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        expected = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise error(f"{name}={value!r}: expected {expected}{' or None' if optional else ''}")
    return int(value)


def check_feature_lengths(lengths: Any, name: str, required: tuple[str, ...] = (),
                          error: type[UserError] = RunConfigError) -> None:
    """`lengths` is None or a mapping of feature name -> positive int holding `required`."""
    if lengths is None and not required:
        return
    if not isinstance(lengths, Mapping):
        raise error(f"{name}={lengths!r}: expected a dict such as {{'inputs': 512, 'targets': 512}}")
    missing = [key for key in required if key not in lengths]
    if missing:
        raise error(f"{name}={dict(lengths)!r}: missing {', '.join(repr(key) for key in missing)}")
    for key, value in lengths.items():
        require_int(value, f"{name}[{key!r}]", 1, error=error)


def check_train_args(*, total_steps: Any, relative_steps: Any, checkpoint_period: Any, checkpoint_keep: Any,
                     eval_period: Any, eval_steps: Any, log_every: Any, num_microbatches: Any,
                     batch_size: int) -> None:
    """The step counts and periods of `t5x_cot.train.train`, named by the gin macros that set them."""
    if total_steps is None and relative_steps is None:
        raise RunConfigError("set TRAIN_STEPS (absolute) or TRAIN_STEPS_RELATIVE")
    require_int(total_steps, "TRAIN_STEPS (train.total_steps)", 0, optional=True)
    require_int(relative_steps, "TRAIN_STEPS_RELATIVE (train.relative_steps)", 0, optional=True)
    require_int(checkpoint_period, "CheckpointConfig.period", 1)
    require_int(checkpoint_keep, "CheckpointConfig.keep", 1, optional=True)
    require_int(eval_period, "EVAL_PERIOD (train.eval_period, 0 or None: never)", 0, optional=True)
    if eval_period:
        require_int(eval_steps, "EVAL_STEPS (train.eval_steps)", 1)
    require_int(log_every, "train.log_every", 1)
    microbatches = require_int(num_microbatches, "train.num_microbatches", 1, optional=True) or 1
    if batch_size % microbatches:
        raise RunConfigError(f"train.num_microbatches={microbatches}: expected a divisor of BATCH_SIZE "
                             f"{batch_size}")
