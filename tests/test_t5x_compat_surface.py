"""T5X's whole `train()` surface and the model gin's vocabulary: every T5X `train` parameter
works or is refused naming what to use, T5X's hooks and actions, and vocabularies that take
effect (unreadable ones refused by name, public ones mapped to their local copy, a task whose
vocabulary differs from the model's refused before training)."""
from __future__ import annotations

import inspect
import pathlib
import shutil

import pytest

from t5x_cot import gin_utils, t5x_compat
from t5x_cot.t5x_compat import train_script, trainer, utils
from t5x_cot.tasks.vocab import VocabularyError

TINY = "t5x/examples/t5/t5_1_1/tiny.gin"
FINETUNE = "t5x/configs/runs/finetune.gin"
MC4 = "gs://t5-data/vocabs/mc4.250000.100extra/sentencepiece.model"
# T5X's `train.train` signature (google-research/t5x, t5x/train.py).
T5X_TRAIN_PARAMETERS = (
    "model", "train_dataset_cfg", "train_eval_dataset_cfg", "infer_eval_dataset_cfg", "checkpoint_cfg",
    "partitioner", "trainer_cls", "model_dir", "total_steps", "eval_steps", "eval_period", "relative_steps",
    "stats_period", "random_seed", "use_hardware_rng", "summarize_config_fn", "inference_evaluator_cls",
    "get_dataset_fn", "concurrent_metrics", "actions", "train_eval_get_dataset_fn", "run_eval_before_training",
    "train_state_initializer_cls", "use_orbax", "verify_matching_vocabs_fn", "gc_period")


@pytest.fixture(autouse=True)
def _layer() -> None:
    t5x_compat.install()
    t5x_compat.bind_script("train", train_script.train)
    gin_utils.register_configurables()


def test_every_t5x_train_parameter_is_a_parameter_of_train_script_train() -> None:
    ours = inspect.signature(train_script.train).parameters
    assert [name for name in T5X_TRAIN_PARAMETERS if name not in ours] == []


@pytest.mark.parametrize(("binding", "expected"), [
    (dict(use_orbax=False), r"train.use_orbax=False is not available: checkpoints are written with orbax"),
    (dict(gc_period=100), r"train.gc_period=100 is not available: Python's automatic garbage collection"),
    (dict(get_dataset_fn=print), r"train.get_dataset_fn=.* seqio"),
    (dict(train_eval_get_dataset_fn=print), r"train.train_eval_get_dataset_fn=.*train_eval_dataset_cfg"),
    (dict(train_state_initializer_cls=object), r"train.train_state_initializer_cls=.*Trainer"),
    (dict(actions={"TRAIN": [object()]}), r"train.actions\['TRAIN'\]: object is not available"),
    (dict(actions={"EVAL": []}), r"unknown mode 'EVAL'"),
    (dict(actions={"TRAIN_EVAL": [trainer.TerminateOnNanAction("t", metric="accuracy")]}), r"metric='accuracy'"),
])
def test_t5x_train_hooks_without_a_counterpart_are_refused_in_one_line(binding: dict, expected: str,
                                                                        tmp_path: pathlib.Path) -> None:
    with pytest.raises(t5x_compat.UnsupportedT5XFeature, match=expected) as error:
        train_script.train(model=None, train_dataset_cfg=None, checkpoint_cfg=utils.CheckpointConfig(),
                           partitioner=None, model_dir=str(tmp_path), total_steps=1, **binding)
    assert "\n" not in str(error.value)


def test_early_stopping_action_is_refused_and_terminate_on_nan_maps_onto_the_core_switch() -> None:
    with pytest.raises(t5x_compat.UnsupportedT5XFeature, match="EarlyStoppingAction is not available"):
        trainer.EarlyStoppingAction(metric=("task", "loss"), patience=3)
    assert trainer.terminate_on_nan({"TRAIN_EVAL": [trainer.TerminateOnNanAction(task="wmt")]})
    assert not trainer.terminate_on_nan({}) and not trainer.terminate_on_nan(None)


