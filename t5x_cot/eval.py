"""Evaluate a checkpoint: generate rationales for a task's (or mixture's) examples and score
the extracted answers, configured by gin as T5X's eval.py.

    python -m t5x_cot.eval --gin_file=gin/runs/eval.gin --gin_file=gin/models/t5_1_1/small.gin \\
        --gin.CHECKPOINT_PATH="'/tmp/run'" --gin.MIXTURE_OR_TASK_NAME="'coinflip_cot'" \\
        --gin.EVAL_OUTPUT_DIR="'/tmp/run/eval'"

Writes to EVAL_OUTPUT_DIR: `metrics.json` ({task: {metric: value, "distribution": "in"|"ood",
"dataset", "data_fraction", "coin_flips", ...}}), `predictions.jsonl` (one line per example:
task, id, question, rationale, answer, gold, correct; with NUM_SAMPLES > 1 also the sampled
texts) and `run_info.json` (model config, parameter count, decoding settings; read by
`t5x_cot.report`).
MIXTURE_OR_TASK_NAME may list several names separated by commas; evaluating a coinflip task
adds the out-of-distribution tasks coinflip_ood3 and coinflip_ood4 unless ADD_OOD_TASKS=False.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import pathlib
import re
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from t5x_cot import answers, gin_utils
from t5x_cot.decoding import self_consistency
from t5x_cot.decoding.predict import DecodeConfig

gin = gin_utils.gin
logger = logging.getLogger("t5x_cot.eval")
OOD_TASKS = ("coinflip_ood3", "coinflip_ood4")
METRICS_FILE = "metrics.json"
PREDICTIONS_FILE = "predictions.jsonl"
RUN_INFO_FILE = "run_info.json"


def dataset_of(task_name: str) -> str:
    """The dataset a task is built on (`gsm8k_cot_frac25` -> `gsm8k`)."""
    dataset = task_name.split("_")[0]
    if dataset not in answers.ANSWER_TYPES:
        raise ValueError(f"task {task_name!r} is not built on one of {sorted(answers.ANSWER_TYPES)}")
    return dataset


def expand_task_names(mixture_or_task_names: str | Sequence[str], add_ood_tasks: bool = True) -> list[str]:
    """Task names of comma-separated task/mixture names, mixtures expanded, OOD tasks added."""
    import seqio  # pylint: disable=import-outside-toplevel
    names = mixture_or_task_names.split(",") if isinstance(mixture_or_task_names, str) else list(mixture_or_task_names)
    tasks: list[str] = []
    for name in (n.strip() for n in names if n.strip()):
        provider = seqio.get_mixture_or_task(name)
        members = [t.name for t in provider.tasks] if isinstance(provider, seqio.Mixture) else [name]
        tasks.extend(t for t in members if t not in tasks)
    if add_ood_tasks and any(dataset_of(t) == "coinflip" for t in tasks):
        tasks.extend(t for t in OOD_TASKS if t not in tasks)
    return tasks


def task_facts(task_name: str) -> dict[str, Any]:
    """What a report plots a task's accuracy against: its dataset, the fraction of the training
    rationales the model saw (`gsm8k_cot_frac25` -> 0.25) and, for coinflip, the number of
    people flipping (in-distribution 2; `coinflip_ood3` -> 3)."""
    from t5x_cot.tasks import sources, splits  # pylint: disable=import-outside-toplevel
    dataset = dataset_of(task_name)
    fraction = next((v for k, v in splits.FRACTIONS.items() if task_name.endswith(f"_{k}")), 1.0)
    facts: dict[str, Any] = {"dataset": dataset, "data_fraction": fraction}
    if dataset == "coinflip":
        ood = re.fullmatch(r"coinflip_ood(\d+)", task_name)
        facts["coin_flips"] = int(ood.group(1)) if ood else sources.COINFLIP_SETS["test"].num_people
    return facts


def task_examples(task_name: str, split: str, max_examples: int | None = None) -> list[dict[str, str]]:
    """Rows (id, inputs, targets, answer as text) of a seqio task split, in source order.

    A task without `split` (the OOD tasks only have `test`) is read from `test`.
    """
    import seqio  # pylint: disable=import-outside-toplevel
    source = seqio.get_mixture_or_task(task_name).source
    if split not in source.splits:
        split = "test"
    rows = []
    for row in source.get_dataset(split=split, shuffle=False).as_numpy_iterator():
        rows.append({k: (v.decode("utf-8") if isinstance(v, bytes) else str(v)) for k, v in row.items()})
        if max_examples is not None and len(rows) >= max_examples:
            break
    return rows


def score_task(task_name: str, rows: Sequence[Mapping[str, str]],
               generations: Sequence[Sequence[Any]]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Metrics (the task's seqio metric functions, plus self-consistency accuracy@k with more
    than one sample) and prediction records of one task."""
    import seqio  # pylint: disable=import-outside-toplevel
    task = seqio.get_mixture_or_task(task_name)
    answer_type = answers.ANSWER_TYPES[dataset_of(task_name)]
    targets = [task.postprocess_fn(r["targets"], example={"answer": r["answer"]}, is_target=True) for r in rows]
    predictions = [task.postprocess_fn(g[0].text, example=None, is_target=False) for g in generations]
    metrics: dict[str, Any] = {}
    for metric_fn in task.metric_fns:
        metrics.update(metric_fn(targets, predictions))
    num_samples = len(generations[0]) if generations else 1
    voted = [self_consistency.vote([s.text for s in g], answer_type, num_samples) for g in generations]
    if num_samples > 1:
        table = self_consistency.accuracy_by_k([[s.text for s in g] for g in generations],
                                               [r["answer"] for r in rows], answer_type)
        metrics.update(self_consistency.format_accuracy_by_k(table))
    metrics.update(num_examples=len(rows), distribution="ood" if task_name in OOD_TASKS else "in",
                   **task_facts(task_name))
    records = []
    for row, samples, answer in zip(rows, generations, voted, strict=True):
        record = {"task": task_name, "id": row.get("id"), "question": row["inputs"],
                  "rationale": samples[0].text, "answer": answer, "gold": row["answer"],
                  "correct": answer is not None and answers.is_correct(answer, row["answer"], answer_type),
                  "num_tokens": samples[0].num_tokens}
        calls = [c for s in samples[:1] for c in s.calculator_calls]
        if calls:
            record["calculator_calls"] = [{"expression": c.expression, "forced": c.result} for c in calls]
        if num_samples > 1:
            record["samples"] = [s.text for s in samples]
        records.append(record)
    return metrics, records


