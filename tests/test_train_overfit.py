"""A tiny model overfits one batch of real GSM8K gold-CoT examples from the SeqIO task."""
from __future__ import annotations

import pathlib

import jax
import numpy as np
import pytest
import support
import train_helpers

from t5x_cot import data_pipeline, optimizers
from t5x_cot.partitioning import Partitioner
from t5x_cot.trainer import Trainer


def compact_vocabulary(batch: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], int]:
    """Renumber the token ids used in the batch 0..n-1 (0 = padding stays 0).

    The examples and their token sequences are unchanged; only the softmax is over the ids this
    batch uses instead of all 32128, so a CPU step takes milliseconds.
    """
    token_features = ("encoder_input_tokens", "decoder_input_tokens", "decoder_target_tokens")
    ids = np.unique(np.concatenate([batch[name].ravel() for name in token_features] + [np.zeros(1, np.int32)]))
    remapped = {name: (np.searchsorted(ids, value).astype(np.int32) if name in token_features else value)
                for name, value in batch.items()}
    return remapped, int(len(ids))


@pytest.mark.slow
@pytest.mark.needs_data
def test_tiny_model_overfits_gsm8k_gold_cot_batch(data_dir: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("T5X_COT_DATA_DIR", str(data_dir))
    config = data_pipeline.DatasetConfig("gsm8k_gold_cot", {"inputs": 128, "targets": 128}, batch_size=4,
                                         pack=False, seed=0, module="t5x_cot.tasks")
    batch, vocab = compact_vocabulary(next(data_pipeline.BatchIterator(config)))
    assert batch["decoder_loss_weights"].sum() > 100
    model = support.tiny_model(vocab_size=-(-vocab // 128) * 128, emb_dim=64, num_heads=4, head_dim=16,
                                     mlp_dim=128, num_encoder_layers=2, num_decoder_layers=2)
    partitioner = Partitioner(devices=jax.devices()[:1])
    trainer = Trainer(model, optimizers.adafactor(optimizers.constant_schedule(1e-2)), partitioner,
                      train_helpers.shapes_of(batch))
    state = trainer.init_state(jax.random.PRNGKey(0))
    device_batch = partitioner.global_batch(batch, 4)
    curve = {}
    for step in range(1, 401):
        state, metrics = trainer.train_step(state, device_batch)
        if step == 1 or step % 20 == 0:
            curve[step] = float(metrics["loss_per_nonpadding_target_token"])
            if curve[step] < 0.1:
                break
    print("loss per target token by step:", curve)
    assert curve[1] > 4.0
    assert min(curve.values()) < 0.1, curve