@pytest.mark.needs_data
@pytest.mark.parametrize(("binding", "expected"), [
    ("train_script.train.use_jax_array=True", "params are always jax.Arrays"),
    ("models.EncoderDecoderModel.predict_batch_with_aux.num_decodes=2", "decoding.DecodeConfig"),
    ("utils.get_training_eval_datasets.deterministic=True", "train.train_eval_dataset_cfg"),
    ("utils.RestoreCheckpointConfig.checkpointer_cls=None", None),
])
def test_t5x_names_that_t5x_files_bind(binding: str, expected: str | None, data_dir: pathlib.Path) -> None:
    """Configurables bound by T5X's shipped gin files: accepted, or a one-line error naming what to use."""
    def parse() -> None:
        gin_utils.parse_gin([TINY, FINETUNE], ["DROPOUT_RATE=0.0", binding], [str(data_dir / "t5x_gin")],
                            module_macros=(), require_macros=False)
    if expected is None:
        parse()
        return
    with pytest.raises(gin_utils.GinConfigError, match=expected) as error:
        parse()
    assert "\n" not in str(error.value)


def test_optimizer_state_reset_through_t5xs_assignment_map() -> None:
    keep = utils.RestoreCheckpointConfig(path="/ckpt")
    fresh = utils.RestoreCheckpointConfig(path="/ckpt", assignment_map=((r"state/param_states.*", None),))
    assert keep.restore_optimizer_state and not fresh.restore_optimizer_state
    with pytest.raises(t5x_compat.UnsupportedT5XFeature, match="only entries that skip the optimizer state"):
        utils.RestoreCheckpointConfig(path="/ckpt", assignment_map=((r"target/encoder/(.*)", r"target/decoder/\1"),))
    with pytest.raises(t5x_compat.UnsupportedT5XFeature, match="only entries that skip the optimizer state"):
        utils.RestoreCheckpointConfig(path="/ckpt", assignment_map=((r".*", None),))  # would drop the params too


def _model(data_dir: pathlib.Path, *bindings: str):
    gin_utils.parse_gin([TINY, FINETUNE], ["DROPOUT_RATE=0.0", *bindings], [str(data_dir / "t5x_gin")],
                        module_macros=(), require_macros=False)
    return gin_utils.gin.get_configurable("t5x.models.EncoderDecoderModel")()


@pytest.mark.needs_data
def test_unreadable_model_vocabulary_is_refused_naming_it(data_dir: pathlib.Path, tmp_path: pathlib.Path) -> None:
    with pytest.raises(VocabularyError, match=r"cannot read vocabulary /nonexistent/spm.model.*"
                                              r"seqio.SentencePieceVocabulary.sentencepiece_model_file"):
        _model(data_dir, "seqio.SentencePieceVocabulary.sentencepiece_model_file='/nonexistent/spm.model'")
    junk = tmp_path / "junk.model"
    junk.write_bytes(b"not a sentencepiece model")
    with pytest.raises(VocabularyError, match=rf"vocabulary {junk} is not a SentencePiece model"):
        _model(data_dir, f"seqio.SentencePieceVocabulary.sentencepiece_model_file='{junk}'")


@pytest.mark.needs_data
def test_model_vocabulary_is_the_one_named_and_must_fit_the_model(data_dir: pathlib.Path,
                                                                  tmp_path: pathlib.Path) -> None:
    spm = tmp_path / "my_spm.model"
    shutil.copy(data_dir / "vocab" / "t5_spiece.model", spm)
    model = _model(data_dir, f"seqio.SentencePieceVocabulary.sentencepiece_model_file='{spm}'",
                   "seqio.SentencePieceVocabulary.extra_ids=28")
    assert model.output_vocabulary.sentencepiece_model_file == str(spm)
    assert model.output_vocabulary.vocab_size == 32028 and model.config.vocab_size == 32128
    with pytest.raises(t5x_compat.UnsupportedT5XFeature, match=r"has 32100 ids; network.T5Config.vocab_size is 32000"):
        _model(data_dir, f"seqio.SentencePieceVocabulary.sentencepiece_model_file='{spm}'",
               "seqio.SentencePieceVocabulary.extra_ids=100", "network.T5Config.vocab_size=32000")


