"""Random-weight tiny HF T5-family models and the forward passes the HF parity tests compare.

Shared by `test_interop_hf.py` (round trips) and `test_interop_hf_families.py` (one test per
model family and feed-forward variant).
"""
from __future__ import annotations

import dataclasses

import jax
import numpy as np
import torch
import transformers

from t5x_cot.model.network import Transformer

#: A tiny HF T5 (2+2 layers); each test adds its vocabulary and feed-forward fields.
HF_TINY = dict(d_model=32, d_kv=8, d_ff=48, num_layers=2, num_heads=4)
GREEDY_STEPS = 32
PAD, EOS = 0, 1
ENCODER_LENGTHS, DECODER_LENGTHS = (12, 7, 3), (9, 5, 2)
# model_type -> the HF config and model classes that build and load it
HF_CLASSES = {"t5": ("T5Config", "T5ForConditionalGeneration"),
              "mt5": ("MT5Config", "MT5ForConditionalGeneration")}


def hf_model(fields: dict, seed: int, model_type: str = "t5", own_head: bool | None = None):
    """A random HF model of `model_type` whose every param matters: HF's own init leaves the
    norms at 1 and makes attention near-uniform (and greedy output one repeated token), so
    weights are redrawn. `own_head`: give it an `lm_head.weight` of its own (default: when
    `tie_word_embeddings` is false; transformers >= 5 ties lm_head to `shared` until told
    otherwise)."""
    torch.manual_seed(seed)
    config_class, model_class = (getattr(transformers, name) for name in HF_CLASSES[model_type])
    model = model_class(config_class(**fields, dropout_rate=0.0, decoder_start_token_id=0))
    if own_head if own_head is not None else fields.get("tie_word_embeddings") is False:
        model.lm_head.weight = torch.nn.Parameter(torch.empty(fields["vocab_size"], fields["d_model"]))
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "layer_norm" in name:
                param.normal_(1.0, 0.1)
            elif "relative_attention_bias" in name:
                param.normal_(0.0, 1.0)
            elif name != "shared.weight":  # embeddings keep std 1, as T5X initialises them
                param.normal_(0.0, (1.5 if name != "lm_head.weight" else 1.0) * param.shape[1] ** -0.5)
    return model.eval()


def padded_batch(vocab: int, seed: int) -> dict[str, np.ndarray]:
    """Encoder inputs, decoder inputs and targets of three rows of different lengths."""
    rng = np.random.default_rng(seed)

    def tokens(lengths, width):
        array = np.zeros((len(lengths), width), np.int32)
        for row, length in enumerate(lengths):
            array[row, :length] = rng.integers(2, vocab, length)
        return array

    targets = tokens(DECODER_LENGTHS, GREEDY_STEPS)  # the greedy loop's width: one compiled forward
    decoder_inputs = np.zeros_like(targets)
    decoder_inputs[:, 1:] = targets[:, :-1]  # shift right, start token 0 (HF decoder_start_token_id)
    return {"encoder_input_tokens": tokens(ENCODER_LENGTHS, max(ENCODER_LENGTHS) + 1),
            "decoder_input_tokens": decoder_inputs,
            "decoder_target_tokens": targets}


class Ours:
    """Jitted forward passes of our model in float32."""

    def __init__(self, config):
        self.module = Transformer(dataclasses.replace(config, dtype="float32"))
        self.logits = jax.jit(lambda p, e, di, dt: self.module.apply(
            {"params": p}, e, di, dt, enable_dropout=False))
        self.encode = jax.jit(lambda p, e: self.module.apply(
            {"params": p}, e, enable_dropout=False, method=self.module.encode))

    def greedy(self, params, encoder_tokens: np.ndarray) -> np.ndarray:
        """GREEDY_STEPS tokens with EOS (as HF's min_new_tokens) and PAD suppressed, full forward
        per step."""
        batch = encoder_tokens.shape[0]
        decoder_inputs = np.zeros((batch, GREEDY_STEPS), np.int32)
        all_valid = np.ones_like(decoder_inputs)  # no decoder padding while generating
        out = np.zeros((batch, GREEDY_STEPS), np.int32)
        for step in range(GREEDY_STEPS):
            logits = np.array(self.logits(params, encoder_tokens, decoder_inputs, all_valid)[:, step])
            logits[:, [PAD, EOS]] = -np.inf
            out[:, step] = logits.argmax(-1)
            if step + 1 < GREEDY_STEPS:
                decoder_inputs[:, step + 1] = out[:, step]
        return out


def hf_outputs(model, batch) -> tuple[np.ndarray, np.ndarray]:
    """(encoder output, decoder logits) of an HF model on `batch`."""
    enc = torch.tensor(batch["encoder_input_tokens"], dtype=torch.long)
    mask = (enc != 0).long()
    with torch.no_grad():
        encoded = model.encoder(input_ids=enc, attention_mask=mask).last_hidden_state
        logits = model(input_ids=enc, attention_mask=mask,
                       decoder_input_ids=torch.tensor(batch["decoder_input_tokens"], dtype=torch.long)).logits
    return encoded.numpy(), logits.numpy()


def max_errors(ours: Ours, hf_encoded, hf_logits, params, batch) -> tuple[float, float]:
    """Max abs differences (encoder output, logits over HF's vocabulary) on valid positions."""
    encoded = np.asarray(ours.encode(params, batch["encoder_input_tokens"]))
    logits = np.asarray(ours.logits(params, batch["encoder_input_tokens"], batch["decoder_input_tokens"],
                                    batch["decoder_target_tokens"]))
    enc_valid = batch["encoder_input_tokens"] > 0
    dec_valid = batch["decoder_target_tokens"] > 0
    vocab = hf_logits.shape[-1]
    return (float(np.abs(encoded - hf_encoded)[enc_valid].max()),
            float(np.abs(logits[..., :vocab] - hf_logits)[dec_valid].max()))
