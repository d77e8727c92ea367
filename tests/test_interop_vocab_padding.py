"""A vocabulary that is not a multiple of 128 (V=129, padded to 256 rows) converts to a model
whose padded ids take no probability: loss equal to HF's, no sampled id >= V, and an export
with V rows again."""
from __future__ import annotations

import json

import jax
import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from hf_parity import HF_TINY, Ours, hf_model, padded_batch  # noqa: E402

from t5x_cot.decoding.predict import DecodeConfig, Predictor  # noqa: E402
from t5x_cot.interop.convert import convert  # noqa: E402
from t5x_cot.interop.hf_export import export_hf  # noqa: E402
from t5x_cot.interop.hf_import import load_hf  # noqa: E402
from t5x_cot.interop.ours_io import open_ours  # noqa: E402
from t5x_cot.interop.safetensors_io import SafetensorsReader  # noqa: E402
from t5x_cot.model.losses import compute_weighted_cross_entropy  # noqa: E402

VOCAB = 129
FIELDS = dict(HF_TINY, vocab_size=VOCAB, feed_forward_proj="gated-gelu", tie_word_embeddings=False)
LOSS_TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    hf_dir = tmp_path_factory.mktemp("hf_v129")
    model = hf_model(FIELDS, seed=3)
    model.save_pretrained(hf_dir)
    params, config = load_hf(hf_dir)
    return model, params, config


def test_real_vocabulary_size_is_recorded(converted):
    _, _, config = converted
    assert (config.vocab_size, config.real_vocab_size) == (256, VOCAB)


def test_loss_matches_hf(converted):
    model, params, config = converted
    batch = padded_batch(VOCAB, seed=3)
    targets = batch["decoder_target_tokens"]
    labels = torch.tensor(np.where(targets > 0, targets, -100), dtype=torch.long)
    enc = torch.tensor(batch["encoder_input_tokens"], dtype=torch.long)
    with torch.no_grad():
        hf_loss = float(model(input_ids=enc, attention_mask=(enc != 0).long(), labels=labels).loss)
    logits = Ours(config).logits(params, batch["encoder_input_tokens"], batch["decoder_input_tokens"], targets)
    loss, _, weight_sum = compute_weighted_cross_entropy(logits, targets, weights=targets > 0)
    ours = float(loss / weight_sum)
    print(f"\nV={VOCAB}: mean token loss HF {hf_loss:.6f}, ours {ours:.6f}, diff {abs(ours - hf_loss):.2e}")
    assert abs(ours - hf_loss) < LOSS_TOLERANCE


def test_sampling_never_emits_a_padded_id(converted):
    _, params, config = converted
    predictor = Predictor(config, params, DecodeConfig(strategy="sample", temperature=1.0, max_decode_length=24))
    encoder_tokens = np.random.default_rng(0).integers(2, VOCAB, (16, 10)).astype(np.int32)
    tokens = predictor.predict_batch(encoder_tokens, rng=jax.random.PRNGKey(1)).tokens
    print(f"\nV={VOCAB}: sampled {tokens.size} positions, max id {tokens.max()}")
    assert tokens.max() < VOCAB


def test_export_keeps_the_original_vocabulary(converted, tmp_path):
    _, params, config = converted
    export_hf(params, config, tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["vocab_size"] == VOCAB
    with SafetensorsReader(tmp_path / "model.safetensors") as reader:
        assert tuple(reader.spec("shared.weight").shape) == (VOCAB, FIELDS["d_model"])
        assert tuple(reader.spec("lm_head.weight").shape) == (VOCAB, FIELDS["d_model"])
    back, back_config = load_hf(tmp_path)
    assert back_config.real_vocab_size == VOCAB
    np.testing.assert_array_equal(back["token_embedder"]["embedding"], params["token_embedder"]["embedding"])


def test_our_checkpoint_records_the_real_vocabulary(converted, tmp_path):
    _, params, config = converted
    hf_dir, ours_dir = tmp_path / "hf", tmp_path / "ours"
    export_hf(params, config, hf_dir)
    convert("hf", str(hf_dir), "ours", str(ours_dir))
    assert json.loads((ours_dir / "config.json").read_text())["real_vocab_size"] == VOCAB
    assert open_ours(ours_dir).config == config
