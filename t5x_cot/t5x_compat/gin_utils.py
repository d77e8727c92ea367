"""T5X's `t5x.gin_utils`: `summarize_gin_config`."""
from __future__ import annotations

from typing import Any

from t5x_cot import gin_utils


def summarize_gin_config(model_dir: str, summary_writer: Any = None, step: int = 0) -> None:
    """Write the operative gin config to MODEL_DIR/config.gin (and to TensorBoard text when a
    writer with `text(step, tag, value)` is given)."""
    gin_utils.write_operative_config(model_dir)
    if summary_writer is not None:
        summary_writer.text(step, "gin/train", gin_utils.gin.operative_config_str())
