"""The real train step and decode path compiled for TPU topologies on this CPU (libtpu's
compile-only backend): `t5x-cot compile`, T5X's precompile through `python -m t5x_cot.main`."""
from __future__ import annotations

import json
import pathlib
import sys

import numpy as np
import pytest

pytest.importorskip("libtpu", reason="libtpu (pip install -e '.[tpu]') compiles for TPU topologies")

from jax.sharding import PartitionSpec as P  # noqa: E402

from t5x_cot import cli, main  # noqa: E402
from t5x_cot.compile import analysis, run_config, step_compile, topology  # noqa: E402

OURS = ["gin/models/t5_1_1/tiny.gin", "gin/runs/finetune.gin"]
SMALL = ["TASK_FEATURE_LENGTHS={'inputs': 32, 'targets': 16}", "BATCH_SIZE=8"]
T5X_FLAGS = ["--gin_file=t5x/examples/t5/t5_1_1/tiny.gin", "--gin_file=t5x/configs/runs/finetune.gin",
             "--gin.TASK_FEATURE_LENGTHS={'inputs': 32, 'targets': 16}", "--gin.BATCH_SIZE=8"]


@pytest.fixture(scope="module")
def v5e_steps() -> dict:
    """The tiny model's train step on v5e:2x2 under the standard and the fsdp rules (compiled once)."""
    devices = topology.topology_devices(topology.parse_topology("v5e:2x2"))
    run_config.parse_run_config(OURS, SMALL)
    setup = run_config.train_setup(devices)
    steps = {"setup": setup}
    for rules in ("standard", "fsdp"):
        varied = step_compile.vary(setup, rules=rules)
        lowered, compiled, report = step_compile.compile_train(varied)
        steps[rules] = (varied, compiled, report)
    return steps


def test_train_step_compiles_for_v5e_with_the_batch_over_data(v5e_steps: dict) -> None:
    setup, compiled, report = v5e_steps["standard"]
    assert dict(setup.partitioner.mesh.shape) == {"data": 4, "model": 1}
    assert {d.device_kind for d in setup.partitioner.mesh.devices.flat} == {"TPU v5 lite"}
    assert setup.trainer().batch_shardings["encoder_input_tokens"].spec == P("data", None)
    # each chip holds 8 / 4 rows of every [8, 32] input: the compiled entry takes s32[2,32]
    entry = compiled.as_text().split("ENTRY", 1)[1].split("\n", 1)[0]
    assert "s32[2,32]" in entry and "s32[8,32]" not in entry
    memory = report.memory
    assert memory["peak_bytes"] == (memory["argument_bytes"] + memory["output_bytes"] - memory["alias_bytes"]
                                    + memory["temp_bytes"] + memory["generated_code_bytes"])
    assert memory["alias_bytes"] > 0  # the donated state is updated in place
    # data parallel: the gradients are summed over 'data'
    assert report.collectives["all-reduce"]["count"] > 0 and report.collectives["all-reduce"]["bytes"] > 0


def test_fsdp_divides_the_argument_bytes_by_about_the_device_count(v5e_steps: dict) -> None:
    standard, fsdp = v5e_steps["standard"][2].memory, v5e_steps["fsdp"][2].memory
    ratio = standard["argument_bytes"] / fsdp["argument_bytes"]
    assert 2.5 < ratio <= 4.2, ratio
    assert v5e_steps["fsdp"][2].collectives["all-gather"]["count"] > 0  # params gathered for use


def test_compiler_flops_only_without_loops(v5e_steps: dict) -> None:
    report = v5e_steps["standard"][2]
    assert not report.hlo_has_loops and report.compiler_flops is not None
    explicit = step_compile.explicit_flops(v5e_steps["setup"]) / 4
    assert 0.5 < report.compiler_flops / explicit < 2.0
    text = "  %w = (s32[]) while(%t), condition=%c, body=%b"
    assert analysis.compiler_flops(None, text) is None  # a loop body counts once: not reported


def test_collectives_are_read_from_hlo_text() -> None:
    text = ("  %all-reduce.1 = (bf16[32]{0}, f32[4,8]{1,0}, /*index=2*/bf16[2]{0}) all-reduce(%a, %b, %c)\n"
            "  %ag = (bf16[4]{0}, bf16[16]{0}) all-gather-start(%x), dimensions={0}\n"
            "  %agd = bf16[16]{0} all-gather-done(%ag)\n"
            "  ROOT %rs = f32[8]{0:T(256)} reduce-scatter(%y), dimensions={0}\n")
    found = analysis.collective_counts(text)
    assert found["all-reduce"] == {"count": 1, "bytes": 64 + 128 + 4}
    assert found["all-gather"] == {"count": 1, "bytes": 32}
    assert found["reduce-scatter"] == {"count": 1, "bytes": 32} and found["all-to-all"]["count"] == 0


