"""The demo's driver: every stage in order, for each seed, with the wall time of each."""
from __future__ import annotations

import argparse
import dataclasses
import os
import pathlib
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from t5x_cot.demo import data as data_lib


@dataclasses.dataclass(frozen=True)
class Settings:
    """Sizes of one demo run: questions, training steps and batch per student, decode batch."""

    num_train: int
    num_test: int
    steps: int
    batch_size: int
    eval_batch: int = 100


FULL = {"arithmetic": Settings(num_train=6000, num_test=200, steps=1000, batch_size=16),
        "coinflip": Settings(num_train=6000, num_test=300, steps=1000, batch_size=32)}
QUICK = Settings(num_train=200, num_test=16, steps=4, batch_size=16, eval_batch=16)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the demo's flags."""
    parser.add_argument("--task", choices=sorted(data_lib.TASKS), default="arithmetic",
                        help="arithmetic word problems (default) or the paper's Coinflip")
    parser.add_argument("--out", default="demo_out",
                        help="output directory (results, plot, predictions, models)")
    parser.add_argument("--quick", action="store_true",
                        help="tiny sets and a few steps: checks the pipeline, learns nothing")
    parser.add_argument("--steps", type=int, default=None,
                        help="training steps of each student (default "
                             f"{FULL['arithmetic'].steps}; --quick: {QUICK.steps})")
    parser.add_argument("--objective", choices=data_lib.OBJECTIVES, default="cot",
                        help="cot: the answer-only and CoT students (default); dsbs: also a "
                             "distilling step-by-step student (label and rationale tasks of "
                             "the same CoT rows, rationale weight 1), scored on its label task")
    parser.add_argument("--rationale", default=None,
                        choices=sorted({s for v in data_lib.RATIONALE_STYLES.values() for s in v}),
                        help="the symbolic teacher's rationale design; arithmetic: "
                             + ", ".join(data_lib.RATIONALE_STYLES["arithmetic"])
                             + f" (default {data_lib.ARITHMETIC.rationale_style}; see "
                             "t5x_cot.demo.rationales), coinflip: "
                             + ", ".join(data_lib.RATIONALE_STYLES["coinflip"])
                             + f" (default {data_lib.COINFLIP.rationale_style})")
    parser.add_argument("--seeds", type=int, default=2,
                        help="train every student with seeds 0..N-1; cells show mean ± half range")


