"""Evaluate checkpoints as T5X's eval.py: decode (and score) every example of a seqio task or
mixture and compute the task's own metric functions through `seqio.Evaluator`.

    python -m t5x_cot.eval --gin_file=gin/runs/eval.gin --gin_file=gin/models/t5_1_1/small.gin \\
        --gin.CHECKPOINT_PATH="'/tmp/run'" --gin.MIXTURE_OR_TASK_NAME="'coinflip_cot'" \\
        --gin.EVAL_OUTPUT_DIR="'/tmp/run/eval'"

T5X's own run file works unchanged (`--gin_search_paths=<t5x checkout>
--gin_file=t5x/configs/runs/eval.gin`): it binds `evaluate` with T5X's argument names.

Writes to EVAL_OUTPUT_DIR: `inference_eval/` (the seqio loggers: `<task>-metrics.jsonl`, one
line per evaluated step, and `<task>-<step>.jsonl` inferences, as T5X), and for the last
checkpoint evaluated `metrics.json` ({task: {metric: value, "step", "num_examples", and for
the project's tasks "distribution": "in"|"ood", "dataset", "data_fraction", "coin_flips"}}),
`predictions.jsonl` (one line per example; CoT tasks: task, id, question, rationale, answer,
gold, correct; with NUM_SAMPLES > 1 also the sampled texts) and `run_info.json` (model config,
parameter count, decoding settings; read by `t5x_cot.report`).
MIXTURE_OR_TASK_NAME may list several names separated by commas; evaluating a coinflip task on
the test split adds the out-of-distribution tasks coinflip_ood3 and coinflip_ood4 (test-only)
unless ADD_OOD_TASKS=False.
RestoreCheckpointConfig.mode: 'specific' (CHECKPOINT_PATH itself), 'latest' (the newest
checkpoint in that dir) or 'all' (every checkpoint in it, oldest first).
"""
from __future__ import annotations

import dataclasses
import functools
import json
import logging
import pathlib
import re
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from t5x_cot import answers, gin_utils, paths
from t5x_cot.checkpoints import RESTORE_MODES
from t5x_cot.decoding.predict import DecodeConfig

gin = gin_utils.gin
logger = logging.getLogger("t5x_cot.eval")
OOD_TASKS = ("coinflip_ood3", "coinflip_ood4")
METRICS_FILE = "metrics.json"
PREDICTIONS_FILE = "predictions.jsonl"
RUN_INFO_FILE = "run_info.json"
INFERENCE_EVAL_DIR = "inference_eval"


def check_restore_mode(mode: str) -> None:
    """Refuse a RestoreCheckpointConfig.mode other than 'specific', 'latest' or 'all'."""
    if mode not in RESTORE_MODES:
        raise gin_utils.GinConfigError(f"RestoreCheckpointConfig.mode={mode!r}; expected one of "
                                       f"{', '.join(RESTORE_MODES)}")


@dataclasses.dataclass(frozen=True)
class RestoreCheckpointConfig:
    """Which checkpoint(s) to evaluate (T5X's `utils.RestoreCheckpointConfig` has the same fields).

    `path`: a checkpoint (ours or a native T5X `checkpoint_N`), a MODEL_DIR, or a list of
    checkpoints. `mode`: 'specific' (`path` itself), 'latest' (the newest checkpoint in the
    dir `path`), 'all' (every checkpoint in it). `dtype`: the params are rounded to it.
    """

    path: str | Sequence[str]
    mode: str = "specific"
    dtype: str | None = None

    def __post_init__(self) -> None:
        check_restore_mode(self.mode)


def dataset_of(task_name: str) -> str | None:
    """The project dataset a task is built on (`gsm8k_cot_frac25` -> `gsm8k`), else None."""
    dataset = task_name.split("_")[0]
    return dataset if dataset in answers.ANSWER_TYPES else None


