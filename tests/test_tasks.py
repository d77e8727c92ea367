"""SeqIO tasks: registration, real-data iteration, splits, fractions, CoT records, TFDS, lengths."""
from __future__ import annotations

import json
import logging
import os
import pathlib
import re
import subprocess
import sys

import pytest

seqio = pytest.importorskip("seqio")
import gin  # noqa: E402

import t5x_cot.tasks  # noqa: E402,F401  (registers the tasks)
from t5x_cot import answers, gin_utils  # noqa: E402
from t5x_cot.data import DataError  # noqa: E402
from t5x_cot.data.records import write_records  # noqa: E402
from t5x_cot.tasks import lengths, registry, sources, splits, vocab  # noqa: E402

pytestmark = pytest.mark.needs_data

COT_QUESTIONS = {"gsm8k": 400, "strategyqa": 120, "coinflip": 120}
UNIT_HASH_QUESTION_1 = 0.6944058512402079
TARGET_RE = re.compile(r"(^|\s)The answer is [^ ].*\.$")


def _record(example, rationale: str, sample_index: int, correct: bool = True) -> dict:
    return {"id": example.id, "task": example.task, "split": "train",
            "question": example.question, "answer": example.answer, "rationale": rationale,
            "teacher_answer": example.answer if correct else "nothing", "correct": correct,
            "teacher": {"endpoint": "http://127.0.0.1:8000/v1", "model": "test-teacher",
                        "params": {"temperature": 0.7, "max_tokens": 256}},
            "prompt_id": "wei2022", "sample_index": sample_index,
            "usage": {"prompt_tokens": 700, "completion_tokens": 60}}


def _write_jsonl(path: pathlib.Path, records: list) -> pathlib.Path:
    """Raw lines (dicts as JSON, strings as they are), so malformed files can be written."""
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))
    return path


@pytest.fixture(scope="module")
def cot_dir(data_dir, tmp_path_factory) -> pathlib.Path:
    """CoT record files built from real training questions: two rationales per question
    (gold rationale, and a shortened one), plus one record with a wrong teacher answer."""
    directory = tmp_path_factory.mktemp("cot")
    for task, count in COT_QUESTIONS.items():
        examples = sources.dataset_examples(task, "train")[:count]
        records = []
        for ex in examples:
            rationale = sources.gold_rationale(ex)
            records += [_record(ex, rationale, 0), _record(ex, rationale.split(". ")[0] + ".", 1)]
        records.append(_record(examples[0], "A wrong rationale.", 2, correct=False))
        write_records(directory / f"{task}.jsonl", records)
    return directory


@pytest.fixture(scope="module", autouse=True)
def _env(data_dir, cot_dir):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("T5X_COT_COT_DIR", str(cot_dir))
        mp.delenv("T5X_COT_VOCAB", raising=False)
        for task in sources.TASKS:
            mp.delenv(f"T5X_COT_{task.upper()}_COT", raising=False)
        yield


def _ids(task_name: str, split: str) -> list[str]:
    return [r["id"] for r in seqio.get_mixture_or_task(task_name).source.rows(split)]


def test_registers_every_name_once_and_again():
    names = set(seqio.TaskRegistry.names())
    expected = {f"{t}_{v}" for t in sources.TASKS for v in ("cot", "gold_cot", "answer_only")}
    expected |= {"gsm8k_cot_frac12", "gsm8k_cot_frac25", "gsm8k_cot_frac50",
                 "gsm8k_gold_cot_calc", "coinflip_ood3", "coinflip_ood4"}
    assert expected <= names and set(registry.task_names()) == expected
    assert {"cot_all", "gold_cot_all", "answer_only_all"} <= set(seqio.MixtureRegistry.names())
    registry.register()  # a second registration is a no-op, not seqio's duplicate error
    for name in expected:
        assert set(seqio.get_mixture_or_task(name).splits) <= {"train", "validation", "test"}


def test_importable_from_any_directory(tmp_path):
    code = ("import importlib, seqio, t5x_cot.tasks; importlib.reload(t5x_cot.tasks); "
            "print(len(seqio.TaskRegistry.get('gsm8k_cot').splits))")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                         text=True, timeout=120, check=True)
    assert out.stdout.strip().endswith("3")