class StageTimer:
    """Wall time and process CPU time (all threads) of each named stage, summed over repeats
    and printed as each one ends. On a shared machine the wall time grows with the other
    load; the CPU time much less so."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.cpu_seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        print(f"\n== {name}", flush=True)
        start, cpu_start = time.perf_counter(), time.process_time()
        yield
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
        self.seconds[name] = self.seconds.get(name, 0.0) + wall
        self.cpu_seconds[name] = self.cpu_seconds.get(name, 0.0) + cpu
        print(f"== {name}: {wall:.1f} s (CPU {cpu:.1f} s)", flush=True)

    def summary(self) -> str:
        """Wall and CPU seconds per stage and in total, in one line."""
        return ("wall time: " + ", ".join(f"{k} {v:.0f} s" for k, v in self.seconds.items())
                + f"; total {sum(self.seconds.values()):.0f} s; CPU time: "
                + ", ".join(f"{k} {v:.0f} s" for k, v in self.cpu_seconds.items())
                + f"; total {sum(self.cpu_seconds.values()):.0f} s")


def _round_up(value: int, multiple: int = 8) -> int:
    return -(-value // multiple) * multiple


@dataclasses.dataclass
class TestSet:
    """Test tasks one student is decoded on: {task: size}, gold targets {task: {id: target}}
    and the decode lengths."""

    sizes: dict[str, int]
    gold: dict[str, dict[str, str]]
    lengths: dict[str, int]


@dataclasses.dataclass
class Prepared:
    """Everything the students share: the training task (or mixture) and feature lengths of
    each trained student, the test set of each decoded one, the vocabulary."""

    train_tasks: dict[str, str]
    train_lengths: dict[str, dict[str, int]]
    tests: dict[str, TestSet]
    vocabulary: Any
    model_vocab: int


# The students decoded from each trained one: the CoT student also with the calculator (when
# the task has that column), the DSbS student on its label tasks and, for inspection, on its
# rationale tasks.
DECODED = {"cot": ("cot", "cot_calculator"), "dsbs": ("dsbs", "dsbs_rationale")}
RATIONALE_FREE = ("answer_only", "dsbs")  # decoded students whose outputs hold no rationale


def _lengths(rows: Sequence[Mapping[str, str]], vocabulary: Any, margin: int = 0
             ) -> dict[str, int]:
    from t5x_cot.demo import tasks as tasks_lib
    return {k: _round_up(v) + margin for k, v in tasks_lib.max_lengths(rows, vocabulary).items()}


def _test_set(names: Sequence[str], rows_by_size: Mapping[int, Sequence[Mapping[str, str]]],
              vocabulary: Any) -> TestSet:
    sizes = dict(zip(names, rows_by_size))
    gold = {name: {r["id"]: r["targets"] for r in rows_by_size[size]}
            for name, size in sizes.items()}
    return TestSet(sizes, gold, _lengths([r for rows in rows_by_size.values() for r in rows],
                                         vocabulary, margin=8))


def prepare(task: data_lib.DemoTask, settings: Settings, out: pathlib.Path,
            timer: StageTimer) -> tuple[Prepared, dict[str, Any]]:
    """Stages data, teacher, vocabulary and tasks; returns them and the teacher's summary."""
    import seqio

    from t5x_cot.demo import tasks as tasks_lib
    from t5x_cot.demo import teacher, vocab
    from t5x_cot.tasks import dsbs, sources

    with timer("data"):
        data = data_lib.make_data(task, settings.num_train, settings.num_test)
        print(f"train: {len(data.train)} questions with {task.unit} "
              f"{'/'.join(map(str, task.train_sizes))}; test: "
              + ", ".join(f"{len(v)} with {k} {task.unit}" for k, v in data.tests.items()))
    with timer("teacher"):
        records_path = out / "cot" / f"{task.dataset}.jsonl"
        summary = teacher.run_teacher(task, data.train, records_path)
    with_dsbs = "dsbs" in task.students
    with timer("vocabulary"):
        train_rows = {"cot": sources.record_rows(task.dataset, records_path),
                      "answer_only": [tasks_lib.example_row(e, "") for e in data.train]}
        test_rows = {size: [tasks_lib.example_row(e, data_lib.gold_rationale(task, e))
                            for e in examples] for size, examples in data.tests.items()}
        test_inputs = [row["inputs"] for rows in test_rows.values()
                       for row in (tasks_lib.dsbs_rows(rows) if with_dsbs else rows)]
        prefixes = (dsbs.LABEL_PREFIX.strip(), dsbs.RATIONALE_PREFIX.strip()) if with_dsbs else ()
        path = vocab.train_sentencepiece(
            [text for rows in train_rows.values() for row in rows
             for text in (row["inputs"], row["targets"])],
            out / "vocab", must_spell=test_inputs,
            atomic_symbols=vocab.ATOMIC_SYMBOLS + prefixes)
        vocabulary = seqio.SentencePieceVocabulary(str(path), extra_ids=0)
        model_vocab = vocab.padded_size(vocabulary.vocab_size)
        print(f"{path}: {vocabulary.vocab_size} pieces (model vocabulary {model_vocab})")
    with timer("tasks"):
        test_tasks = tasks_lib.register_tasks(task, train_rows, test_rows, vocabulary)
        plain = _test_set(test_tasks, test_rows, vocabulary)
        train_tasks = {s: tasks_lib.train_task_name(task, s) for s in ("answer_only", "cot")}
        train_lengths = {s: _lengths(train_rows[s], vocabulary) for s in train_tasks}
        tests = {student: plain for student in task.students if student != "dsbs"}
        if with_dsbs:
            train_tasks["dsbs"], label_tasks, rationale_tasks = tasks_lib.register_dsbs_tasks(
                task, test_tasks)
            train_lengths["dsbs"] = _lengths(tasks_lib.dsbs_rows(train_rows["cot"]), vocabulary)
            tests["dsbs"] = _test_set(label_tasks, {size: dsbs.label_rows(rows) for size, rows
                                                    in test_rows.items()}, vocabulary)
            tests["dsbs_rationale"] = _test_set(
                rationale_tasks, {size: dsbs.rationale_rows(rows)
                                  for size, rows in test_rows.items()}, vocabulary)
        print("tasks: " + ", ".join(f"{name} ({student})" for student, name in train_tasks.items())
              + ", " + ", ".join(dict.fromkeys(n for t in tests.values() for n in t.sizes)))
    return Prepared(train_tasks, train_lengths, tests, vocabulary, model_vocab), summary


