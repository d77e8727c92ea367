"""Parity with `transformers` (PyTorch, CPU, fp32) on random-weight tiny T5 configs.

HF -> ours: encoder outputs and decoder logits on a padded batch within 1e-4, and 32 greedy
tokens identical; ours -> HF -> ours: bit-exact; our HF export loads in transformers with
the same logits. Configs: T5 1.0 (relu, tied), T5 1.1 (gated-gelu, untied), and one with
d_kv * num_heads != d_model and a vocabulary that needs padding (250 -> 256 rows, exported
as 250 again).
"""
from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from hf_parity import GREEDY_STEPS, HF_TINY, PAD, Ours, hf_model, hf_outputs, max_errors, padded_batch  # noqa: E402

from t5x_cot.interop.hf_export import export_hf  # noqa: E402
from t5x_cot.interop.hf_import import load_hf  # noqa: E402
from t5x_cot.interop.hf_mapping import tensor_maps  # noqa: E402
from t5x_cot.interop.layout import flatten, param_shapes, unflatten  # noqa: E402

TOLERANCE = 1e-4
HF_CONFIGS = {
    "t5_1_0": dict(HF_TINY, vocab_size=256, d_ff=64, feed_forward_proj="relu", tie_word_embeddings=True),
    "t5_1_1": dict(HF_TINY, vocab_size=256, num_decoder_layers=3, feed_forward_proj="gated-gelu",
                   tie_word_embeddings=False),
    "kv_heads_ne_d_model": dict(HF_TINY, vocab_size=250, d_model=24, d_kv=10, d_ff=40, num_heads=3,
                                feed_forward_proj="gated-gelu", tie_word_embeddings=False,
                                relative_attention_num_buckets=16, relative_attention_max_distance=20),
}


@pytest.fixture(scope="module", params=list(HF_CONFIGS))
def case(request, tmp_path_factory):
    name = request.param
    fields = HF_CONFIGS[name]
    seed = list(HF_CONFIGS).index(name)
    model = hf_model(fields, seed)
    hf_dir = tmp_path_factory.mktemp(f"hf_{name}")
    model.save_pretrained(hf_dir)
    params, config = load_hf(hf_dir)
    return dict(name=name, fields=fields, model=model, hf_dir=hf_dir, params=params, config=config,
                ours=Ours(config), batch=padded_batch(fields["vocab_size"], seed))


def test_config_maps_onto_ours(case):
    fields, config = case["fields"], case["config"]
    assert config.emb_dim == fields["d_model"] and config.head_dim == fields["d_kv"]
    assert config.num_heads == fields["num_heads"] and config.mlp_dim == fields["d_ff"]
    assert config.num_decoder_layers == fields.get("num_decoder_layers", fields["num_layers"])
    assert config.logits_via_embedding == fields["tie_word_embeddings"]
    assert config.mlp_activations == (("relu",) if fields["feed_forward_proj"] == "relu" else ("gelu", "linear"))
    assert config.vocab_size % 128 == 0 and config.vocab_size >= fields["vocab_size"]
    assert config.output_vocab_size == fields["vocab_size"]
    assert config.relative_attention_max_distance == fields.get("relative_attention_max_distance", 128)


def test_hf_to_ours_encoder_and_logits_parity(case):
    hf_encoded, hf_logits = hf_outputs(case["model"], case["batch"])
    enc_err, logit_err = max_errors(case["ours"], hf_encoded, hf_logits, case["params"], case["batch"])
    print(f"\n{case['name']}: HF->ours max abs error: encoder {enc_err:.2e}, logits {logit_err:.2e}")
    assert enc_err < TOLERANCE and logit_err < TOLERANCE


def test_greedy_32_tokens_identical(case):
    encoder_tokens = case["batch"]["encoder_input_tokens"]
    enc = torch.tensor(encoder_tokens, dtype=torch.long)
    with torch.no_grad():  # no KV cache: transformers 5 mis-sizes it when decoder and encoder depths differ
        hf_ids = case["model"].generate(input_ids=enc, attention_mask=(enc != 0).long(), do_sample=False,
                                        num_beams=1, max_new_tokens=GREEDY_STEPS, min_new_tokens=GREEDY_STEPS,
                                        suppress_tokens=[PAD], use_cache=False).numpy()[:, 1:]
    ours = case["ours"].greedy(case["params"], encoder_tokens)
    print(f"\n{case['name']}: greedy ids identical: {np.array_equal(ours, hf_ids)} "
          f"({len(np.unique(ours))} distinct ids; first row {ours[0, :8].tolist()}...)")
    np.testing.assert_array_equal(ours, hf_ids)


def _random_params(config, seed: int) -> dict:
    """Our param tree with random values (norm scales near 1, kernels scaled by fan-in); rows
    of padded vocabulary ids are zero, as an import leaves them (export drops them)."""
    rng = np.random.default_rng(seed)
    vocab_axes = {m.path: m.vocab_axis for m in tensor_maps(config)}

    def draw(name: str, shape: tuple[int, ...]) -> np.ndarray:
        if name.endswith("/scale"):
            return 1.0 + 0.1 * rng.standard_normal(shape, dtype=np.float32)
        std = 1.0 if name.endswith(("embedding", "rel_embedding")) else shape[0] ** -0.5
        array = std * rng.standard_normal(shape, dtype=np.float32)
        if vocab_axes.get(name) is not None:
            np.moveaxis(array, vocab_axes[name], 0)[config.output_vocab_size:] = 0
        return array

    return unflatten({name: draw(name, shape) for name, shape in param_shapes(config).items()})


def test_ours_to_hf_to_ours_is_bit_exact_and_loads_in_transformers(case, tmp_path):
    config = case["config"]
    batch = case["batch"]
    params = _random_params(config, seed=7)
    export_hf(params, config, tmp_path)
    back, back_config = load_hf(tmp_path, dtype=config.dtype)
    assert back_config == config
    flat, flat_back = flatten(params), flatten(back)
    assert sorted(flat) == sorted(flat_back)
    assert all(np.array_equal(flat[name], flat_back[name]) for name in flat)

    model, info = transformers.T5ForConditionalGeneration.from_pretrained(tmp_path, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    assert json.loads((tmp_path / "config.json").read_text())["vocab_size"] == config.output_vocab_size
    hf_encoded, hf_logits = hf_outputs(model.eval(), batch)
    enc_err, logit_err = max_errors(case["ours"], hf_encoded, hf_logits, params, batch)
    print(f"\n{case['name']}: ours->HF->ours bit-exact; exported model max abs error: "
          f"encoder {enc_err:.2e}, logits {logit_err:.2e}")
    assert enc_err < TOLERANCE and logit_err < TOLERANCE