def evaluate_tasks(model_config: Any, params: Any, task_names: Sequence[str], *,
                   decode_config: DecodeConfig = DecodeConfig(), split: str = "test",
                   batch_size: int = 32, input_length: int = 256, max_examples: int | None = None,
                   output_dir: str | pathlib.Path | None = None, partitioner: Any = None,
                   vocabulary: Any = None, progress: bool = True) -> dict[str, dict[str, Any]]:
    """Generate and score every task; returns {task: metrics}. With `output_dir`, also writes
    metrics.json and predictions.jsonl there.

    `vocabulary` is a seqio SentencePieceVocabulary (default: `t5x_cot.tasks.vocab.get_vocabulary()`).
    """
    from t5x_cot.decoding.codec import SentencePieceCodec  # pylint: disable=import-outside-toplevel
    from t5x_cot.decoding.generate import generate  # pylint: disable=import-outside-toplevel
    from t5x_cot.decoding.predict import Predictor  # pylint: disable=import-outside-toplevel
    import t5x_cot.tasks  # noqa: F401  pylint: disable=import-outside-toplevel,unused-import
    from t5x_cot.tasks import vocab as vocab_lib  # pylint: disable=import-outside-toplevel

    codec = SentencePieceCodec.from_vocabulary(vocabulary or vocab_lib.get_vocabulary())
    predictor = Predictor(model_config, params, decode_config, partitioner, codec)
    all_metrics: dict[str, dict[str, Any]] = {}
    all_records: list[dict[str, Any]] = []
    for task_name in task_names:
        rows = task_examples(task_name, split, max_examples)
        generations = generate(predictor, codec, [r["inputs"] for r in rows], batch_size=batch_size,
                               input_length=input_length, num_samples=decode_config.num_samples,
                               progress=task_name if progress else None)
        metrics, records = score_task(task_name, rows, generations)
        logger.info("%s: %s", task_name, metrics)
        all_metrics[task_name] = metrics
        all_records.extend(records)
    if output_dir is not None:
        write_outputs(output_dir, all_metrics, all_records, run_info(model_config, params, decode_config))
    return all_metrics


