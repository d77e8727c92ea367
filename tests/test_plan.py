"""`t5x-cot plan`: sharding and memory report from shapes only, checked against compiled memory."""
from __future__ import annotations

import dataclasses

import jax
import pytest
import train_helpers

from t5x_cot import cli, optimizers, plan
from t5x_cot.model import network
from t5x_cot.partitioning import Partitioner
from t5x_cot.trainer import Trainer


def test_parse_bytes() -> None:
    assert plan.parse_bytes("80GB") == 80 * 10**9
    assert plan.parse_bytes("16GiB") == 16 * 2**30
    with pytest.raises(ValueError, match="80XB"):
        plan.parse_bytes("80XB")


def test_plan_shards_params_and_optimizer_state_over_a_virtual_mesh() -> None:
    model = train_helpers.tiny_model(emb_dim=256, num_heads=4, head_dim=64, mlp_dim=512)
    axes = network.param_logical_axes(model.config)
    kwargs = dict(batch_size=64, lengths=(64, 32))
    replicated = plan.build_plan(model, axes, mesh_shape={"data": 1, "model": 1}, rules="standard", **kwargs)
    model_parallel = plan.build_plan(model, axes, mesh_shape={"data": 2, "model": 4}, rules="standard", **kwargs)
    fsdp = plan.build_plan(model, axes, mesh_shape={"data": 8, "model": 1}, rules="fsdp", **kwargs)
    assert replicated.memory.params == replicated.num_params * 4
    # embed is replicated under 'standard', so model parallelism splits all but norms and relpos.
    assert replicated.memory.params / 4.2 < model_parallel.memory.params < replicated.memory.params / 3
    assert replicated.memory.params / 8.5 < fsdp.memory.params < replicated.memory.params / 7
    assert fsdp.memory.optimizer_state < replicated.memory.optimizer_state / 4
    assert model_parallel.memory.activations < replicated.memory.activations / 4
    assert replicated.memory.activations_remat < replicated.memory.activations
    rows = {row[0]: row for row in model_parallel.param_rows}
    assert rows["encoder/layers_*/mlp/wi_0/kernel"][4] == (None, "model")


def test_plan_estimate_is_within_a_factor_of_compiled_memory() -> None:
    """Measured: XLA's memory analysis of the compiled train step on this CPU (params, state,
    batch, temporaries)."""
    model = train_helpers.tiny_model(vocab_size=512, emb_dim=128, num_heads=4, head_dim=32, mlp_dim=256,
                                     num_encoder_layers=2, num_decoder_layers=2)
    batch, lengths = 16, (64, 32)
    shapes = train_helpers.shapes_of(train_helpers.random_batch(batch, *lengths, packed=False))
    trainer = Trainer(model, optimizers.adafactor(), Partitioner(devices=jax.devices()[:1]), shapes)
    analysis = trainer.lower_train_step().compile().memory_analysis()
    measured = analysis.argument_size_in_bytes + analysis.temp_size_in_bytes
    estimate = plan.build_plan(model, network.param_logical_axes(model.config), mesh_shape={"data": 1, "model": 1},
                               rules="standard", batch_size=batch, lengths=lengths)
    ratio = estimate.memory.total / measured
    print(f"plan {estimate.memory.total} B vs compiled {measured} B: ratio {ratio:.2f}")
    assert 0.5 < ratio < 2.0


def test_plan_cli_prints_mesh_sharding_and_fit(capsys: pytest.CaptureFixture) -> None:
    code = cli.main(["plan", "--gin_file=gin/models/t5_1_1/small.gin", "--devices", "8", "--num_partitions", "2",
                     "--device_memory", "16GB", "--rules", "fsdp", "--batch_size", "64"])
    out = capsys.readouterr().out
    assert code == 0
    assert "mesh: data=4 x model=2 (8 devices), rules: fsdp" in out
    assert "token_embedder/embedding" in out and "('model', 'data')" in out
    for line in ("params", "optimizer state", "gradients", "activations", "total", "device memory"):
        assert f"  {line}" in out