def test_every_task_split_decodes_to_questions_and_answer_grammar(vocab_path):
    vocabulary = vocab.get_vocabulary(str(vocab_path))
    examples = [e for t in sources.TASKS for e in sources.dataset_examples(t, "train")]
    examples += [e for t in sources.TASKS for e in sources.examples_for(t, "test")]
    examples += [e for p in (3, 4) for e in sources.dataset_examples("coinflip", f"test_ood{p}")]
    questions = {e.id: sources.clean_text(e.question) for e in examples}
    for name in registry.task_names():
        task = seqio.get_mixture_or_task(name)
        for split in task.splits:
            ds = task.get_dataset(None, split=split, shuffle=False)
            for ex in ds.take(2).as_numpy_iterator():
                inputs = vocabulary.decode(ex["inputs"].tolist())
                targets = vocabulary.decode(ex["targets"].tolist())
                assert ex["inputs"][-1] == ex["targets"][-1] == vocabulary.eos_id
                assert inputs == questions[ex["id"].decode()], (name, split)
                assert TARGET_RE.search(targets), (name, split, targets)
                answer = ex["answer"].decode()
                assert answers.extract_answer(
                    targets, answers.ANSWER_TYPES[name.split("_")[0]]) == answer
                if "answer_only" in name and split != "test":
                    assert targets == f"The answer is {answer}."


def test_splits_are_deterministic_disjoint_and_paper_sized():
    for task in sources.TASKS:
        train, val = _ids(f"{task}_gold_cot", "train"), _ids(f"{task}_gold_cot", "validation")
        full = [e.id for e in sources.dataset_examples(task, "train")]
        assert not set(train) & set(val) and sorted(train + val) == sorted(full)
        assert 0.08 < len(val) / len(full) < 0.12
        assert val == _ids(f"{task}_answer_only", "validation")  # same questions held out
    assert len(_ids("gsm8k_gold_cot", "test")) == 1319
    assert len(_ids("strategyqa_gold_cot", "test")) == 229
    assert len(_ids("coinflip_gold_cot", "test")) == sources.COINFLIP_SETS["test"].num_examples
    train_questions = {r["inputs"] for s in ("train", "validation")
                       for r in seqio.get_mixture_or_task("coinflip_gold_cot").source.rows(s)}
    assert not train_questions & set(
        r["inputs"] for r in seqio.get_mixture_or_task("coinflip_gold_cot").source.rows("test"))
    for name, people in (("coinflip_gold_cot", 2), ("coinflip_ood3", 3), ("coinflip_ood4", 4)):
        rows = seqio.get_mixture_or_task(name).source.rows("test")
        assert all(r["inputs"].count(" the coin.") == people for r in rows), name
    # the hash is SHA-256 based: the same in every process and Python version
    assert splits.unit_hash("question-1", "validation") == pytest.approx(UNIT_HASH_QUESTION_1)


def test_cot_task_reads_records_keeps_question_samples_together_and_drops_wrong(cot_dir):
    rows = sources.record_rows("gsm8k")
    assert len(rows) == 2 * COT_QUESTIONS["gsm8k"]  # the wrong-answer record is dropped
    train, val = _ids("gsm8k_cot", "train"), _ids("gsm8k_cot", "validation")
    assert not set(train) & set(val)
    assert all(train.count(i) == 2 for i in set(train))
    gold_val = set(_ids("gsm8k_gold_cot", "validation"))
    assert set(val) <= gold_val  # the same questions are held out as for gold CoT


def test_fractions_nest_by_question():
    full = _ids("gsm8k_cot", "train")
    previous: set[str] = set()
    for name, fraction in (("gsm8k_cot_frac12", .125), ("gsm8k_cot_frac25", .25),
                           ("gsm8k_cot_frac50", .5)):
        ids = _ids(name, "train")
        assert previous <= set(ids) <= set(full)
        assert all(ids.count(i) == full.count(i) for i in set(ids))  # all rationales together
        assert abs(len(set(ids)) / len(set(full)) - fraction) < 0.07
        assert _ids(name, "validation") == _ids("gsm8k_cot", "validation")
        previous = set(ids)


def test_gin_and_env_choose_the_records_file(tmp_path):
    ex = sources.dataset_examples("coinflip", "train")[0]
    custom = tmp_path / "mine.jsonl"
    write_records(custom, [_record(ex, "One flip.", 0)])
    os.environ["T5X_COT_COINFLIP_COT"] = str(custom)
    try:
        assert sources.cot_records_file("coinflip") == custom
        assert len(sources.record_rows("coinflip")) == 1
    finally:
        del os.environ["T5X_COT_COINFLIP_COT"]
    with gin.unlock_config():
        gin.bind_parameter("cot_records_file.cot_dir", str(tmp_path / "elsewhere"))
    try:
        assert sources.cot_records_file("coinflip") == tmp_path / "elsewhere" / "coinflip.jsonl"
        with pytest.raises(sources.MissingRecordsError, match="elsewhere/coinflip.jsonl"):
            seqio.get_mixture_or_task("coinflip_cot").get_dataset(None, split="train")
    finally:
        gin.clear_config()