def expand_task_names(mixture_or_task_names: str | Sequence[str], add_ood_tasks: bool = True) -> list[str]:
    """The names as given (comma-separated or a list), with the coinflip OOD tasks added when
    one of their tasks is built on coinflip."""
    import seqio  # pylint: disable=import-outside-toplevel

    from t5x_cot.inference_evaluation import split_names  # pylint: disable=import-outside-toplevel
    names = split_names(mixture_or_task_names)
    subtasks = [t.name for name in names for t in seqio.get_subtasks(seqio.get_mixture_or_task(name))]
    if add_ood_tasks and any(dataset_of(t) == "coinflip" for t in subtasks):
        names += [t for t in OOD_TASKS if t not in subtasks]
    return names


def task_facts(task_name: str) -> dict[str, Any]:
    """What a report plots a project task's accuracy against: its dataset, the fraction of the
    training rationales the model saw (`gsm8k_cot_frac25` -> 0.25), in or out of distribution
    and, for coinflip, the number of people flipping (in-distribution 2; `coinflip_ood3` -> 3).
    Empty for other tasks."""
    from t5x_cot.tasks import sources, splits  # pylint: disable=import-outside-toplevel
    dataset = dataset_of(task_name)
    if dataset is None:
        return {}
    fraction = next((v for k, v in splits.FRACTIONS.items() if task_name.endswith(f"_{k}")), 1.0)
    facts: dict[str, Any] = {"dataset": dataset, "data_fraction": fraction,
                             "distribution": "ood" if task_name in OOD_TASKS else "in"}
    if dataset == "coinflip":
        ood = re.fullmatch(r"coinflip_ood(\d+)", task_name)
        facts["coin_flips"] = int(ood.group(1)) if ood else sources.COINFLIP_SETS["test"].num_people
    return facts


def run_info(model_config: Any, params: Any, decode_config: DecodeConfig) -> dict[str, Any]:
    """The model (config fields, parameter count) and decoding settings of an evaluation."""
    import jax  # pylint: disable=import-outside-toplevel
    return {"num_params": int(sum(x.size for x in jax.tree.leaves(params))),
            "model": dataclasses.asdict(model_config), "decode": dataclasses.asdict(decode_config)}