def test_recommended_remat_and_scan_settings_follow_device_memory_and_save_memory(
        capsys: pytest.CaptureFixture) -> None:
    model = train_helpers.tiny_model(vocab_size=128, emb_dim=64, num_heads=2, head_dim=32, mlp_dim=128,
                                     num_encoder_layers=3, num_decoder_layers=3)
    batch, lengths = 8, (64, 32)
    built = plan.build_plan(model, network.param_logical_axes(model.config), mesh_shape={"data": 1, "model": 1},
                            rules="standard", batch_size=batch, lengths=lengths)
    memory = built.memory
    assert plan.recommend_settings(built, memory.total) == {"remat_policy": "none", "scan_layers": False}
    remat = plan.recommend_settings(built, memory.total - 1)
    assert remat == {"remat_policy": "full", "scan_layers": True}
    assert plan.recommend_settings(built, memory.total_remat - 1) is None
    assert "network.T5Config.remat_policy = 'full'" in plan.format_plan(built, memory.total - 1)

    shapes = train_helpers.shapes_of(train_helpers.random_batch(batch, *lengths, packed=False))

    def compiled_temp_bytes(settings: dict) -> int:
        config_model = type(model)(dataclasses.replace(model.config, **settings))
        trainer = Trainer(config_model, optimizers.adafactor(), Partitioner(devices=jax.devices()[:1]), shapes)
        return trainer.lower_train_step().compile().memory_analysis().temp_size_in_bytes

    plain, recomputed = compiled_temp_bytes({"remat_policy": "none", "scan_layers": False}), compiled_temp_bytes(remat)
    print(f"compiled temporaries: {plain} B without remat, {recomputed} B with full remat over scanned layers")
    assert recomputed < 0.8 * plain


def test_plan_reads_t5x_gin_files(capsys: pytest.CaptureFixture) -> None:
    code = cli.main(["plan", "--gin_file=t5x/examples/t5/t5_1_1/small.gin",
                     "--gin_file=t5x/configs/runs/finetune.gin", "--devices", "8"])
    out = capsys.readouterr().out
    assert code == 0
    assert "params: 76,961,152" in out and "batch: 128 global" in out  # T5X's BATCH_SIZE


def test_fsdp_plan_counts_the_gathered_layer_and_the_update() -> None:
    model = train_helpers.tiny_model(emb_dim=256, num_heads=4, head_dim=64, mlp_dim=512)
    axes = network.param_logical_axes(model.config)
    kwargs = dict(mesh_shape={"data": 8, "model": 1}, batch_size=64, lengths=(64, 32))
    fsdp = plan.build_plan(model, axes, rules="fsdp", **kwargs).memory
    standard = plan.build_plan(model, axes, rules="standard", **kwargs).memory
    assert standard.gathered_layer == 0 and standard.update_temporaries == standard.params
    # a decoder layer: 2 attention blocks of 4 x 256 x 256 and the gated MLP 3 x 256 x 512, float32, twice
    assert fsdp.gathered_layer == 2 * 4 * (2 * 4 * 256 * 256 + 3 * 256 * 512)
    assert fsdp.total == (fsdp.params + fsdp.optimizer_state + fsdp.gradients + fsdp.update_temporaries
                          + fsdp.gathered_layer + fsdp.activations)


@pytest.mark.skipif(__import__("importlib").util.find_spec("libtpu") is None, reason="needs libtpu")
def test_plan_on_a_tpu_topology_takes_mesh_and_memory_from_it(capsys: pytest.CaptureFixture) -> None:
    code = cli.main(["plan", "--gin_file=t5x/examples/t5/t5_1_1/small.gin", "--gin_file=t5x/configs/runs/finetune.gin",
                     "--gin_bindings=TASK_FEATURE_LENGTHS={'inputs': 64, 'targets': 32}", "--topology", "v5e-16"])
    out = capsys.readouterr().out
    assert code == 0
    assert "topology: v5e-16 (v5e:4x4), 16 x TPU v5 lite" in out and "mesh: data=16 x model=1" in out
    assert "device memory     16.00 GiB" in out
