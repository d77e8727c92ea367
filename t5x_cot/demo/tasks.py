"""Stage 4, tasks: SeqIO tasks over the demo's rows, under its own SentencePiece vocabulary.

Built from the project's task machinery (`RowSource`, the dataset's metrics and answer
postprocessor); names start with the dataset (`gsm8k_demo_...`, `coinflip_demo_...`) so
evaluation scores them with that dataset's answer grammar. With `--objective dsbs` the
distilling step-by-step tasks (`t5x_cot.tasks.dsbs`) are derived from these. Registering
again (a second demo run in one process) replaces the previous tasks.
"""
from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence

import seqio

from t5x_cot import answers
from t5x_cot.data import Example
from t5x_cot.demo.data import DemoTask
from t5x_cot.tasks import dsbs, metrics, sources


def train_task_name(task: DemoTask, student: str) -> str:
    """The training task of a student (`cot` or `answer_only`)."""
    return f"{task.dataset}_demo_{student}"


def test_task_name(task: DemoTask, size: int) -> str:
    """The test task of questions with `size` steps (people)."""
    return f"{task.dataset}_demo_test_{size}{task.unit}"


def example_row(example: Example, rationale: str) -> sources.Row:
    """A task row: the question as inputs, `<rationale> The answer is <answer>.` as targets."""
    return {"id": example.id, "inputs": sources.clean_text(example.question),
            "targets": answers.format_target(sources.clean_text(rationale), example.answer),
            "answer": example.answer}


def _rows(rows: Sequence[sources.Row], split: str) -> Sequence[sources.Row]:
    del split  # each task has one split
    return rows


def _preprocessors(name: str) -> list:
    del name  # the same chain for every task
    return [seqio.preprocessors.tokenize, seqio.CacheDatasetPlaceholder(),
            seqio.preprocessors.append_eos_after_trim]


def _register(name: str, dataset: str, split: str, rows: Sequence[sources.Row],
              vocabulary: seqio.Vocabulary) -> None:
    seqio.TaskRegistry.remove(name)
    features = {key: seqio.Feature(vocabulary=vocabulary, add_eos=True)
                for key in ("inputs", "targets")}
    seqio.TaskRegistry.add(
        name,
        source=sources.RowSource(functools.partial(_rows, tuple(rows)), (split,)),
        output_features=features,
        preprocessors=_preprocessors(name),
        postprocess_fn=functools.partial(metrics.postprocess,
                                         answer_type=answers.ANSWER_TYPES[dataset],
                                         vocabulary=vocabulary),
        metric_fns=list(metrics.metric_fns_for(dataset)))


def register_tasks(task: DemoTask, train_rows: Mapping[str, Sequence[sources.Row]],
                   test_rows: Mapping[int, Sequence[sources.Row]],
                   vocabulary: seqio.Vocabulary) -> list[str]:
    """Register one training task per student ({student: rows}, `train` split) and one test
    task per size (`test` split); returns the test task names in the order of `test_rows`."""
    for student, rows in train_rows.items():
        _register(train_task_name(task, student), task.dataset, "train", rows, vocabulary)
    for size, rows in test_rows.items():
        _register(test_task_name(task, size), task.dataset, "test", rows, vocabulary)
    return [test_task_name(task, size) for size in test_rows]


def register_dsbs_tasks(task: DemoTask, test_tasks: Sequence[str]
                        ) -> tuple[str, list[str], list[str]]:
    """Distilling step-by-step over the registered demo tasks: the mixture of the label and
    rationale tasks of the CoT training rows (rationale rate λ from gin, default 1) and the
    label and rationale task of each test task. Returns (training mixture, label test tasks,
    rationale test tasks), the test tasks in the order of `test_tasks`."""
    register = functools.partial(dsbs.register_dsbs, task_preprocessors=_preprocessors,
                                 replace=True)
    mixture = register(train_task_name(task, "cot"))
    tests = [register(name) for name in test_tasks]
    return mixture, [f"{name}_label" for name in tests], [f"{name}_rationale" for name in tests]


def dsbs_rows(rows: Sequence[sources.Row]) -> list[sources.Row]:
    """The label and the rationale row of each CoT row (`[label] q`, `[rationale] q`)."""
    return dsbs.label_rows(rows) + dsbs.rationale_rows(rows)


def max_lengths(rows: Sequence[sources.Row], vocabulary: seqio.Vocabulary) -> dict[str, int]:
    """Longest `inputs` and `targets` in tokens, EOS included."""
    return {key: 1 + max((len(ids) for ids in vocabulary.tokenizer.encode([r[key] for r in rows])),
                         default=0) for key in ("inputs", "targets")}