@pytest.mark.needs_data
def test_mc4_vocabulary_maps_onto_its_local_copy_or_says_how_to_get_it(
        data_dir: pathlib.Path, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """mT5's gin names gs://t5-data/vocabs/mc4.250000.100extra (out of reach here)."""
    mt5 = [f"seqio.SentencePieceVocabulary.sentencepiece_model_file='{MC4}'", "network.T5Config.vocab_size=250112"]
    monkeypatch.setenv("T5X_COT_DATA_DIR", str(tmp_path))
    with pytest.raises(VocabularyError, match=r"mc4.250000.100extra/sentencepiece.model is not reachable .*"
                                              r"copy it to \$T5X_COT_DATA_DIR/vocab/mc4.250000.100extra.model"):
        _model(data_dir, *mt5)
    (tmp_path / "vocab").mkdir()
    local = tmp_path / "vocab" / "mc4.250000.100extra.model"
    shutil.copy(data_dir / "vocab" / "t5_spiece.model", local)  # stands in for the 250k model
    model = _model(data_dir, *mt5)
    assert model.input_vocabulary.sentencepiece_model_file == str(local)
    assert model.output_vocabulary.extra_ids == 0  # the 100extra file has its extra ids built in


@pytest.mark.needs_data
def test_model_and_task_vocabularies_must_match(data_dir: pathlib.Path, tmp_path: pathlib.Path) -> None:
    """T5X's verify_matching_vocabs: t5x_cot's gsm8k task (T5 + 100 extra ids) against tiny.gin's model."""
    from t5x_cot.data_pipeline import DatasetConfig

    cfg = DatasetConfig("gsm8k_answer_only", {"inputs": 16, "targets": 16}, module="t5x_cot.tasks", use_cached=False)
    utils.verify_matching_vocabs(cfg, _model(data_dir))  # cc_all.32000.100extra: the same vocabulary
    other = _model(data_dir, "seqio.SentencePieceVocabulary.sentencepiece_model_file="
                             "'gs://t5-data/vocabs/cc_all.32000/sentencepiece.model'")
    with pytest.raises(t5x_compat.UnsupportedT5XFeature,
                       match=r"Model and Task vocabularies do not match: task gsm8k_answer_only inputs uses "
                             r".*t5_spiece.model \(\+100 extra ids\), .*\(\+0 extra ids\)"):
        utils.verify_matching_vocabs(cfg, other)
    with pytest.raises(t5x_compat.UnsupportedT5XFeature, match="Model and Task vocabularies do not match"):
        train_script.train(model=other, train_dataset_cfg=cfg, checkpoint_cfg=utils.CheckpointConfig(),
                           partitioner=None, model_dir=str(tmp_path), total_steps=1)


# T5X's `eval.evaluate` and `infer.infer` signatures (google-research/t5x, t5x/eval.py, t5x/infer.py).
T5X_SCRIPT_PARAMETERS = {
    "evaluate": ("model", "dataset_cfg", "restore_checkpoint_cfg", "partitioner", "output_dir",
                 "inference_evaluator_cls", "training_evaluator_cls", "summarize_config_fn",
                 "train_state_initializer_cls", "train_eval_get_dataset_fn", "fallback_init_rng", "use_orbax"),
    "infer": ("mode", "model", "dataset_cfg", "restore_checkpoint_cfg", "partitioner", "output_dir",
              "checkpoint_period", "shard_id", "num_shards", "merge_chunked_results", "write_fn",
              "checkpoint_ds_iter", "train_state_initializer_cls", "fallback_init_rng", "merge_fn",
              "summarize_config_fn", "verify_matching_vocabs_fn", "output_vocab_feature_name", "file_extension",
              "keep_aux_as_numpy", "use_orbax"),
}


@pytest.mark.parametrize("script", sorted(T5X_SCRIPT_PARAMETERS))
def test_every_t5x_evaluate_and_infer_parameter_works_or_names_what_to_use(script: str) -> None:
    from t5x_cot import eval as eval_lib
    from t5x_cot import infer as infer_lib

    ours = inspect.signature({"evaluate": eval_lib.evaluate, "infer": infer_lib.infer}[script]).parameters
    unanswered = [name for name in T5X_SCRIPT_PARAMETERS[script]
                  if name not in ours and not gin_utils.hint_for(f"{script}.{name}")]
    assert unanswered == []
