"""Decoding: KV-cache greedy / sampling / beam search loops, calculator in the loop,
self-consistency voting, and the model-bound `Predictor`.

The loops are written against a generic `tokens_to_logits(DecodingState) -> (logits, cache)`
function, as T5X's decoding.py; `predict` binds them to `t5x_cot.model.network.Transformer`.
"""
from t5x_cot.decoding.beam import beam_search, brevity_penalty
from t5x_cot.decoding.sampling import SamplingConfig, sample_loop, temperature_sample
from t5x_cot.decoding.state import EOS_ID, PAD_ID, DecodingState

__all__ = ["DecodingState", "EOS_ID", "PAD_ID", "SamplingConfig", "beam_search", "brevity_penalty",
           "sample_loop", "temperature_sample"]
