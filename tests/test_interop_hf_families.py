"""Every T5-family checkpoint converts to the function HF computes: one random tiny model per
family (T5 1.0, T5 1.1, Flan-T5, mT5 as transformers 5 saves it, mT5 with its own head, UL2,
ByT5) and per `feed_forward_proj` (relu, gelu, gated-relu, gated-gelu, gated-silu), each
built with its HF class, saved with `save_pretrained`, converted, and compared on logits with
the model transformers loads back from that directory; exported again, it loads in
transformers with the same logits.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from hf_parity import HF_TINY, Ours, hf_model, hf_outputs, max_errors, padded_batch  # noqa: E402

from t5x_cot.interop.errors import ConversionError  # noqa: E402
from t5x_cot.interop.hf_export import export_hf  # noqa: E402
from t5x_cot.interop.hf_import import load_hf  # noqa: E402
from t5x_cot.interop.hf_mapping import activations_to_hf, config_from_hf  # noqa: E402

TOLERANCE = 1e-4
GATED_GELU, SCALED = ("gelu", "linear"), True
# name: (model_type, HF config fields, our mlp_activations, whether our head is the scaled embedding)
FAMILIES = {
    "t5_1_0": ("t5", dict(HF_TINY, vocab_size=256, feed_forward_proj="relu"), ("relu",), SCALED),
    "t5_1_1": ("t5", dict(HF_TINY, vocab_size=256, num_decoder_layers=3, feed_forward_proj="gated-gelu",
                          tie_word_embeddings=False), GATED_GELU, not SCALED),
    "flan_t5": ("t5", dict(HF_TINY, vocab_size=250, d_kv=10, num_heads=3, feed_forward_proj="gated-gelu",
                           tie_word_embeddings=False, relative_attention_max_distance=20), GATED_GELU, not SCALED),
    # transformers 5 saves mT5 with tie_word_embeddings true and no lm_head.weight; the class never scales
    "mt5": ("mt5", dict(HF_TINY, vocab_size=256), GATED_GELU, not SCALED),
    # the public mT5 checkpoints: tie_word_embeddings false and an lm_head.weight of their own
    "mt5_own_head": ("mt5", dict(HF_TINY, vocab_size=256, tie_word_embeddings=False), GATED_GELU, not SCALED),
    "ul2": ("t5", dict(HF_TINY, vocab_size=256, feed_forward_proj="gated-silu", tie_word_embeddings=False),
            ("silu", "linear"), not SCALED),
    "byt5": ("t5", dict(HF_TINY, vocab_size=384, num_layers=3, num_decoder_layers=1, feed_forward_proj="gated-gelu",
                        tie_word_embeddings=False), GATED_GELU, not SCALED),
    "ffn_gelu": ("t5", dict(HF_TINY, vocab_size=256, feed_forward_proj="gelu", tie_word_embeddings=False),
                 ("gelu_exact",), not SCALED),
    "ffn_gated_relu": ("t5", dict(HF_TINY, vocab_size=256, feed_forward_proj="gated-relu", tie_word_embeddings=False),
                       ("relu", "linear"), not SCALED),
}


@pytest.fixture(scope="module", params=list(FAMILIES))
def family(request, tmp_path_factory):
    name = request.param
    model_type, fields, _, _ = FAMILIES[name]
    seed = 10 + list(FAMILIES).index(name)
    hf_dir = tmp_path_factory.mktemp(f"hf_{name}")
    hf_model(fields, seed, model_type).save_pretrained(hf_dir)
    loaded = transformers.AutoModelForSeq2SeqLM.from_pretrained(hf_dir).eval()
    assert type(loaded).__name__ == transformers.AutoConfig.from_pretrained(hf_dir).architectures[0]
    params, config = load_hf(hf_dir)
    batch = padded_batch(fields["vocab_size"], seed)
    return dict(name=name, hf_dir=hf_dir, params=params, config=config, batch=batch, ours=Ours(config),
                hf=hf_outputs(loaded, batch))


def test_config_follows_the_hf_class(family):
    _, fields, activations, scaled = FAMILIES[family["name"]]
    config = family["config"]
    assert config.mlp_activations == activations
    assert config.logits_via_embedding == scaled
    assert config.output_vocab_size == fields["vocab_size"]


def test_logits_match_hf(family):
    enc_err, logit_err = max_errors(family["ours"], *family["hf"], family["params"], family["batch"])
    print(f"\n{family['name']}: HF->ours max abs error: encoder {enc_err:.2e}, logits {logit_err:.2e}")
    assert enc_err < TOLERANCE and logit_err < TOLERANCE


def test_export_loads_in_transformers_with_the_same_logits(family, tmp_path):
    _, fields, _, _ = FAMILIES[family["name"]]
    export_hf(family["params"], family["config"], tmp_path)
    exported = json.loads((tmp_path / "config.json").read_text())
    assert exported["vocab_size"] == fields["vocab_size"]
    model, info = transformers.AutoModelForSeq2SeqLM.from_pretrained(tmp_path, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    _, logits = hf_outputs(model.eval(), family["batch"])
    _, want = family["hf"]
    valid = family["batch"]["decoder_target_tokens"] > 0
    error = float(np.abs(logits - want)[valid].max())
    print(f"\n{family['name']}: ours->HF ({exported['feed_forward_proj']}) max abs logit error {error:.2e}")
    assert logits.shape == want.shape and error < TOLERANCE


def test_the_family_comes_from_model_type_else_architectures():
    fields = dict(HF_TINY, vocab_size=256, feed_forward_proj="gated-gelu", tie_word_embeddings=True)
    assert config_from_hf({**fields, "model_type": "t5"}, "config.json").logits_via_embedding
    assert not config_from_hf({**fields, "model_type": "mt5"}, "config.json").logits_via_embedding
    assert not config_from_hf({**fields, "architectures": ["MT5ForConditionalGeneration"]},
                              "config.json").logits_via_embedding
    with pytest.raises(ConversionError) as info:
        config_from_hf({**fields, "model_type": "umt5"}, "config.json")
    assert info.value.field == "model_type" and "relative position bias in every layer" in str(info.value)


def test_activations_without_an_hf_name_are_refused_on_export():
    assert activations_to_hf(("silu", "linear")) == ("gated-silu", "silu")
    assert activations_to_hf(("gelu", "linear")) == ("gated-gelu", "gelu_new")
    assert activations_to_hf(("gelu_exact",)) == ("gelu", "gelu")
    for activations in (("gelu_exact", "linear"), ("tanh",), ("relu", "relu")):
        with pytest.raises(ConversionError) as info:
            activations_to_hf(activations)
        assert info.value.field == "mlp_activations"
