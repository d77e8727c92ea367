"""Distilling step-by-step tasks and mixtures through the real seqio pipeline."""
from __future__ import annotations

import functools
import pathlib

import pytest

seqio = pytest.importorskip("seqio")
import gin  # noqa: E402

import t5x_cot.tasks  # noqa: E402,F401  (registers the tasks)
from t5x_cot import answers  # noqa: E402
from t5x_cot.data.records import write_records  # noqa: E402
from t5x_cot.tasks import dsbs, metrics, sources, vocab  # noqa: E402

pytestmark = pytest.mark.needs_data

QUESTIONS = 60


@pytest.fixture(scope="module", autouse=True)
def cot_dir(data_dir, tmp_path_factory) -> pathlib.Path:
    """Coinflip and StrategyQA CoT records (gold rationales as the teacher's) in T5X_COT_COT_DIR."""
    directory = tmp_path_factory.mktemp("cot")
    for task in ("coinflip", "strategyqa"):
        records = [{"id": e.id, "task": task, "split": "train", "question": e.question,
                    "answer": e.answer, "rationale": sources.gold_rationale(e),
                    "teacher_answer": e.answer, "correct": True,
                    "teacher": {"endpoint": "offline", "model": "gold", "params": {}},
                    "prompt_id": "gold", "sample_index": 0, "usage": {}}
                   for e in sources.dataset_examples(task, "train")[:QUESTIONS]]
        write_records(directory / f"{task}.jsonl", records)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("T5X_COT_COT_DIR", str(directory))
        for task in sources.TASKS:
            mp.delenv(f"T5X_COT_{task.upper()}_COT", raising=False)
        yield directory
    gin.clear_config()


def _decoded(task_name: str, split: str) -> list[tuple[str, str, str]]:
    """(inputs, targets, answer) of a task split, tokenized by seqio and decoded back."""
    vocabulary = vocab.get_vocabulary()
    task = seqio.get_mixture_or_task(task_name)
    return [(vocabulary.decode(ex["inputs"].tolist()), vocabulary.decode(ex["targets"].tolist()),
             ex["answer"].decode())
            for ex in task.get_dataset(None, split=split, shuffle=False).as_numpy_iterator()]


def test_every_cot_task_has_a_dsbs_mixture_of_label_and_rationale_tasks():
    for task in sources.TASKS:
        mixture = seqio.get_mixture_or_task(f"{task}_dsbs")
        assert isinstance(mixture, seqio.Mixture)
        assert [t.name for t in mixture.tasks] == [f"{task}_dsbs_label", f"{task}_dsbs_rationale"]
        assert set(mixture.tasks[0].splits) == {"train", "validation", "test"}


@pytest.mark.parametrize("task", ["coinflip", "strategyqa"])
def test_label_and_rationale_tasks_split_the_cot_target_by_prefix(task):
    cot = {(inputs, answer): targets for inputs, targets, answer in _decoded(f"{task}_cot", "train")}
    label = _decoded(f"{task}_dsbs_label", "train")
    rationale = _decoded(f"{task}_dsbs_rationale", "train")
    assert len(label) == len(rationale) == len(cot) > 0
    for (l_in, l_target, answer), (r_in, r_target, r_answer) in zip(label, rationale, strict=True):
        question = l_in.removeprefix(dsbs.LABEL_PREFIX)
        assert l_in.startswith("[label] ") and r_in == "[rationale] " + question
        assert answer == r_answer and l_target == f"The answer is {answer}."
        assert "The answer is" not in r_target and r_target
        assert cot[(question, answer)] == f"{r_target} The answer is {answer}."