def test_compile_cli_t5x_run_files_v4_with_decode_and_json(tmp_path: pathlib.Path,
                                                           capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "report.json"
    code = cli.main(["compile", *T5X_FLAGS, "--gin.partitioning.PjitPartitioner.num_partitions=2",
                     "--topology", "v4-8", "--json", str(out)])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    report = json.loads(out.read_text())
    assert report["topology"]["jax_name"] == "v4:2x2x1" and report["devices"] == 4
    assert report["device_kind"] == "TPU v4" and report["hbm_per_chip_bytes"] == 32 * 2**30
    assert report["mesh"] == {"data": 2, "model": 2} and report["settings"]["entry"] == "train_script.train"
    assert report["fits"] is True and report["train_step"]["flops"]["explicit_per_step"] > 0
    for name in ("prefill", "greedy_step"):
        step = report["decode"][name]
        assert step["memory"]["peak_bytes"] > 0 and step["fits"] and step["flops"]["explicit_per_chip"] > 0
    assert report["train_step"]["collectives"]["all-reduce"]["count"] > 0
    assert "train step: peak" in printed.out and "decode greedy_step: peak" in printed.out
    assert "TPU_WORKER_HOSTNAMES" not in printed.err and "TPU_ACCELERATOR_TYPE" not in printed.err


def test_the_compilers_out_of_memory_refusal_is_a_report() -> None:
    message = ("jax.errors.JaxRuntimeError: RESOURCE_EXHAUSTED: Ran out of memory on HBM, the total memory "
               "required for HLO temporaries (33.62G) exceeds available HBM (30.75G).")
    report = analysis.out_of_memory_report(message, 1.0)
    assert report.memory["temp_bytes"] == int(33.62 * 2**30) and report.memory["available_bytes"] == int(30.75 * 2**30)
    assert report.out_of_memory.startswith("jax.errors") and analysis.out_of_memory_report("INTERNAL: x", 1.0) is None


def test_a_config_that_does_not_fit_says_what_would(v5e_steps: dict) -> None:
    setup, _, report = v5e_steps["standard"]
    tips = step_compile.advice(setup, report, hbm=report.peak_bytes // 2, chips=4)
    assert "GiB per chip" in tips[0] and any("fsdp" in tip for tip in tips)
    assert any("remat_policy = 'full'" in tip for tip in tips) and "chips" in tips[-1]


def test_precompile_gin_through_main_writes_t5x_outputs(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture) -> None:
    from jax._src.lib import xla_client

    monkeypatch.setenv("TPU_ACCELERATOR_TYPE", "v5litepod-8")
    code = main.main(["--run_mode=precompile", "--gin_file=t5x/examples/t5/t5_1_1/tiny.gin",
                      "--gin_file=t5x/configs/runs/precompile.gin", f"--gin.MODEL_DIR='{tmp_path}'",
                      "--gin.MIXTURE_OR_TASK_NAME='coinflip_cot'", "--gin.DROPOUT_RATE=0.0",
                      "--gin.TASK_FEATURE_LENGTHS={'inputs': 32, 'targets': 16}", "--gin.BATCH_SIZE=8"])
    assert code == 0, capsys.readouterr().err
    assert "precompiled for v5litepod-8" in capsys.readouterr().out
    assignment = np.load(tmp_path / "assignment")
    assert assignment.shape == (8, 1)  # the mesh of a v5litepod-8: 8 chips, data parallel
    pre = xla_client.XlaComputation((tmp_path / "lowered_hlo_pre_optimization").read_bytes()).as_hlo_text()
    post = xla_client.XlaComputation((tmp_path / "lowered_hlo_post_optimization").read_bytes()).as_hlo_text()
    assert pre.startswith("HloModule") and "ENTRY" in pre
    assert "is_scheduled=true" in post  # optimized for the TPU


def test_missing_libtpu_names_the_install_extra(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setitem(sys.modules, "libtpu", None)
    assert cli.main(["compile", *T5X_FLAGS, "--topology", "v5e-16"]) == 2
    assert 'pip install -e ".[tpu]"' in capsys.readouterr().err
    assert main.main(["--run_mode=precompile"]) == 2
    assert 'pip install -e ".[tpu]"' in capsys.readouterr().err


def test_a_compiling_program_restarts_with_the_largest_stack_limit() -> None:
    """libtpu's compiler threads overflow an 8 MiB stack on T5 Large+ (SIGSEGV): raise it."""
    import resource
    import subprocess

    if resource.getrlimit(resource.RLIMIT_STACK)[1] != resource.RLIM_INFINITY:
        pytest.skip("the hard stack limit is not unlimited here")
    code = ("import resource; print(resource.getrlimit(resource.RLIMIT_STACK)[0], flush=True); "
            "from t5x_cot.compile import topology; topology.run_with_large_stack(); print('after')")
    out = subprocess.run(["bash", "-c", f'ulimit -Ss 8192; exec "{sys.executable}" -c "{code}"'],
                         capture_output=True, text=True, timeout=60, check=True).stdout.split()
    assert out == ["8388608", str(resource.RLIM_INFINITY), "after"]
