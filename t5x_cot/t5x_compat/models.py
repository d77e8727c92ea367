"""T5X's `t5x.models`: `EncoderDecoderModel` with T5X's arguments over t5x_cot's model."""
from __future__ import annotations

from typing import Any

from t5x_cot.model import models as core
from t5x_cot.t5x_compat import UnsupportedT5XFeature, vocab


class EncoderDecoderModel(core.EncoderDecoderModel):
    """T5X's `models.EncoderDecoderModel(module, input_vocabulary, output_vocabulary,
    optimizer_def, z_loss, label_smoothing, loss_normalizing_factor)`.

    `module` is `network.Transformer(config)`; `optimizer_def` is `adafactor.Adafactor()`,
    built by train with the trainer's learning-rate schedule. The vocabularies are checked
    readable and to fit the model's vocab_size; public ones on gs://t5-data are read from
    their local copy when the bucket is out of reach (`t5x_compat.vocab`).
    """

    def __init__(self, module: Any, input_vocabulary: Any, output_vocabulary: Any, optimizer_def: Any,
                 decode_fn: Any = None, feature_converter_cls: Any = None, label_smoothing: float = 0.0,
                 z_loss: float = 0.0, loss_normalizing_factor: Any = None,
                 default_decoder_params: Any = None) -> None:
        for name, value in (("decode_fn", decode_fn), ("feature_converter_cls", feature_converter_cls),
                            ("default_decoder_params", default_decoder_params)):
            if value is not None:
                raise UnsupportedT5XFeature(
                    f"models.EncoderDecoderModel.{name}: decoding is configured in gin/runs/decode.gin "
                    "(decoding.DecodeConfig: strategy greedy/beam/sample); the features are seqio's "
                    "EncDecFeatureConverter")
        super().__init__(module.config, z_loss=z_loss, label_smoothing=label_smoothing,
                         loss_normalizing_factor=loss_normalizing_factor)
        self.input_vocabulary = vocab.localize(input_vocabulary)
        self.output_vocabulary = vocab.localize(output_vocabulary)
        self.optimizer_def = optimizer_def
        for name, vocabulary in (("input", self.input_vocabulary), ("output", self.output_vocabulary)):
            size = getattr(vocabulary, "vocab_size", 0)
            if size > module.config.vocab_size:
                raise UnsupportedT5XFeature(
                    f"models.EncoderDecoderModel.{name}_vocabulary {vocab.describe(vocabulary)} has {size} ids; "
                    f"network.T5Config.vocab_size is {module.config.vocab_size}: set vocab_size >= {size}")


def get_input_vocabulary(model: EncoderDecoderModel) -> Any:
    """T5X's `models.get_input_vocabulary`: the model's input vocabulary."""
    return model.input_vocabulary


def get_output_vocabulary(model: EncoderDecoderModel) -> Any:
    """T5X's `models.get_output_vocabulary`: the model's output vocabulary."""
    return model.output_vocabulary
