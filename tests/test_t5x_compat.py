"""The T5X compatibility layer: T5X's gin files and names load unchanged and build our objects
with T5X's semantics; unsupported bindings and misplaced T5X names say what to use instead."""
from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import textwrap
import time

import jax
import numpy as np
import pytest

from t5x_cot import checkpoints, data_pipeline, gin_utils, paths, t5x_compat
from t5x_cot.t5x_compat import train_script

REPO = pathlib.Path(__file__).resolve().parents[1]
T5X_GIN = "t5x_gin"  # under T5X_COT_DATA_DIR: T5X's own files, unchanged
MODEL_FILES = [f"t5x/examples/t5/{version}/{name}.gin"
               for version, names in (("t5_1_0", ("tiny", "small", "base", "large", "3B", "11B")),
                                      ("t5_1_1", ("tiny", "small", "base", "large", "xl", "xxl")))
               for name in names]
TINY = "t5x/examples/t5/t5_1_1/tiny.gin"
FINETUNE = "t5x/configs/runs/finetune.gin"
FIXTURE = "t5x_checkpoints/test_t5_tiny.checkpoint_0"
REQUIRED = ["MODEL_DIR='/tmp/unused'", "MIXTURE_OR_TASK_NAME='synthetic_copy'",
            "TASK_FEATURE_LENGTHS={'inputs': 16, 'targets': 16}", "TRAIN_STEPS=4",
            "INITIAL_CHECKPOINT_PATH=None", "MIXTURE_OR_TASK_MODULE='synthetic_task'"]


@pytest.fixture(autouse=True)
def _layer() -> None:
    t5x_compat.install()
    t5x_compat.bind_script("train", train_script.train)
    gin_utils.register_configurables()


def _parse(files: list[str], bindings: list[str], search_paths: list[str] = ()) -> None:
    gin_utils.parse_gin(files, bindings, list(search_paths), module_macros=(), require_macros=False)


def test_t5x_modules_alias_ours_only_without_real_t5x(tmp_path: pathlib.Path) -> None:
    import t5x.utils
    from t5x.examples.t5 import network

    from t5x_cot.model import network as core_network

    assert t5x.utils.DatasetConfig.__module__ == "t5x_cot.t5x_compat.utils"
    assert network.T5Config is core_network.T5Config
    with pytest.raises(ModuleNotFoundError, match="t5x.decoding.*provides t5x.utils"):
        import t5x.decoding  # noqa: F401
    # With a real t5x package importable, the layer stays out of the way.
    (tmp_path / "t5x").mkdir()
    (tmp_path / "t5x" / "__init__.py").write_text("REAL = True\n")
    code = ("from t5x_cot import t5x_compat; active = t5x_compat.install(); import t5x; "
            "print(active, getattr(t5x, 'REAL', False))")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{REPO}"})
    assert out.stdout.split() == ["False", "True"], out.stderr[-2000:]


@pytest.mark.needs_data
@pytest.mark.parametrize("model_file", MODEL_FILES)
def test_our_files_at_t5x_paths_build_the_same_model_as_t5xs(model_file: str, data_dir: pathlib.Path) -> None:
    """Each T5X model file, T5X's own (via --gin_search_paths) and ours (shipped), with T5X's
    finetune.gin: the same T5Config, losses, optimizer settings and vocabulary."""
    built = []
    for search in ([str(data_dir / T5X_GIN)], []):
        _parse([model_file, FINETUNE], REQUIRED, search)
        model = gin_utils.gin.get_configurable("t5x.models.EncoderDecoderModel")()
        assert gin_utils.gin.config._LOCATION_PREFIXES[0] == (search or [str(REPO / "gin")])[0]
        built.append((model.config, model.z_loss, model.label_smoothing, model.loss_normalizing_factor,
                      model.optimizer_def.settings, model.input_vocabulary.vocab_size))
    assert built[0] == built[1]
    assert built[0][1] == 1e-4 and built[0][4]["decay_rate"] == 0.8


@pytest.mark.needs_data
def test_every_t5x_run_file_parses_with_its_names(data_dir: pathlib.Path) -> None:
    from t5x_cot import eval as eval_lib
    from t5x_cot import infer as infer_lib

    t5x_compat.bind_script("evaluate", eval_lib.evaluate)
    t5x_compat.bind_script("infer", infer_lib.infer)
    for search in ([str(data_dir / T5X_GIN)], []):
        for run in ("finetune", "pretrain", "eval", "infer"):
            _parse([TINY, f"t5x/configs/runs/{run}.gin"], ["DROPOUT_RATE=0.0"], search)


