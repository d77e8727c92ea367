"""HF weight formats (safetensors, sharded, torch .bin), vocab padding, tokenizer files and the
`t5x-cot convert` command end to end (T5X -> ours -> HF -> ours)."""
from __future__ import annotations

import json

import numpy as np
import pytest
from safetensors.numpy import load_file

from t5x_cot.cli import main
from t5x_cot.interop.hf_import import load_hf
from t5x_cot.interop.layout import flatten

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def hf_model():
    torch.manual_seed(0)
    config = transformers.T5Config(vocab_size=120, d_model=16, d_kv=4, d_ff=24, num_layers=2, num_heads=2,
                                   feed_forward_proj="gated-gelu", tie_word_embeddings=False,
                                   decoder_start_token_id=0)
    model = transformers.T5ForConditionalGeneration(config)
    model.lm_head.weight = torch.nn.Parameter(torch.randn(120, 16))
    return model


@pytest.fixture(scope="module")
def safetensors_dir(hf_model, tmp_path_factory):
    directory = tmp_path_factory.mktemp("hf_safetensors")
    hf_model.save_pretrained(directory)
    return directory


def test_vocab_rows_are_padded_with_zeros_and_dropped_on_export(safetensors_dir, tmp_path):
    params, config = load_hf(safetensors_dir)
    assert (config.vocab_size, config.real_vocab_size) == (128, 120)
    embedding, head = params["token_embedder"]["embedding"], params["decoder"]["logits_dense"]["kernel"]
    original = load_file(safetensors_dir / "model.safetensors")
    np.testing.assert_array_equal(embedding[:120], original["shared.weight"])
    np.testing.assert_array_equal(head[:, :120], original["lm_head.weight"].T)
    assert not embedding[120:].any() and not head[:, 120:].any()

    assert main(["convert", "--from", "hf", str(safetensors_dir), "--to", "hf", str(tmp_path)]) == 0
    exported = load_file(tmp_path / "model.safetensors")
    assert json.loads((tmp_path / "config.json").read_text())["vocab_size"] == 120
    assert sorted(exported) == sorted(original)
    for name, array in original.items():  # every tensor HF wrote comes back bit-exact, 120 rows
        np.testing.assert_array_equal(exported[name], array)


def test_sharded_safetensors_and_torch_bin_import_the_same(hf_model, safetensors_dir, tmp_path):
    reference = flatten(load_hf(safetensors_dir)[0])
    sharded, torch_bin = tmp_path / "sharded", tmp_path / "bin"
    hf_model.save_pretrained(sharded, max_shard_size="20KB")
    assert (sharded / "model.safetensors.index.json").is_file()
    torch_bin.mkdir()
    torch.save(hf_model.state_dict(), torch_bin / "pytorch_model.bin")  # also holds the embed_tokens copies
    (torch_bin / "config.json").write_text((safetensors_dir / "config.json").read_text())
    for directory in (sharded, torch_bin):
        got = flatten(load_hf(directory)[0])
        assert sorted(got) == sorted(reference)
        assert all(np.array_equal(got[name], reference[name]) for name in reference), directory