@pytest.mark.parametrize("bad_line, field", [
    ("{not json", None),
    ("missing_field", "rationale"),
    ("empty_rationale", "rationale"),
])
def test_malformed_records_fail_when_the_task_is_built(tmp_path, bad_line, field):
    examples = sources.dataset_examples("strategyqa", "train")[:3]
    records: list = [_record(e, "A fact.", 0) for e in examples]
    if bad_line == "missing_field":
        records[2] = {k: v for k, v in records[2].items() if k != "rationale"}
    elif bad_line == "empty_rationale":
        records[2] = dict(records[2], rationale="  ")
    else:
        records[2] = bad_line
    path = _write_jsonl(tmp_path / "strategyqa.jsonl", records)
    os.environ["T5X_COT_STRATEGYQA_COT"] = str(path)
    try:
        with pytest.raises(DataError) as info:
            seqio.get_mixture_or_task("strategyqa_cot").get_dataset(None, split="train")
    finally:
        del os.environ["T5X_COT_STRATEGYQA_COT"]
    message = str(info.value)
    assert str(path) in message and ":3" in message
    if field:
        assert field in message


@pytest.mark.parametrize("task, bad_answer", [("coinflip", "maybe"), ("strategyqa", "maybe"),
                                              ("gsm8k", "twelve")])
def test_gold_answers_of_the_wrong_kind_fail_when_the_task_is_built(tmp_path, task, bad_answer):
    records = [_record(e, "A step.", 0) for e in sources.dataset_examples(task, "train")[:3]]
    records[1] = dict(records[1], answer=bad_answer)
    path = _write_jsonl(tmp_path / f"{task}.jsonl", records)
    variable = f"T5X_COT_{task.upper()}_COT"
    os.environ[variable] = str(path)
    try:
        with pytest.raises(DataError) as info:
            seqio.get_mixture_or_task(f"{task}_cot").get_dataset(None, split="train")
    finally:
        del os.environ[variable]
    error = info.value
    assert (error.source, error.line, error.field) == (str(path), 2, "answer")
    assert repr(bad_answer) in str(error)


def _first_batches(seed: int, count: int = 3) -> list:
    ds = seqio.get_dataset(
        "cot_all", task_feature_lengths={"inputs": 64, "targets": 64}, dataset_split="train",
        shuffle=True, seed=seed, feature_converter=seqio.EncDecFeatureConverter(pack=False),
        num_epochs=1).batch(4)
    return [b["encoder_input_tokens"].tolist() for b in ds.take(count).as_numpy_iterator()]


def test_same_seed_same_batches_different_seed_different_order():
    first = _first_batches(seed=7)
    assert first == _first_batches(seed=7)
    assert first != _first_batches(seed=8)


def test_mixture_rates_follow_example_counts():
    mixture = seqio.get_mixture_or_task("gold_cot_all")
    rates = {t.name: mixture.get_rate(t) for t in mixture.tasks}
    for name, rate in rates.items():
        assert rate == seqio.get_mixture_or_task(name).num_input_examples("train")


def test_vocabulary_paths_and_clear_errors(tmp_path, vocab_path, monkeypatch):
    assert vocab.get_vocabulary(str(vocab_path)).vocab_size == 32100
    monkeypatch.setenv("T5X_COT_VOCAB", str(vocab_path))
    assert vocab.vocabulary_path() == str(vocab_path)
    missing = tmp_path / "nope.model"
    with pytest.raises(vocab.VocabularyError, match="cannot read vocabulary .*nope.model"):
        vocab.get_vocabulary(str(missing))
    garbage = tmp_path / "garbage.model"
    garbage.write_bytes(b"\x00not a model")
    with pytest.raises(vocab.VocabularyError, match="not a SentencePiece model"):
        vocab.get_vocabulary(str(garbage))
    monkeypatch.setenv("T5X_COT_VOCAB", str(missing))
    fresh = vocab.DeferredVocabulary()
    with pytest.raises(vocab.VocabularyError, match="T5X_COT_VOCAB"):
        fresh.encode("hello")


