"""T5X's `t5x.examples.t5.network`: `T5Config` and `Transformer` over t5x_cot's network.

`T5Config` is t5x_cot's own (same field names as T5X's), so `network.T5Config` bindings in a
T5X model file configure one class whether or not the file enables dynamic registration.
"""
from __future__ import annotations

from t5x_cot.model.network import T5Config

__all__ = ["T5Config", "Transformer"]


class Transformer:
    """T5X's `network.Transformer(config)`: carries the config into `models.EncoderDecoderModel`."""

    def __init__(self, config: T5Config) -> None:
        self.config = config