def test_label_task_scores_answer_accuracy_like_the_answer_only_task():
    label = seqio.get_mixture_or_task("strategyqa_dsbs_label")
    assert label.metric_fns == seqio.get_mixture_or_task("strategyqa_answer_only").metric_fns
    rows = label.source.rows("test")[:20]
    targets = [label.postprocess_fn(r["targets"], example=r, is_target=True) for r in rows]
    right = [label.postprocess_fn(f"The answer is {r['answer']}.") for r in rows]
    wrong = [label.postprocess_fn("The answer is {}.".format("no" if r["answer"] == "yes" else "yes"))
             for r in rows]
    assert metrics.accuracy(targets, right)["accuracy"] == 100.0
    assert metrics.accuracy(targets, wrong)["accuracy"] == 0.0
    rationale = seqio.get_mixture_or_task("strategyqa_dsbs_rationale")
    assert rationale.metric_fns == [metrics.mean_length]


def _rationale_share(seed: int) -> float:
    """Share of rationale-task examples among 400 packed-free mixture examples."""
    dataset = seqio.get_dataset("coinflip_dsbs", {"inputs": 64, "targets": 96},
                                seqio.EncDecFeatureConverter(pack=False), dataset_split="train",
                                shuffle=True, seed=seed, num_epochs=None)
    prefix = vocab.get_vocabulary().encode(dsbs.RATIONALE_PREFIX.strip())
    hits = [ex["encoder_input_tokens"][:len(prefix)].tolist() == prefix
            for ex in dataset.take(400).as_numpy_iterator()]
    return sum(hits) / len(hits)


def test_rationale_weight_is_the_gin_set_mixing_rate_of_the_rationale_task():
    mixture = seqio.get_mixture_or_task("coinflip_dsbs")
    label, rationale = mixture.tasks
    assert (mixture.get_rate(label), mixture.get_rate(rationale)) == (1.0, 1.0)
    assert 0.4 < _rationale_share(seed=3) < 0.6
    gin.parse_config("dsbs_rationale_weight.value = 0.25")
    try:
        assert mixture.get_rate(rationale) == 0.25
        assert 0.12 < _rationale_share(seed=3) < 0.28  # expected 0.25 / 1.25 = 0.2
        gin.parse_config("dsbs_rationale_weight.value = -1.0")
        with pytest.raises(ValueError, match="dsbs_rationale_weight.value=-1.0"):
            mixture.get_rate(rationale)
    finally:
        gin.clear_config()


def test_register_dsbs_derives_tasks_from_any_row_source_task():
    rows = [{"id": f"q{i}", "inputs": f"Is {i} even?", "answer": "yes" if i % 2 == 0 else "no",
             "targets": answers.format_target(f"{i} mod 2 is {i % 2}.", "yes" if i % 2 == 0 else "no")}
            for i in range(6)]
    base = "coinflip_toy_base"
    seqio.TaskRegistry.remove(base)
    seqio.TaskRegistry.add(
        base, source=sources.RowSource(functools.partial(lambda r, split: r, rows), ("train",)),
        output_features=seqio.get_mixture_or_task("coinflip_cot").output_features,
        preprocessors=[seqio.preprocessors.tokenize, seqio.preprocessors.append_eos],
        postprocess_fn=seqio.get_mixture_or_task("coinflip_cot").postprocess_fn,
        metric_fns=[metrics.accuracy])
    name = dsbs.register_dsbs(base, replace=True)
    assert name == "coinflip_toy_base_dsbs"
    decoded = _decoded(f"{name}_rationale", "train")
    assert decoded[3][:2] == ("[rationale] Is 3 even?", "3 mod 2 is 1.")
    assert _decoded(f"{name}_label", "train")[3][:2] == ("[label] Is 3 even?", "The answer is no.")
    assert seqio.get_mixture_or_task(f"{name}_label").metric_fns == [metrics.accuracy]
    seqio.TaskRegistry.remove("not_rows")
    seqio.TaskRegistry.add("not_rows", source=seqio.FunctionDataSource(
        lambda split, shuffle_files: None, splits=("train",)), output_features={}, preprocessors=[])
    dsbs.register_dsbs("not_rows", replace=True)
    with pytest.raises(TypeError, match="not_rows does not read a t5x_cot RowSource"):
        seqio.get_mixture_or_task("not_rows_dsbs_label").source.rows("train")