@pytest.mark.needs_data
def test_t5x_bindings_take_effect(data_dir: pathlib.Path) -> None:
    """T5X names on the command line reach the objects train receives, with T5X's meaning."""
    get = gin_utils.gin.get_configurable
    _parse([TINY, FINETUNE], [*REQUIRED, "utils.SaveCheckpointConfig.period=7", "utils.SaveCheckpointConfig.keep=3",
                              "utils.RestoreCheckpointConfig.dtype='bfloat16'",
                              "partitioning.PjitPartitioner.num_partitions=1",
                              "partitioning.standard_logical_axis_rules.parameter_partitioning_dims=2",
                              "trainer.Trainer.num_microbatches=2",
                              "utils.create_learning_rate_scheduler.factors='constant * linear_warmup'",
                              "utils.create_learning_rate_scheduler.warmup_steps=10",
                              "adafactor.Adafactor.decay_rate=0.7", "models.EncoderDecoderModel.z_loss=0.001",
                              "network.T5Config.emb_dim=16", "train/utils.DatasetConfig.batch_size=4",
                              "train.stats_period=3"], [str(data_dir / T5X_GIN)])
    checkpoint_cfg = get("t5x.utils.CheckpointConfig")()
    assert (checkpoint_cfg.save.period, checkpoint_cfg.save.keep, checkpoint_cfg.restore.dtype) == (7, 3, "bfloat16")
    partitioner = get("t5x.partitioning.PjitPartitioner")()
    assert ("embed", "data") in partitioner.rules  # 2-D parameter partitioning
    trainer = get("t5x.trainer.Trainer")()
    assert trainer.num_microbatches == 2
    assert float(trainer.learning_rate_fn(5)) == pytest.approx(0.001 * 0.5)
    model = get("t5x.models.EncoderDecoderModel")()
    assert (model.z_loss, model.config.emb_dim, model.optimizer_def.settings["decay_rate"]) == (0.001, 16, 0.7)
    assert gin_utils.gin.query_parameter("train/t5x.utils.DatasetConfig.batch_size") == 4
    selector = gin_utils.gin.config._inverse_lookup(train_script.train).selector
    assert gin_utils.gin.query_parameter(f"{selector}.stats_period") == 3


@pytest.mark.needs_data
@pytest.mark.parametrize(("binding", "expected"), [
    ("adafactor.Adafactor.skip_nan_updates=True", r"TerminateOnNanAction"),
    ("utils.RestoreCheckpointConfig.use_gda=False", "always restored as jax.Arrays"),
    ("utils.SaveCheckpointConfig.dtype='bfloat16'", "t5x-cot convert"),
    ("utils.DatasetConfig.use_custom_packing_ops=True", "seqio's own packing"),
])
def test_unsupported_t5x_binding_is_rejected_naming_the_alternative(binding: str, expected: str,
                                                                    data_dir: pathlib.Path) -> None:
    from t5x_cot import train as train_lib

    _parse([TINY, FINETUNE], [*REQUIRED, binding], [str(data_dir / T5X_GIN)])
    selector = binding.split("=")[0].rsplit(".", 1)[0]
    with pytest.raises(t5x_compat.UnsupportedT5XFeature, match=expected):
        configurable = gin_utils.gin.get_configurable(selector)
        configurable(**({} if "Dataset" not in selector else
                        dict(mixture_or_task_name="x", task_feature_lengths=None)))
    assert train_lib.main(["--gin_search_paths", str(data_dir / T5X_GIN), f"--gin_file={TINY}",
                           f"--gin_file={FINETUNE}", *[f"--gin.{b}" for b in REQUIRED],
                           f"--gin.{binding}"]) == 2


def test_t5x_names_in_our_run_files_name_what_to_use() -> None:
    """In a fresh process (T5X's modules not registered by a T5X file), each T5X name used with
    gin/runs/finetune.gin is an error that names our equivalent."""
    cases = {"utils.SaveCheckpointConfig.period=5": "CheckpointConfig.period",
             "partitioning.PjitPartitioner.num_partitions=2": "partitioning.Partitioner",
             "train.stats_period=5": "train.log_every",
             "USE_HARDWARE_RNG=True": "t5x/configs/runs/finetune.gin"}
    code = textwrap.dedent(f"""\
        from t5x_cot import gin_utils, t5x_compat
        t5x_compat.install(); gin_utils.register_configurables()
        for binding in {list(cases)!r}:
            try:
                gin_utils.parse_gin(["gin/models/t5_1_1/tiny.gin", "gin/runs/finetune.gin"],
                                    {REQUIRED[:4]!r} + [binding], module_macros=())
                print("accepted", binding)
            except gin_utils.GinConfigError as error:
                print(error)
        """)
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    lines = out.stdout.strip().splitlines()
    assert len(lines) == len(cases), out.stderr[-2000:]
    for line, (binding, expected) in zip(lines, cases.items()):
        assert binding.split("=")[0].rsplit(".", 1)[0].split(".")[-1] in line and expected in line, line