def train_and_evaluate(task: data_lib.DemoTask, settings: Settings, prepared: Prepared,
                       seed: int, out: pathlib.Path, timer: StageTimer
                       ) -> tuple[dict[str, dict[int, Any]], dict[str, pathlib.Path]]:
    """Train every student with `seed` and decode its test sets (the students of `DECODED`
    for the CoT and DSbS ones); returns the metrics of the table's students and every
    eval dir."""
    from t5x_cot.demo import report, train

    metrics: dict[str, dict[int, Any]] = {}
    eval_dirs: dict[str, pathlib.Path] = {}
    for trained, task_name in prepared.train_tasks.items():
        model_dir = out / f"seed{seed}" / "models" / trained
        with timer(f"train {trained}"):
            train.train_student(task_name, model_dir, settings.steps, settings.batch_size,
                                prepared.train_lengths[trained], prepared.model_vocab, seed)
        for student in DECODED.get(trained, (trained,)):
            if student not in prepared.tests:
                continue
            test = prepared.tests[student]
            eval_dir = eval_dirs[student] = out / f"seed{seed}" / "eval" / student
            with timer(f"evaluate {student}"):
                by_task = train.evaluate_student(
                    model_dir, list(test.sizes), eval_dir, test.lengths,
                    min(settings.eval_batch, settings.num_test),
                    use_calculator=student == "cot_calculator")
                report.annotate_metrics(eval_dir, task, test.sizes)
            if student in task.students:
                metrics[student] = {test.sizes[name]: m for name, m in by_task.items()}
    return metrics, eval_dirs


def _first_errors(task: data_lib.DemoTask, prepared: Prepared,
                  eval_dirs: Mapping[tuple[int, str], pathlib.Path],
                  labels: Mapping[str, str]) -> str:
    """Where the CoT students' rationales (seed 0) first go wrong, as a markdown section."""
    from t5x_cot.demo import analysis

    counts = [(labels[s], analysis.first_errors(eval_dirs[0, s], prepared.tests[s].sizes))
              for s in DECODED["cot"]]
    return ("## Where the rationales first go wrong (seed 0, % of the test questions)\n\n"
            + analysis.format_table(counts, task.unit))


def run(args: argparse.Namespace) -> int:
    """Run the demo; returns the exit status."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from t5x_cot.demo import report, teacher

    task = data_lib.with_objective(
        data_lib.with_rationale(data_lib.TASKS[args.task], args.rationale), args.objective)
    settings = QUICK if args.quick else FULL[task.name]
    if args.steps is not None:
        settings = dataclasses.replace(settings, steps=args.steps)
    if args.seeds < 1:
        raise SystemExit(f"t5x-cot demo: --seeds must be >= 1, got {args.seeds}")
    out = pathlib.Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    timer = StageTimer()
    start = time.perf_counter()
    prepared, summary = prepare(task, settings, out, timer)

    metrics: dict[int, dict[str, dict[int, Any]]] = {}
    eval_dirs: dict[tuple[int, str], pathlib.Path] = {}
    for seed in range(args.seeds):
        metrics[seed], dirs = train_and_evaluate(task, settings, prepared, seed, out, timer)
        eval_dirs.update({(seed, student): d for student, d in dirs.items()})
        rows = report.results_rows(task, {seed: metrics[seed]})
        print(f"\nseed {seed}:\n" + report.format_markdown(task, rows), flush=True)

    with timer("report"):
        rows = report.results_rows(task, metrics)
        findings = [f"teacher: {teacher.teacher_line(summary)}", *report.gap_lines(task, rows),
                    *(report.ood_line(task, rows, student, "answer_only")
                      for student in ("cot", "dsbs") if student in task.students)]
        labels = {**task.students, "dsbs_rationale": data_lib.DSBS_RATIONALE_LABEL}
        for student, test in prepared.tests.items():
            if student not in RATIONALE_FREE:
                exact = report.exact_rationales(eval_dirs[0, student], test.gold, test.sizes)
                findings.append(report.exact_line(labels[student] + " (seed 0)", exact,
                                                  task.unit))
        sections = ([_first_errors(task, prepared, eval_dirs, labels)]
                    if task.name == "arithmetic" else [])
        findings.append(timer.summary())
        report.write_outputs(out, task, rows, findings,
                             {**dataclasses.asdict(settings), "seeds": args.seeds,
                              "objective": args.objective,
                              "rationale": task.rationale_style}, eval_dirs, sections)
    print("\n" + report.format_markdown(task, rows) + "\n")
    print("".join(section + "\n\n" for section in sections), end="")
    print("\n".join(findings[:-1]))
    print(timer.summary() + f"; whole run {time.perf_counter() - start:.0f} s wall")
    print(f"outputs: {out}")
    return 0