def run_info(model_config: Any, params: Any, decode_config: DecodeConfig) -> dict[str, Any]:
    """The model (config fields, parameter count) and decoding settings of an evaluation."""
    import jax  # pylint: disable=import-outside-toplevel
    return {"num_params": int(sum(x.size for x in jax.tree.leaves(params))),
            "model": dataclasses.asdict(model_config), "decode": dataclasses.asdict(decode_config)}


def write_outputs(output_dir: str | pathlib.Path, metrics: Mapping[str, Any],
                  records: Sequence[Mapping[str, Any]], info: Mapping[str, Any]) -> None:
    """metrics.json, predictions.jsonl and run_info.json in `output_dir` (created if needed)."""
    out = pathlib.Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / RUN_INFO_FILE).write_text(json.dumps(info, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    (out / METRICS_FILE).write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    with open(out / PREDICTIONS_FILE, "w", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")


def load_checkpoint(checkpoint_path: str, model_config: Any) -> Any:
    """Params of `checkpoint_path`, checked against the model's param shapes."""
    from t5x_cot import checkpoints  # pylint: disable=import-outside-toplevel
    from t5x_cot.model import models  # pylint: disable=import-outside-toplevel
    params, _ = checkpoints.load_params(checkpoint_path)
    shapes = models.EncoderDecoderModel(model_config).param_shapes(
        {"encoder_input_tokens": (1, 1), "decoder_input_tokens": (1, 1), "decoder_target_tokens": (1, 1)})
    checkpoints.check_tree_matches(params, shapes, str(checkpoint_path))
    return params


def evaluate(*, model: Any, checkpoint_path: str, mixture_or_task_name: str, output_dir: str,
             decode_config: DecodeConfig = DecodeConfig(), split: str = "test", batch_size: int = 32,
             task_feature_lengths: Mapping[str, int] | None = None, max_examples: int | None = None,
             add_ood_tasks: bool = True, partitioner: Any = None, progress: bool = True) -> dict[str, Any]:
    """The gin-configured evaluation run behind `python -m t5x_cot.eval`."""
    lengths = dict(task_feature_lengths or {"inputs": 256, "targets": 256})
    decode_config = dataclasses.replace(decode_config, max_decode_length=int(lengths["targets"]))
    params = load_checkpoint(checkpoint_path, model.config)
    task_names = expand_task_names(mixture_or_task_name, add_ood_tasks)
    return evaluate_tasks(model.config, params, task_names, decode_config=decode_config, split=split,
                          batch_size=batch_size, input_length=int(lengths["inputs"]),
                          max_examples=max_examples, output_dir=output_dir, partitioner=partitioner,
                          progress=progress)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: gin flags (see `t5x_cot.gin_utils`)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    from t5x_cot import checkpoints  # pylint: disable=import-outside-toplevel
    try:
        metrics = gin_utils.run_configured(argv, evaluate, "t5x_cot.eval")
    except (gin_utils.GinConfigError, checkpoints.CheckpointError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(json.dumps(metrics, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    from t5x_cot import eval as _canonical  # run the importable module, so gin sees one `evaluate`

    sys.exit(_canonical.main())
