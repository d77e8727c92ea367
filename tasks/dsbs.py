"""Distilling step-by-step (Hsieh et al. 2023): the multi-task rationale objective.

For a CoT task `<base>` (rows with `targets = "<rationale> The answer is <answer>."`),
`register_dsbs(base)` registers the mixture `<dataset>_dsbs` (for a base `<dataset>_cot`;
`<base>_dsbs` for any other name) of two tasks:

- `<mixture>_label`: inputs `"[label] <question>"`, targets `"The answer is <answer>."`
  (the answer grammar every task shares, so its metric functions are the answer-accuracy
  ones of the base task, as for the answer-only tasks);
- `<mixture>_rationale`: inputs `"[rationale] <question>"`, targets `"<rationale>"`
  (metric: generated length only; its predictions are there to be read).

The paper's loss is L = L_label + λ·L_rationale. Here λ (gin:
`dsbs_rationale_weight.value`, default 1) is the mixing rate of the rationale task
relative to the label task (both have one example per question, so rate 1 : λ). In
expectation over the mixture, a batch's loss is then proportional to
E[ℓ_label] + λ·E[ℓ_rationale]: the same objective and gradient direction the paper
optimises, estimated by sampling instead of computed on every question in every batch.
We chose the rate over an exact per-example loss weight because the rate works with
the standard `EncDecFeatureConverter` and the trainer as they are (their
`decoder_loss_weights` are 0/1 integers, packed with the other int32 features); an
exact weight would need a float weight feature carried through packing and the batch
iterator. Two consequences to know: with λ ≠ 1 the task with the larger rate is also
*seen* more often (not only weighted more), and, as in every packed seq2seq run here,
the loss is normalised over tokens, so long rationales carry more of a batch's loss
than their one-token-answer label counterparts (λ scales that on top).

At inference only the label task runs: prefix the question with `[label] ` and the
student answers directly (short decodes). Evaluate `<mixture>_label` for accuracy;
evaluating the mixture also decodes the rationale task for inspection.
"""
from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import gin
import seqio

from t5x_cot import answers
from t5x_cot.tasks import metrics, preprocessors, sources

LABEL_PREFIX = "[label] "
RATIONALE_PREFIX = "[rationale] "


@gin.configurable("dsbs_rationale_weight", module="t5x_cot.tasks")
def rationale_weight(value: float = 1.0) -> float:
    """λ, the weight of the rationale task (paper default 1); set with
    `--gin.dsbs_rationale_weight.value=0.5`."""
    if not value >= 0:
        raise ValueError(f"dsbs_rationale_weight.value={value!r}; expected a number >= 0")
    return float(value)


def mixture_name(base_task_name: str) -> str:
    """`gsm8k_cot` -> `gsm8k_dsbs`; any other base `<base>` -> `<base>_dsbs`."""
    stem = base_task_name[:-len("_cot")] if base_task_name.endswith("_cot") else base_task_name
    return f"{stem}_dsbs"


def label_rows(rows: Sequence[sources.Row]) -> list[sources.Row]:
    """`[label] question` -> `The answer is <answer>.`"""
    return [{**row, "inputs": LABEL_PREFIX + row["inputs"],
             "targets": answers.format_target("", row["answer"])} for row in rows]


def rationale_rows(rows: Sequence[sources.Row]) -> list[sources.Row]:
    """`[rationale] question` -> the rationale of the CoT target (answer sentence removed)."""
    return [{**row, "inputs": RATIONALE_PREFIX + row["inputs"],
             "targets": answers.split_rationale(row["targets"])[0]} for row in rows]


def _derived_rows(base_task_name: str, transform: Callable[[Sequence[sources.Row]], list],
                  split: str) -> list[sources.Row]:
    source = seqio.get_mixture_or_task(base_task_name).source
    if not isinstance(source, sources.RowSource):
        raise TypeError(f"{base_task_name} does not read a t5x_cot RowSource; DSbS tasks "
                        "derive their rows from one")
    return transform(source.rows(split))


def _rationale_rate(task: seqio.Task) -> float:
    del task
    return rationale_weight()


def register_dsbs(base_task_name: str, *,
                  task_preprocessors: Callable[[str], list] = preprocessors.task_preprocessors,
                  replace: bool = False) -> str:
    """Register the label and rationale tasks of `base_task_name` (a registered CoT task
    reading a `RowSource`) and their mixture; returns the mixture name.

    The new tasks share the base task's splits, output features (vocabulary),
    postprocessor and answer type; `task_preprocessors(name)` builds their preprocessing
    chain (default: the project's). λ is read when a dataset is built, so gin flags set
    after registration take effect. Already registered names are kept unless `replace`.
    """
    base = seqio.get_mixture_or_task(base_task_name)
    name = mixture_name(base_task_name)
    members = {f"{name}_label": (label_rows, list(base.metric_fns)),
               f"{name}_rationale": (rationale_rows, [metrics.mean_length])}
    registered = set(seqio.TaskRegistry.names())
    for task_name, (transform, metric_fns) in members.items():
        if task_name in registered and not replace:
            continue
        seqio.TaskRegistry.remove(task_name)
        seqio.TaskRegistry.add(
            task_name,
            source=sources.RowSource(functools.partial(_derived_rows, base_task_name, transform),
                                     base.source.splits),
            output_features=base.output_features,
            preprocessors=task_preprocessors(task_name),
            postprocess_fn=base.postprocessor,
            metric_fns=metric_fns)
    if replace or name not in seqio.MixtureRegistry.names():
        seqio.MixtureRegistry.remove(name)
        label, rationale = members
        seqio.MixtureRegistry.add(name, [(label, 1.0), (rationale, _rationale_rate)])
    return name