def test_lengths_table_matches_tf_tokenization_and_truncation_is_reported(caplog):
    table = lengths.length_table(["coinflip_ood3", "strategyqa_answer_only"])
    assert {(r["task"], r["split"], r["feature"]) for r in table} >= {
        ("coinflip_ood3", "test", "targets"), ("strategyqa_answer_only", "validation", "inputs")}
    for row in table:
        assert row["p50"] <= row["p95"] <= row["p99"] <= row["max"]
    text = lengths.format_length_table(table)
    assert text.splitlines()[0].split()[:4] == ["task", "split", "feature", "n"]
    task = seqio.get_mixture_or_task("strategyqa_gold_cot")
    measured = lengths.token_lengths("strategyqa_gold_cot", "test")
    tf_lengths = [len(ex["targets"]) for ex in
                  task.get_dataset(None, split="test", shuffle=False).as_numpy_iterator()]
    assert measured["targets"].tolist() == tf_lengths
    report = lengths.count_truncated("strategyqa_gold_cot", "test", {"inputs": 512, "targets": 24})
    expected = sum(n > 24 for n in tf_lengths)
    assert report["truncated"] == {"inputs": 0, "targets": expected} and expected > 0
    with caplog.at_level(logging.WARNING):
        ds = task.get_dataset({"inputs": 512, "targets": 24}, split="test", shuffle=False)
    assert f"{expected} of 229" in caplog.text or f"'targets': {expected}" in caplog.text
    assert max(len(ex["targets"]) for ex in ds.as_numpy_iterator()) == 24


def test_tfds_builder_reads_the_same_examples_as_the_direct_path(tmp_path, cot_dir):
    tfds_builder = pytest.importorskip("t5x_cot.tasks.tfds_builder")
    path = cot_dir / "coinflip.jsonl"
    builder = tfds_builder.CotRecords(config="coinflip", data_dir=str(tmp_path),
                                      records_path=str(path),
                                      expected_sha256=tfds_builder.file_sha256(path))
    builder.download_and_prepare()
    assert builder.info.metadata["records_sha256"] == tfds_builder.file_sha256(path)
    source = tfds_builder.tfds_source("coinflip", str(tmp_path))
    direct = seqio.get_mixture_or_task("coinflip_cot").source
    for split in tfds_builder.TFDS_SPLITS:
        got = sorted(tuple(ex[k].decode() for k in sources.FEATURES) for ex in
                     source.get_dataset(split, shuffle=False).as_numpy_iterator())
        assert got == sorted(tuple(r[k] for k in sources.FEATURES) for r in direct.rows(split))
    with pytest.raises(DataError, match="does not match"):
        tfds_builder.CotRecords(config="coinflip", data_dir=str(tmp_path / "b"),
                                records_path=str(path), expected_sha256="0" * 64
                                ).download_and_prepare()



def test_experiment_gin_defaults_name_registered_tasks_and_truncate_under_1_percent():
    """Each gin/experiments file names a registered task or mixture, and its lengths cut
    < 1% of the train examples of every member task (CoT tasks measured on the records of
    the `cot_dir` fixture, whose rationales are the gold ones)."""
    files = sorted((gin_utils.shipped_config_dir() / "experiments").glob("*.gin"))
    assert len(files) >= len(registry.task_names())
    for path in files:
        gin.clear_config()
        gin.parse_config(path.read_text())
        name = gin.query_parameter("%MIXTURE_OR_TASK_NAME")
        feature_lengths = gin.query_parameter("%TASK_FEATURE_LENGTHS")
        assert path.name == f"{name}.gin"
        provider = seqio.get_mixture_or_task(name)
        members = [t.name for t in provider.tasks] if hasattr(provider, "tasks") else [name]
        for member in members:
            split = "train" if "train" in seqio.get_mixture_or_task(member).splits else "test"
            report = lengths.count_truncated(member, split, feature_lengths)
            for feature, count in report["truncated"].items():
                assert count < 0.01 * report["examples"], (path.name, member, feature, count)
    gin.clear_config()


def test_calc_variant_keeps_annotations_as_unknown_token_openers(vocab_path):
    vocabulary = vocab.get_vocabulary(str(vocab_path))
    task = seqio.get_mixture_or_task("gsm8k_gold_cot_calc")
    ex = next(task.get_dataset(None, split="train", shuffle=False).as_numpy_iterator())
    text = vocabulary.decode(ex["targets"].tolist())
    assert vocabulary.tokenizer.unk_id() in ex["targets"].tolist()  # "<<" has no piece
    assert "=" in text and ">>" in text
    plain = next(seqio.get_mixture_or_task("gsm8k_gold_cot").get_dataset(
        None, split="train", shuffle=False).as_numpy_iterator())
    assert plain["id"] == ex["id"] and ">>" not in vocabulary.decode(plain["targets"].tolist())