def test_real_import_error_is_not_swallowed(tmp_path: pathlib.Path) -> None:
    gin_file = tmp_path / "mine.gin"
    gin_file.write_text(textwrap.dedent("""\
        from __gin__ import dynamic_registration
        from t5x import partitioning
        from t5x import decoding
        partitioning.PjitPartitioner.num_partitions = 1
        """))
    with pytest.raises(gin_utils.GinConfigError) as error:
        gin_utils.parse_gin([str(gin_file)], [])
    assert "mine.gin:3" in str(error.value) and "No module named 't5x.decoding'" in str(error.value)
    assert "gin/runs/decode.gin" in str(error.value)


def test_includes_ignore_a_runs_folder_in_the_cwd(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "runs").mkdir()
    for name in ("decode.gin", "finetune.gin"):
        (tmp_path / "runs" / name).write_text("this is not gin (\n")
    monkeypatch.chdir(tmp_path)
    gin_utils.parse_gin(["gin/runs/eval.gin", "gin/models/t5_1_1/tiny.gin"], [], module_macros=(),
                        require_macros=False)
    gin_utils.parse_gin(["gin/models/t5_1_1/tiny.gin", "gin/runs/pretrain.gin"], REQUIRED[:4], module_macros=())
    assert gin_utils.macro_value("DROPOUT_RATE") == 0.0  # pretrain.gin over the included runs/finetune.gin


def test_use_cached_tasks_without_a_cache_says_how_to_build_it() -> None:
    import synthetic_task

    config = data_pipeline.DatasetConfig(synthetic_task.register(), {"inputs": 8, "targets": 8},
                                         use_cached=True, module="synthetic_task")
    with pytest.raises(data_pipeline.DataConfigError,
                       match="seqio.scripts.cache_tasks_main.*--seqio_additional_cache_dirs.*USE_CACHED_TASKS=False"):
        data_pipeline.get_task(config)


@pytest.mark.needs_data
def test_public_vocab_path_resolves_to_the_checked_local_copy(data_dir: pathlib.Path, tmp_path: pathlib.Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    import seqio

    from t5x_cot.t5x_compat import vocab
    from t5x_cot.tasks.vocab import VocabularyError

    public = seqio.SentencePieceVocabulary("gs://t5-data/vocabs/cc_all.32000.100extra/sentencepiece.model")
    local = vocab.localize(public)
    assert local.sentencepiece_model_file == str(data_dir / "vocab" / "t5_spiece.model")
    assert local.vocab_size == 32100 and local.decode(local.encode("The answer is 7.")) == "The answer is 7."
    # A local copy whose checksum does not match is never used: the public path is refused, saying how.
    (tmp_path / "vocab").mkdir()
    (tmp_path / "vocab" / "t5_spiece.model").write_bytes(b"not the model")
    monkeypatch.setenv("T5X_COT_DATA_DIR", str(tmp_path))
    with pytest.raises(VocabularyError, match=r"cc_all.32000.100extra/sentencepiece.model is not reachable.*"
                                              r"copy it to \$T5X_COT_DATA_DIR/vocab/t5_spiece.model"):
        vocab.localize(public)


@pytest.mark.needs_data
def test_restore_checkpoint_reads_t5x_checkpoints_with_their_step(data_dir: pathlib.Path, tmp_path: pathlib.Path) -> None:
    from train_helpers import write_t5x_checkpoint

    from t5x_cot.interop.t5x_ckpt import T5XCheckpoint
    from t5x_cot.model.network import T5Config

    config = T5Config(emb_dim=8, num_heads=4, num_encoder_layers=2, num_decoder_layers=2, head_dim=3, mlp_dim=16,
                      mlp_activations=("gelu", "linear"))
    params, step = checkpoints.restore_checkpoint(data_dir / FIXTURE, config)
    stored = T5XCheckpoint(data_dir / FIXTURE).read_param("encoder/layers_0/mlp/wi_0/kernel")
    assert step == 0 and np.array_equal(params["encoder"]["layers_0"]["mlp"]["wi_0"]["kernel"], stored)
    rounded, _ = checkpoints.restore_checkpoint(data_dir / FIXTURE, config, dtype="bfloat16")
    assert rounded["token_embedder"]["embedding"].dtype == jax.numpy.bfloat16
    write_t5x_checkpoint(tmp_path / "checkpoint_1200", params, 1200)
    sharding = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, np.float32, sharding=sharding), params)
    again, step = checkpoints.restore_checkpoint(tmp_path / "checkpoint_1200", abstract)
    assert step == 1200 and isinstance(jax.tree.leaves(again)[0], jax.Array)
    assert all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(again)))
    with pytest.raises(checkpoints.CheckpointError, match="no params"):
        checkpoints.restore_checkpoint(data_dir / "t5x_checkpoints/tiny_tensorstore/checkpoint_1", config)


