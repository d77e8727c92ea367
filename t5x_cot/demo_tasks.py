"""SeqIO tasks of the demo: its generated Coinflip sets under its own SentencePiece vocabulary.

Built from the project's task machinery (`RowSource`, the `coinflip` metrics and
postprocessor); names start with `coinflip_` so evaluation scores them as Coinflip.
Registering again (a second demo run in one process) replaces the previous tasks.
"""
from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence

import seqio

from t5x_cot import answers
from t5x_cot.data import Example
from t5x_cot.tasks import metrics, sources

COT_TASK = "coinflip_demo_cot"
ANSWER_ONLY_TASK = "coinflip_demo_answer_only"


def eval_task_name(num_people: int) -> str:
    """The demo's test task with `num_people` people per question."""
    return f"coinflip_demo_test_p{num_people}"


def example_row(example: Example, rationale: str) -> sources.Row:
    """A task row: the question as inputs, `<rationale> The answer is <answer>.` as targets."""
    return {"id": example.id, "inputs": sources.clean_text(example.question),
            "targets": answers.format_target(sources.clean_text(rationale), example.answer),
            "answer": example.answer}


def _rows(rows: Sequence[sources.Row], split: str) -> Sequence[sources.Row]:
    del split  # each task has one split
    return rows


def _register(name: str, split: str, rows: Sequence[sources.Row],
              vocabulary: seqio.Vocabulary) -> None:
    seqio.TaskRegistry.remove(name)
    features = {key: seqio.Feature(vocabulary=vocabulary, add_eos=True)
                for key in ("inputs", "targets")}
    seqio.TaskRegistry.add(
        name,
        source=sources.RowSource(functools.partial(_rows, tuple(rows)), (split,)),
        output_features=features,
        preprocessors=[seqio.preprocessors.tokenize, seqio.CacheDatasetPlaceholder(),
                       seqio.preprocessors.append_eos_after_trim],
        postprocess_fn=functools.partial(metrics.postprocess, answer_type="yesno",
                                         vocabulary=vocabulary),
        metric_fns=list(metrics.metric_fns_for("coinflip")))


def register_tasks(cot_rows: Sequence[sources.Row], answer_only_rows: Sequence[sources.Row],
                   test_rows: Mapping[int, Sequence[sources.Row]],
                   vocabulary: seqio.Vocabulary) -> list[str]:
    """Register the two training tasks (`train` split) and one test task per number of
    people (`test` split); returns the test task names in the order of `test_rows`."""
    _register(COT_TASK, "train", cot_rows, vocabulary)
    _register(ANSWER_ONLY_TASK, "train", answer_only_rows, vocabulary)
    for people, rows in test_rows.items():
        _register(eval_task_name(people), "test", rows, vocabulary)
    return [eval_task_name(people) for people in test_rows]


def max_lengths(rows: Sequence[sources.Row], vocabulary: seqio.Vocabulary) -> dict[str, int]:
    """Longest `inputs` and `targets` in tokens, EOS included."""
    return {key: 1 + max((len(ids) for ids in vocabulary.tokenizer.encode([r[key] for r in rows])),
                         default=0) for key in ("inputs", "targets")}