def write_outputs(output_dir: str | pathlib.Path, metrics: Mapping[str, Any],
                  records: Sequence[Mapping[str, Any]], info: Mapping[str, Any]) -> None:
    """metrics.json, predictions.jsonl and run_info.json in `output_dir` (created if needed)."""
    paths.makedirs(output_dir)
    paths.write_text(paths.join(output_dir, RUN_INFO_FILE), json.dumps(info, indent=2, sort_keys=True) + "\n")
    paths.write_text(paths.join(output_dir, METRICS_FILE), json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    paths.write_text(paths.join(output_dir, PREDICTIONS_FILE),
                     "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))


def _evaluation_record(record: Mapping[str, Any]) -> dict[str, Any]:
    """A prediction record as predictions.jsonl has it: CoT records name the input `question`
    and the prediction `rationale`; other tasks' records are kept as they are."""
    if "answer" not in record:
        return dict(record)
    renamed = {"inputs": "question", "prediction": "rationale"}
    return {renamed.get(k, k): v for k, v in record.items() if k not in ("index", "targets")}


def run_evaluation(evaluator: Any, params: Any, step: int, output_dir: str | pathlib.Path | None) -> dict[str, Any]:
    """One `InferenceEvaluator.evaluate`, with the project tasks' facts added; with `output_dir`,
    metrics.json, predictions.jsonl and run_info.json are written there."""
    metrics: dict[str, Any] = {}
    for task, values in evaluator.evaluate(params, step).items():
        metrics[task] = {**values, "step": int(step),
                         "num_examples": len(evaluator.task_examples(task)), **task_facts(task)}
    if output_dir is not None:
        records = [_evaluation_record(r) for r in evaluator.predictions()]
        info = run_info(evaluator.model_config, params, evaluator.decode_configs[0])
        write_outputs(output_dir, metrics, records, info)
    return metrics


def evaluate_tasks(model_config: Any, params: Any, task_names: Sequence[str], *,
                   decode_config: DecodeConfig = DecodeConfig(), split: str = "test",
                   batch_size: int = 32, input_length: int = 256, max_examples: int | None = None,
                   output_dir: str | pathlib.Path | None = None,
                   partitioner: Any = None) -> dict[str, dict[str, Any]]:
    """Decode and score `task_names` with in-memory params (inputs cut to `input_length`,
    targets to `decode_config.max_decode_length`); returns {task: metrics}. With
    `output_dir`, also writes metrics.json, predictions.jsonl and run_info.json there; the
    tasks' own vocabulary decodes the text.
    """
    import seqio  # pylint: disable=import-outside-toplevel

    from t5x_cot.data_pipeline import DatasetConfig  # pylint: disable=import-outside-toplevel
    from t5x_cot.inference_evaluation import InferenceEvaluator  # pylint: disable=import-outside-toplevel
    lengths = {"inputs": int(input_length), "targets": int(decode_config.max_decode_length)}
    cfg = DatasetConfig(",".join(task_names), lengths, split=split, batch_size=batch_size, shuffle=False)
    evaluator = InferenceEvaluator(model_config, cfg, partitioner=partitioner, decode_config=decode_config,
                                   output_dir="", evaluator_cls=functools.partial(seqio.Evaluator,
                                                                                  num_examples=max_examples))
    return run_evaluation(evaluator, params, 0, output_dir)


# ------------------------------------------------------------------ checkpoints


def _checkpoints_in(directory: str) -> dict[int, str]:
    """`checkpoint_<step>` entries of a dir (ours and native T5X ones), by step."""
    from t5x_cot import checkpoints  # pylint: disable=import-outside-toplevel
    root = pathlib.Path(directory)
    found = {step: str(path) for step, path in checkpoints.step_dirs(root).items()}
    if root.is_dir():
        for child in root.iterdir():
            match = re.fullmatch(rf"{checkpoints.STEP_PREFIX}_(\d+)", child.name)
            if match and int(match.group(1)) not in found and checkpoints.is_t5x_checkpoint(child):
                found[int(match.group(1))] = str(child)
    return dict(sorted(found.items()))


def checkpoint_paths(restore_cfg: Any) -> list[str]:
    """The checkpoints a RestoreCheckpointConfig (ours or T5X's) selects, oldest first."""
    from t5x_cot import checkpoints  # pylint: disable=import-outside-toplevel
    path = restore_cfg.path
    given = [path] if isinstance(path, (str, pathlib.Path)) else [str(p) for p in (path or [])]
    if not given:
        raise checkpoints.CheckpointError("RestoreCheckpointConfig.path (CHECKPOINT_PATH) is empty")
    mode = getattr(restore_cfg, "mode", "specific")
    if mode == "specific":
        return [str(p) for p in given]
    check_restore_mode(mode)
    found: dict[int, str] = {}
    for directory in given:
        found.update(_checkpoints_in(str(directory)))
    if not found:
        raise checkpoints.CheckpointError(
            f"{', '.join(map(str, given))}: no {checkpoints.STEP_PREFIX}_<step> checkpoints here "
            f"(RestoreCheckpointConfig.mode={mode!r} looks for them in the dir CHECKPOINT_PATH)")
    return list(found.values()) if mode == "all" else [found[max(found)]]


def restore(path: str, model_config: Any, dtype: str | None = None) -> tuple[Any, int]:
    """(params, step) of one checkpoint, checked against the model's param shapes."""
    from t5x_cot import checkpoints  # pylint: disable=import-outside-toplevel
    if not paths.exists(path):
        raise checkpoints.CheckpointError(f"{path}: no checkpoint here (CHECKPOINT_PATH does not exist)")
    return checkpoints.restore_checkpoint(path, model_config, dtype)


# ------------------------------------------------------------------ the gin entry point


def evaluate(*, model: Any, dataset_cfg: Any, restore_checkpoint_cfg: Any, output_dir: str,
             partitioner: Any = None, inference_evaluator_cls: Any = None,
             decode_config: DecodeConfig | None = None, add_ood_tasks: bool = True,
             max_examples: int | None = None) -> dict[str, Any]:
    """The gin-configured evaluation run behind `python -m t5x_cot.eval` (T5X's `evaluate`
    arguments, plus the decoding settings, OOD tasks and an example cap); returns the metrics
    of the last checkpoint evaluated.

    `dataset_cfg`: a `DatasetConfig` (task_feature_lengths None: the data's maximum lengths).
    `inference_evaluator_cls`: T5X's (a gin-configured `seqio.Evaluator`; default: seqio's,
    logging JSON lines). `max_examples` caps the examples of each task (seqio.Evaluator's
    num_examples).
    """
    import seqio  # pylint: disable=import-outside-toplevel

    from t5x_cot.data_pipeline import get_task  # pylint: disable=import-outside-toplevel
    from t5x_cot.inference_evaluation import InferenceEvaluator  # pylint: disable=import-outside-toplevel
    paths.check_writable(output_dir, "EVAL_OUTPUT_DIR")
    checkpoint_list = checkpoint_paths(restore_checkpoint_cfg)
    get_task(dataset_cfg)
    names = expand_task_names(dataset_cfg.mixture_or_task_name, add_ood_tasks and dataset_cfg.split == "test")
    dataset_cfg = dataclasses.replace(dataset_cfg, mixture_or_task_name=",".join(names))
    evaluator_cls = inference_evaluator_cls or functools.partial(
        seqio.Evaluator, logger_cls=(seqio.PyLoggingLogger, seqio.JSONLogger))
    if max_examples is not None:
        evaluator_cls = functools.partial(evaluator_cls, num_examples=max_examples)
    evaluator = InferenceEvaluator(model.config, dataset_cfg, partitioner=partitioner,
                                   output_dir=paths.join(output_dir, INFERENCE_EVAL_DIR),
                                   evaluator_cls=evaluator_cls, decode_config=decode_config)
    metrics: dict[str, Any] = {}
    for path in checkpoint_list:
        params, step = restore(path, model.config, getattr(restore_checkpoint_cfg, "dtype", None))
        logger.info("evaluating %s (step %d)", path, step)
        metrics = run_evaluation(evaluator, params, step, output_dir)
    return metrics


def register_configurables() -> None:
    """`evaluate` and `RestoreCheckpointConfig` as gin names, with the training core's (idempotent)."""
    gin_utils.register_configurables()
    if not gin_utils.is_registered("t5x_cot.eval.evaluate"):
        gin.external_configurable(evaluate, module="t5x_cot.eval")
    if "RestoreCheckpointConfig" not in gin.config._REGISTRY:  # noqa: SLF001
        # exactly this name: T5X's `utils.RestoreCheckpointConfig` may be registered too
        gin_utils.register_exact(RestoreCheckpointConfig, "RestoreCheckpointConfig")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: gin flags (see `t5x_cot.gin_utils`)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    from t5x_cot.errors import UserError, one_line  # pylint: disable=import-outside-toplevel
    register_configurables()
    try:
        metrics = gin_utils.run_configured(argv, evaluate, "t5x_cot.eval")
    except UserError as error:  # one line; any other exception is a bug and keeps its traceback
        print(f"error: {one_line(error)}", file=sys.stderr)
        return 2
    print(json.dumps(metrics, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    from t5x_cot import eval as _canonical  # run the importable module, so gin sees one `evaluate`

    sys.exit(_canonical.main())