def test_path_layer_on_a_filesystem_that_is_not_the_local_disk() -> None:
    root = "memory://t5x_cot_test/run"
    paths.check_writable(root)
    paths.write_text(paths.join(root, "config.json"), "{}")
    assert paths.read_text(paths.join(root, "config.json")) == "{}" and paths.is_dir(root)
    assert not os.path.exists("memory:") and not os.path.exists("memory:/t5x_cot_test")
    checkpoints.write_config(root, checkpoints.config_from_dict({"emb_dim": 8}))
    assert checkpoints.read_config_dict(root)["emb_dim"] == 8


@pytest.mark.parametrize(("kind", "run_files"), [
    ("under_a_file", ("gin/models/t5_1_1/tiny.gin", "gin/runs/finetune.gin")),
    ("remote", ("gin/models/t5_1_1/tiny.gin", "gin/runs/finetune.gin")),
    ("remote", (TINY, FINETUNE)),
])
def test_unwritable_model_dir_fails_fast_before_compiling(kind: str, run_files: tuple[str, str], tmp_path: pathlib.Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    import synthetic_task  # noqa: F401 - MIXTURE_OR_TASK_MODULE (TensorFlow): its import time is not the check's

    from t5x_cot import train as train_lib

    (tmp_path / "a_file").write_text("x")
    model_dir = str(tmp_path / "a_file" / "run") if kind == "under_a_file" else "gs://t5x-cot-no-such-bucket/run"
    start = time.monotonic()
    code = train_lib.main([f"--gin_file={run_files[0]}", f"--gin_file={run_files[1]}", *[f"--gin.{b}" for b in REQUIRED],
                           f"--gin.MODEL_DIR='{model_dir}'", "--gin.USE_CACHED_TASKS=False"])
    elapsed = time.monotonic() - start
    err = capsys.readouterr()
    assert code == 2 and f"MODEL_DIR {model_dir} cannot be written" in err.err
    assert elapsed < 10 and "step 1" not in err.out
    assert not (tmp_path / "gs:").exists()


def test_t5x_absl_flags_take_effect(monkeypatch: pytest.MonkeyPatch) -> None:
    import argparse
    import logging

    import seqio

    parser = argparse.ArgumentParser()
    gin_utils.add_t5x_flags(parser)
    args = parser.parse_args(["--alsologtostderr", "--tfds_data_dir=/data/tfds", "--seqio_additional_cache_dirs=/c1,/c2",
                              "--seqio_additional_cache_dirs=/c3", "--multiprocess_gpu=false",
                              "--coordinator_address=10.0.0.1:1234", "--process_count=2", "--process_index=1"])
    assert (args.multiprocess_gpu, args.process_count, args.process_index) == (False, 2, 1)
    monkeypatch.setattr(seqio.utils, "_GLOBAL_CACHE_DIRECTORIES", [])
    monkeypatch.setattr(seqio.utils, "_TFDS_DATA_DIR_OVERRIDE", None)
    root = logging.getLogger()
    monkeypatch.setattr(root, "level", root.level)
    args.coordinator_address = None  # initialising JAX's multi-process runtime is test_multihost's job
    gin_utils.apply_t5x_flags(args)
    assert seqio.utils.get_global_cache_dirs() == ["/c1", "/c2", "/c3"]
    assert seqio.utils._TFDS_DATA_DIR_OVERRIDE == "/data/tfds"
    assert root.level == logging.INFO
