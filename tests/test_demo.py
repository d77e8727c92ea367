"""`t5x-cot demo --quick` end to end (data, teacher and filter, vocabulary, tasks, training,
decoding with and without the calculator, report), also with `--objective dsbs`, and the
demo's own pieces."""
from __future__ import annotations

import contextlib
import csv
import io
import json
import random

import pytest

from t5x_cot import cli
from t5x_cot.data import Example
from t5x_cot.data.records import read_records
from t5x_cot.demo import analysis, arithmetic, data, rationales, report, teacher
from t5x_cot.errors import UserError

QUICK_TEST = 16  # questions per test set in --quick mode
STEPS = (2, 3, 4, 5, 6, 7)
STUDENTS = ("answer_only", "cot", "cot_calculator")


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        status = cli.main(["demo", "--quick", "--seeds", "2", "--out", str(out)])
    return status, out, stdout.getvalue()


@pytest.fixture(scope="module")
def quick_dsbs_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo_dsbs")
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        status = cli.main(["demo", "--quick", "--objective", "dsbs", "--seeds", "1",
                           "--out", str(out)])
    return status, out, stdout.getvalue()


@pytest.mark.slow
def test_quick_demo_writes_results(quick_run):
    status, out, printed = quick_run
    assert status == 0
    for name in ("results.md", "results.csv", "accuracy_vs_steps.png", "predictions.jsonl",
                 "vocab/spiece.model", "cot/gsm8k.jsonl"):
        assert (out / name).is_file(), name
    assert (out / "accuracy_vs_steps.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    with open(out / "results.csv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [(int(r["seed"]), r["student"], int(r["size"]), r["distribution"]) for r in rows] == [
        (seed, student, steps, "in" if steps <= 4 else "ood")
        for seed in (0, 1) for student in STUDENTS for steps in STEPS]
    assert all(0.0 <= float(r["accuracy"]) <= 100.0 and int(r["num_examples"]) == QUICK_TEST
               for r in rows)

    header = ("| student | 2 steps (in) | 3 steps (in) | 4 steps (in) | 5 steps (OOD) | "
              "6 steps (OOD) | 7 steps (OOD) |")
    table = (out / "results.md").read_text("utf-8")
    assert table.count(header) == 3 and "## Seed 0" in table and "## Seed 1" in table
    assert header in printed and "seed 1:" in printed
    for label in ("| answer only |", "| CoT |", "| CoT + calculator |"):
        assert label in table and label in printed
    assert " ± " in table
    assert "wall time:" in printed and "train cot" in printed and "CPU" in printed
    assert "CoT + calculator vs answer only:" in printed
    assert "out of distribution the CoT student" in printed
    assert "in distribution (mean over seeds and steps 2/3/4)" in printed
    for text in (table, printed):  # the first-error table: one row per CoT student and size
        assert "## Where the rationales first go wrong" in text
        assert sum(line.startswith(("| CoT | ", "| CoT + calculator | "))
                   for line in text.splitlines()) == 3 * 2 + 2 * len(STEPS)

@pytest.mark.slow
def test_quick_demo_teacher_filter_and_predictions(quick_run):
    _, out, printed = quick_run
    summary = json.loads((out / "cot" / "gsm8k.jsonl.summary.json").read_text("utf-8"))
    assert summary["answered"] == 200
    assert summary["dropped"]["wrong_answer"] > 0
    assert summary["kept"] + summary["dropped"]["wrong_answer"] == summary["answered"]
    records = read_records(out / "cot" / "gsm8k.jsonl")
    assert len(records) == summary["kept"]
    for record in records:  # every kept rationale is the right computation
        problem = arithmetic.parse_question(record["question"])
        assert record["correct"] and record["rationale"] == rationales.write(
            problem, data.ARITHMETIC.rationale_style)
    assert f"{summary['kept']} kept" in printed

    lines = [json.loads(line) for line in
             (out / "predictions.jsonl").read_text("utf-8").splitlines()]
    assert len(lines) == 2 * len(STUDENTS) * len(STEPS) * QUICK_TEST
    assert {(p["seed"], p["student"], p["task"]) for p in lines} == {
        (seed, s, f"gsm8k_demo_test_{n}steps") for seed in (0, 1) for s in STUDENTS
        for n in STEPS}
    assert all({"question", "rationale", "answer", "gold", "correct"} <= set(p) for p in lines)
    questions = {p["question"] for p in lines}
    assert not questions & {r["question"] for r in records}  # no test question was trained on


@pytest.mark.slow
def test_quick_demo_dsbs_adds_the_label_task_student(quick_dsbs_run):
    status, out, printed = quick_dsbs_run
    assert status == 0
    students = (*STUDENTS, "dsbs")
    with open(out / "results.csv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [(int(r["seed"]), r["student"], int(r["size"])) for r in rows] == [
        (0, student, steps) for student in students for steps in STEPS]
    assert {r["label"] for r in rows if r["student"] == "dsbs"} == {"DSbS (label task)"}
    assert all(int(r["num_examples"]) == QUICK_TEST for r in rows)
    table = (out / "results.md").read_text("utf-8")
    for text in (table, printed):
        assert "| DSbS (label task) |" in text and "| CoT |" in text
        assert "DSbS (label task) vs answer only:" in text
        assert "DSbS (label task) vs CoT:" in text
        assert "DSbS (rationale task) (seed 0) rationales with every step right" in text
    assert "objective dsbs" in table and "train dsbs" in printed

    lines = [json.loads(line) for line in
             (out / "predictions.jsonl").read_text("utf-8").splitlines()]
    by_student = {s: [p for p in lines if p["student"] == s]
                  for s in (*students, "dsbs_rationale")}
    assert all(len(p) == len(STEPS) * QUICK_TEST for p in by_student.values())
    prefixes = {"dsbs": ("[label] ", "gsm8k_demo_test_{}steps_dsbs_label"),
                "dsbs_rationale": ("[rationale] ", "gsm8k_demo_test_{}steps_dsbs_rationale")}
    for student, (prefix, task_name) in prefixes.items():
        assert {p["task"] for p in by_student[student]} == {task_name.format(n) for n in STEPS}
        assert all(p["question"].startswith(prefix) and {"id", "gold", "correct"} <= set(p)
                   for p in by_student[student])
    plain = {(p["id"], p["question"]) for p in by_student["cot"]}
    assert {(p["id"], p["question"].removeprefix("[label] ")) for p in by_student["dsbs"]} == plain


def test_problems_round_trip_through_their_text():
    examples = arithmetic.generate(300, (2, 3, 4), seed=5, split="train")
    assert len({e.question for e in examples}) == 300
    for example in examples:
        problem = arithmetic.parse_question(example.question)
        assert str(problem.answer) == example.answer
        assert len(problem.steps) in (2, 3, 4)
        assert all(0 <= t <= 99 for t in problem.totals())
        assert example.rationale == rationales.write(problem)
    assert rationales.write(arithmetic.Problem(23, (("+", 45), ("-", 17))), "equations") == (
        "23 + 45 = <<23+45=68>>68. 68 - 17 = <<68-17=51>>51.")
    question = arithmetic.question_text(arithmetic.Problem(23, (("+", 5),)), random.Random(0))
    assert question.endswith("have?") and " 23 " in question and " 5 " in question


@pytest.mark.parametrize("text", [
    "Ann has 23 apples. She flies away. How many apples does she have?",
    "Ann has 23 apples. She buys 5 more. How many books does she have?",
    "The answer is 5."])
def test_parse_question_rejects_other_text(text):
    with pytest.raises(arithmetic.QuestionFormatError):
        arithmetic.parse_question(text)


QUESTION = ("Ann has 7 marbles. She sells 3. She finds 9 more. She loses 2. "
            "How many marbles does she have?")


def test_rationale_designs_make_each_step_findable():
    problem = arithmetic.parse_question(QUESTION)
    assert rationales.write(problem, "equations") == (
        "7 - 3 = <<7-3=4>>4. 4 + 9 = <<4+9=13>>13. 13 - 2 = <<13-2=11>>11.")
    assert rationales.write(problem, "clauses") == (
        "She sells 3: 7 - 3 = <<7-3=4>>4. She finds 9 more: 4 + 9 = <<4+9=13>>13. "
        "She loses 2: 13 - 2 = <<13-2=11>>11. How many marbles does she have?")
    assert rationales.write(problem, "window") == (
        "Ann has 7 marbles. She sells 3: 7 - 3 = <<7-3=4>>4. She sells 3. She finds 9 more: "
        "4 + 9 = <<4+9=13>>13. She finds 9 more. She loses 2: 13 - 2 = <<13-2=11>>11. "
        "She loses 2. How many marbles does she have?")
    assert rationales.write(problem, "remaining", totals=[4, 14, 12]) == (
        "7 - 3 = <<7-3=4>>4. She has 4. She finds 9 more. She loses 2. "
        "4 + 9 = <<4+9=14>>14. She has 14. She loses 2. 14 - 2 = <<14-2=12>>12. She has 12.")
    with pytest.raises(ValueError, match="needs the question's sentences"):
        rationales.write(arithmetic.Problem(7, (("-", 3),)), "remaining")
    with pytest.raises(ValueError, match="unknown rationale style 'prose'"):
        rationales.write(problem, "prose")
    examples = arithmetic.generate(20, 6, seed=3, split="test", style="remaining")
    for example in examples:  # after each total, the sentences not used yet, in order
        clauses = arithmetic.parse_question(example.question).clauses
        for k, part in enumerate(example.rationale.split(">>")[1:]):
            rest = (part.split(". ", 2) + [""])[2]
            assert rest.startswith(" ".join(clauses[k + 1:]))


def test_rationale_option_per_task():
    assert data.with_rationale(data.ARITHMETIC, None) is data.ARITHMETIC
    assert data.with_rationale(data.ARITHMETIC, "clauses").rationale_style == "clauses"
    assert data.with_rationale(data.COINFLIP, "exemplar").rationale_style == "exemplar"
    with pytest.raises(UserError, match="'remaining' is not one of the coinflip designs"):
        data.with_rationale(data.COINFLIP, "remaining")


@pytest.mark.parametrize("generated, expected", [
    ("7 - 3 = <<7-3=4>>4. 4 + 9 = <<4+9=13>>13. 13 - 2 = <<13-2=11>>11.", (analysis.RIGHT, None)),
    ("<<7-3=4>>4. <<4+9=13>>13.", ("stopped early", 3)),
    ("<<7-3=4>>4. <<4-2=2>>2.", ("skipped a sentence", 2)),
    ("<<7-3=4>>4. <<4-3=1>>1.", ("repeated a sentence", 2)),
    ("<<7-3=4>>4. <<4+8=12>>12.", ("wrong amount", 2)),
    ("<<7-3=4>>4. <<5+9=14>>14.", ("wrong total carried", 2)),
    ("<<7-3=5>>5.", ("wrong result", 1)),
    ("<<7-3=4>> <<4+9=13>> <<13-2=11>> <<11-2=9>>", ("extra steps", 4))])
def test_first_error_names_the_first_wrong_step(generated, expected):
    assert analysis.first_error(QUESTION, generated) == expected


def test_teacher_slips_carry_to_a_wrong_answer():
    examples = arithmetic.generate(400, (2, 3, 4), seed=1, split="train")
    texts = [teacher.arithmetic_text(e, 0.25, seed=1) for e in examples]
    wrong = [(e, t) for e, t in zip(examples, texts) if not t.endswith(f"is {e.answer}.")]
    assert 60 <= len(wrong) <= 140
    for example, text in wrong:
        assert text != f"{example.rationale} The answer is {example.answer}."
    assert texts == [teacher.arithmetic_text(e, 0.25, seed=1) for e in examples]


def test_test_sets_never_hold_training_questions():
    demo = data.make_data(data.ARITHMETIC, 500, 50)
    seen = {e.question for e in demo.train}
    assert sorted(demo.tests) == list(STEPS)
    for steps, examples in demo.tests.items():
        assert len(examples) == 50 and not seen & {e.question for e in examples}
        assert all(len(arithmetic.parse_question(e.question).steps) == steps for e in examples)


def test_tables_show_each_seed_and_the_mean_with_spread():
    task = data.ARITHMETIC
    accuracy = {0: {"answer_only": 10.0, "cot": 30.0, "cot_calculator": 90.0},
                1: {"answer_only": 20.0, "cot": 40.0, "cot_calculator": 80.0}}
    metrics = {seed: {s: {n: {"accuracy": a - n, "answer_found": 100.0, "num_examples": 10}
                          for n in (2, 5)} for s, a in by.items()}
               for seed, by in accuracy.items()}
    rows = report.results_rows(task, metrics)
    assert report.format_markdown(task, rows).splitlines() == [
        "| student | 2 steps (in) | 5 steps (OOD) |", "| --- | ---: | ---: |",
        "| answer only | 13.0 ± 5.0 | 10.0 ± 5.0 |", "| CoT | 33.0 ± 5.0 | 30.0 ± 5.0 |",
        "| CoT + calculator | 83.0 ± 5.0 | 80.0 ± 5.0 |"]
    assert report.format_markdown(task, [r for r in rows if r["seed"] == 1]).splitlines()[2] == (
        "| answer only | 18.0 | 15.0 |")
    assert report.gap_lines(task, rows)[1:] == [
        "CoT vs answer only: +20.0 points in distribution",
        "CoT + calculator vs CoT: +50.0 points in distribution",
        "CoT + calculator vs answer only: +70.0 points in distribution"]
    assert report.ood_line(task, rows, "cot", "answer_only") == (
        "out of distribution the CoT student beats the answer only student (points: 5 steps "
        "+20.0)")


def test_dsbs_objective_adds_one_student_and_its_gaps():
    assert data.with_objective(data.ARITHMETIC, "cot") is data.ARITHMETIC
    task = data.with_objective(data.ARITHMETIC, "dsbs")
    assert list(task.students) == [*STUDENTS, "dsbs"]
    metrics = {0: {s: {2: {"accuracy": a, "answer_found": 100.0, "num_examples": 10}}
                   for s, a in zip(task.students, (10.0, 30.0, 90.0, 25.0))}}
    rows = report.results_rows(task, metrics)
    assert report.format_markdown(task, rows).splitlines()[-1] == "| DSbS (label task) | 25.0 |"
    assert report.gap_lines(task, rows)[-2:] == [
        "DSbS (label task) vs answer only: +15.0 points in distribution",
        "DSbS (label task) vs CoT: -5.0 points in distribution"]
    with pytest.raises(ValueError, match="objective 'rationale'"):
        data.with_objective(data.ARITHMETIC, "rationale")


def test_coinflip_task_keeps_the_papers_setting():
    demo = data.make_data(data.COINFLIP, 100, 20)
    assert sorted(demo.tests) == [2, 3, 4] and data.COINFLIP.train_sizes == (2,)
    assert all(isinstance(e, Example) and e.answer in ("yes", "no") for e in demo.train)
    assert data.gold_rationale(data.COINFLIP, demo.tests[3][0]).startswith(
        "The coin starts heads up.")