@pytest.mark.needs_data
def test_convert_cli_t5x_to_ours_to_hf_with_tokenizer_and_back(data_dir, vocab_path, tmp_path, capsys):
    from t5x_cot.checkpoints import load_params

    t5x = data_dir / "t5x_checkpoints" / "test_t5_tiny.checkpoint_0"
    ours, hf, ours_again = tmp_path / "ours", tmp_path / "hf", tmp_path / "ours2"
    assert main(["convert", "--from", "t5x", str(t5x), "--to", "ours", str(ours)]) == 0
    assert "emb_dim=8" in capsys.readouterr().out
    assert main(["convert", "--from", "ours", str(ours), "--to", "hf", str(hf), "--spm", str(vocab_path)]) == 0
    assert main(["convert", "--from", "hf", str(hf), "--to", "ours", str(ours_again)]) == 0
    (first, config), (second, config_again) = load_params(ours), load_params(ours_again)
    assert config == config_again
    first, second = flatten(first), flatten(second)
    assert sorted(first) == sorted(second) and all(np.array_equal(first[k], second[k]) for k in first)

    model, info = transformers.T5ForConditionalGeneration.from_pretrained(hf, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    tokenizer = transformers.AutoTokenizer.from_pretrained(hf)
    import sentencepiece

    processor = sentencepiece.SentencePieceProcessor(model_file=str(vocab_path))
    text = "A coin is heads up. Ka flips the coin. Is the coin still heads up?"
    assert tokenizer(text).input_ids == processor.encode(text) + [1]
    assert tokenizer.convert_tokens_to_ids("<extra_id_0>") == 32099 and len(tokenizer) == 32100

    assert main(["convert", "--from", "hf", str(hf), "--to", "ours", str(ours_again)]) == 2  # not empty
    assert "--overwrite" in capsys.readouterr().err


def test_convert_cli_reports_bad_input(tmp_path, capsys):
    (tmp_path / "config.json").write_text(json.dumps({"d_model": 8, "feed_forward_proj": "swiglu"}))
    assert main(["convert", "--from", "hf", str(tmp_path), "--to", "ours", str(tmp_path / "out")]) == 1
    assert "feed_forward_proj" in capsys.readouterr().err


def test_bfloat16_export_holds_rounded_weights(safetensors_dir, tmp_path):
    import ml_dtypes

    from t5x_cot.interop.safetensors_io import SafetensorsReader

    assert main(["convert", "--from", "hf", str(safetensors_dir), "--to", "hf", str(tmp_path),
                 "--dtype", "bfloat16"]) == 0
    with SafetensorsReader(tmp_path / "model.safetensors") as reader:
        assert {reader.spec(name).dtype for name in reader.keys()} == {np.dtype(ml_dtypes.bfloat16)}
    reference, rounded = flatten(load_hf(safetensors_dir)[0]), flatten(load_hf(tmp_path)[0])
    for name, array in reference.items():
        np.testing.assert_array_equal(rounded[name], array.astype(ml_dtypes.bfloat16).astype(np.float32))
    _, info = transformers.T5ForConditionalGeneration.from_pretrained(tmp_path, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]


def _with_head(source_dir, target_dir, *, scaled: bool, lm_head: bool) -> dict[str, np.ndarray]:
    """A copy of an HF dir whose config does (not) scale the decoder output and whose weights
    do (not) hold lm_head.weight."""
    from safetensors.numpy import save_file

    tensors = load_file(source_dir / "model.safetensors")
    if not lm_head:
        del tensors["lm_head.weight"]
    target_dir.mkdir()
    save_file(tensors, target_dir / "model.safetensors", metadata={"format": "pt"})
    fields = json.loads((source_dir / "config.json").read_text())
    fields.update(tie_word_embeddings=scaled, scale_decoder_outputs=scaled)
    (target_dir / "config.json").write_text(json.dumps(fields))
    return tensors


def test_output_head_variants(safetensors_dir, tmp_path):
    # Scaled output with its own lm_head: the d_model**-0.5 scale is folded into logits_dense.
    tensors = _with_head(safetensors_dir, tmp_path / "scaled", scaled=True, lm_head=True)
    params, config = load_hf(tmp_path / "scaled")
    assert not config.logits_via_embedding
    np.testing.assert_allclose(params["decoder"]["logits_dense"]["kernel"][:, :120],
                               tensors["lm_head.weight"].T * np.float32(16 ** -0.5), rtol=1e-7)
    # Unscaled output without lm_head (transformers >= 5 ties it to shared): logits_dense = shared.T.
    tensors = _with_head(safetensors_dir, tmp_path / "unscaled", scaled=False, lm_head=False)
    params, config = load_hf(tmp_path / "unscaled")
    assert not config.logits_via_embedding
    np.testing.assert_array_equal(params["decoder"]["logits_dense"]["kernel"][:, :120], tensors["shared.weight"].T)
    # Scaled output, lm_head absent: tied, T5 1.0 style.
    _with_head(safetensors_dir, tmp_path / "tied", scaled=True, lm_head=False)
    params, config = load_hf(tmp_path / "tied")
    assert config.logits_via_embedding and "logits_dense" not in params["decoder"]
