"""Registers every t5x_cot Task and Mixture with seqio (idempotent: safe to run twice)."""
from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import seqio

from t5x_cot import answers
from t5x_cot.tasks import dsbs, metrics, preprocessors, sources
from t5x_cot.tasks.splits import FRACTIONS
from t5x_cot.tasks.vocab import TASK_VOCABULARY

OUTPUT_FEATURES = {
    "inputs": seqio.Feature(vocabulary=TASK_VOCABULARY, add_eos=True),
    "targets": seqio.Feature(vocabulary=TASK_VOCABULARY, add_eos=True),
}
VARIANTS: dict[str, Callable[[str, str], list]] = {
    "cot": sources.cot_rows,
    "gold_cot": sources.gold_cot_rows,
    "answer_only": sources.answer_only_rows,
}
# One mixture per rationale source, over the three datasets, rated by example count.
MIXTURES = {f"{variant}_all":
            [f"{task}_{variant}" for task in sources.TASKS] for variant in VARIANTS}


def _task_specs() -> dict[str, tuple[str, Callable[[str], list], Sequence[str]]]:
    """name -> (dataset, load(split), splits)."""
    specs = {}
    for task in sources.TASKS:
        for variant, load in VARIANTS.items():
            specs[f"{task}_{variant}"] = (task, functools.partial(load, task), sources.SPLITS)
    for suffix, fraction in FRACTIONS.items():
        specs[f"gsm8k_cot_{suffix}"] = (
            "gsm8k", functools.partial(sources.cot_rows, "gsm8k", fraction=fraction),
            sources.SPLITS)
    specs["gsm8k_gold_cot_calc"] = (
        "gsm8k", functools.partial(sources.gold_cot_calc_rows, "gsm8k"), sources.SPLITS)
    for people in (3, 4):
        specs[f"coinflip_ood{people}"] = (
            "coinflip", functools.partial(sources.coinflip_ood_rows, people), ("test",))
    return specs


TASK_SPECS = _task_specs()


def task_names() -> list[str]:
    """Names of every Task this package registers."""
    return list(TASK_SPECS)


def register() -> None:
    """Adds the tasks and mixtures not registered yet."""
    registered = set(seqio.TaskRegistry.names())
    for name, (task, load, splits) in TASK_SPECS.items():
        if name in registered:
            continue
        seqio.TaskRegistry.add(
            name,
            source=sources.RowSource(load, splits),
            output_features=OUTPUT_FEATURES,
            preprocessors=preprocessors.task_preprocessors(name),
            postprocess_fn=functools.partial(
                metrics.postprocess, answer_type=answers.ANSWER_TYPES[task],
                vocabulary=TASK_VOCABULARY),
            metric_fns=list(metrics.metric_fns_for(task)),
        )
    registered_mixtures = set(seqio.MixtureRegistry.names())
    for name, members in MIXTURES.items():
        if name not in registered_mixtures:
            seqio.MixtureRegistry.add(name, members, default_rate=seqio.mixing_rate_num_examples)
    for task in sources.TASKS:
        dsbs.register_dsbs(f"{task}_cot")
