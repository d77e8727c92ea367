"""Inference evaluation as T5X runs it: decode (and score) the examples of a seqio task or
mixture with given params, and compute each task's own metric functions through
`seqio.Evaluator` (predict metric fns get the postprocessed decoded text, score metric fns
the log-likelihood of the targets).

Built once per dataset (the evaluator caches the examples, the decode and score functions
compile once per shape) and called with new params as often as needed: by
`python -m t5x_cot.eval` once per checkpoint, and by the training loop every EVAL_PERIOD.

CoT tasks (those whose postprocessor is `t5x_cot.tasks.metrics.postprocess`) also get
self-consistency accuracy@k when more than one sample is drawn per question, and
prediction records with the extracted answer and whether it is correct.
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from t5x_cot import answers, data_pipeline, paths
from t5x_cot.decoding import self_consistency
from t5x_cot.decoding.codec import SentencePieceCodec
from t5x_cot.decoding.generate import Generation, generate_from_tokens
from t5x_cot.decoding.predict import DecodeConfig, Predictor, pad_batch
from t5x_cot.decoding.state import EOS_ID

logger = logging.getLogger("t5x_cot.inference_evaluation")
AUTO = "auto"
Metrics = dict[str, dict[str, float]]


def split_names(mixture_or_task_names: str | Sequence[str]) -> list[str]:
    """Task/mixture names of a comma-separated string (or a list), blanks dropped."""
    names = mixture_or_task_names.split(",") if isinstance(mixture_or_task_names, str) else mixture_or_task_names
    return [n.strip() for n in names if n and n.strip()]


def cot_answer_type(task: Any) -> str | None:
    """The answer type of a task scored by answer extraction (`t5x_cot.tasks.metrics.postprocess`,
    with the user's task too), else None."""
    from t5x_cot.tasks import metrics as task_metrics  # pylint: disable=import-outside-toplevel
    fn = task.postprocessor
    if isinstance(fn, functools.partial) and fn.func is task_metrics.postprocess:
        return fn.keywords.get("answer_type")
    return None


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _float_metrics(values: Mapping[str, Any]) -> dict[str, float]:
    """Numeric metric values as floats (seqio `Scalar`s unwrapped); text, audio etc. are dropped."""
    out = {}
    for name, value in values.items():
        value = getattr(value, "value", value)
        if isinstance(value, (int, float, np.number)) or (isinstance(value, np.ndarray) and value.size == 1):
            out[name] = float(value)
    return out


def padded_prediction(ids: Sequence[int], length: int) -> np.ndarray:
    """Decoded ids as T5X's predict_batch returns them: EOS after the text, zero-padded to
    `length` (seqio stacks the predictions of a task into one array)."""
    out = np.zeros(length, np.int32)
    row = [*ids, EOS_ID][:length]
    out[:len(row)] = row
    return out


def _batches(dataset: Any, batch_size: int) -> Iterator[tuple[np.ndarray, dict[str, np.ndarray]]]:
    """(indices, model features) of an enumerated seqio model dataset, `batch_size` at a time."""
    for indices, features in dataset.batch(batch_size).as_numpy_iterator():
        yield np.asarray(indices), {k: np.asarray(v, np.int32) for k, v in features.items()}


def _rows(dataset: Any) -> tuple[list[int], list[np.ndarray]]:
    indices, rows = [], []
    for index, features in dataset.as_numpy_iterator():
        indices.append(int(index))
        rows.append(np.asarray(features["encoder_input_tokens"], np.int32))
    return indices, rows


_SCORED_FEATURES = ("encoder_input_tokens", "decoder_input_tokens", "decoder_target_tokens", "decoder_loss_weights")


def score_function(model_config: Any) -> Callable[[Any, Mapping[str, jax.Array]], jax.Array]:
    """score(params, batch) -> [batch] sum of the targets' log-probabilities (T5X's score_batch)."""
    from t5x_cot.model.models import EncoderDecoderModel  # pylint: disable=import-outside-toplevel
    model = EncoderDecoderModel(model_config)

    def score(params: Any, batch: Mapping[str, jax.Array]) -> jax.Array:
        logits = model.compute_logits(params, batch).astype(jnp.float32)
        log_probs = jax.nn.log_softmax(logits, axis=-1)
        targets = batch["decoder_target_tokens"]
        token = jnp.take_along_axis(log_probs, targets[..., None], axis=-1)[..., 0]
        return jnp.sum(token * batch["decoder_loss_weights"], axis=-1)
    return score


class Scorer:
    """Scores model-feature batches (T5X's score_batch) with one compiled function: rows are
    padded to `batch_size` (rounded up to the data-parallel size) and placed on the mesh."""

    def __init__(self, model_config: Any, batch_size: int, partitioner: Any = None) -> None:
        self.partitioner = partitioner
        multiple = 1 if partitioner is None else partitioner.data_size
        self.batch_size = -(-int(batch_size) // multiple) * multiple
        self._score = jax.jit(score_function(model_config))

    def __call__(self, params: Any, features: Mapping[str, np.ndarray]) -> np.ndarray:
        """[rows] scores of up to `batch_size` rows of unpacked EncDecFeatureConverter features."""
        rows = len(features["decoder_target_tokens"])
        batch = {k: self._place(pad_batch(features[k], self.batch_size, features[k].shape[1]))
                 for k in _SCORED_FEATURES}
        with self._context():
            return np.asarray(jax.device_get(self._score(params, batch)))[:rows]

    def _place(self, array: np.ndarray) -> jax.Array:
        if self.partitioner is None:
            return jnp.asarray(array)
        return jax.device_put(array, self.partitioner.batch_sharding(array.ndim))

    def _context(self) -> Any:
        return self.partitioner.context() if self.partitioner is not None else contextlib.nullcontext()


@dataclasses.dataclass
class _TaskRun:
    """What one evaluation of one task produced (for prediction records)."""

    generations: list[list[Generation]] = dataclasses.field(default_factory=list)
    scores: list[float] = dataclasses.field(default_factory=list)


class InferenceEvaluator:
    """Decodes and scores a dataset's examples with given params; metrics by seqio.Evaluator.

    `model_config` is the T5Config (or a model holding it as `.config`).
    `dataset_cfg` is a `t5x_cot.data_pipeline.DatasetConfig`: its `mixture_or_task_name` (one
    name or several, comma-separated), `split`, `batch_size`, `task_feature_lengths` (None,
    or None for a feature: the longest example of the data, as T5X), `seed`, `use_cached` and
    `module` (imported first: MIXTURE_OR_TASK_MODULE) are used. `evaluator_cls` builds the
    `seqio.Evaluator` (T5X's `inference_evaluator_cls`, e.g. gin-bound with its loggers;
    default: seqio.Evaluator logging JSON lines); its logs go to `output_dir`.
    `decode_config` sets the strategy; its max_decode_length becomes the targets length.
    """

    def __init__(self, model_config: Any, dataset_cfg: Any, *, partitioner: Any = None, output_dir: str,
                 evaluator_cls: Any = None, decode_config: DecodeConfig | None = None) -> None:
        seqio = data_pipeline.import_seqio()
        self.model_config = getattr(model_config, "config", model_config)
        self.dataset_cfg = dataset_cfg
        self.partitioner = partitioner
        self.output_dir = str(output_dir)
        if self.output_dir:
            paths.makedirs(self.output_dir)
        self.batch_size = int(dataset_cfg.batch_size)
        evaluator_cls = evaluator_cls or functools.partial(seqio.Evaluator, logger_cls=(seqio.JSONLogger,))
        lengths = dict(dataset_cfg.task_feature_lengths) if dataset_cfg.task_feature_lengths else None
        self.evaluators = []
        covered: set[str] = set()
        for name in split_names(dataset_cfg.mixture_or_task_name):
            provider = data_pipeline.get_task(dataclasses.replace(dataset_cfg, mixture_or_task_name=name))
            subtasks = {t.name for t in seqio.get_subtasks(provider)}
            if subtasks <= covered:
                continue
            covered |= subtasks
            evaluator = evaluator_cls(
                mixture_or_task_name=name, feature_converter=seqio.EncDecFeatureConverter(pack=False),
                eval_split=dataset_cfg.split, use_cached=dataset_cfg.use_cached, seed=dataset_cfg.seed,
                sequence_length=lengths, log_dir=self.output_dir)
            if not evaluator.eval_tasks:
                raise data_pipeline.DataConfigError(f"{name!r} has no task with a {dataset_cfg.split!r} split and metric "
                                 f"functions to evaluate")
            self.evaluators.append(evaluator)
        self.tasks = {t.name: t for e in self.evaluators for t in e.eval_tasks}
        base = decode_config or DecodeConfig()
        self.decode_configs = [
            dataclasses.replace(base, max_decode_length=int(e.model_feature_shapes["decoder_target_tokens"][-1]))
            for e in self.evaluators]
        vocabulary = next(iter(self.tasks.values())).output_features["targets"].vocabulary
        self.vocabulary = vocabulary
        self.codec = (SentencePieceCodec.from_vocabulary(vocabulary) if base.use_calculator else None)
        self.scorer = Scorer(self.model_config, self.batch_size, partitioner)
        self.runs: dict[str, _TaskRun] = {}

    @property
    def feature_lengths(self) -> list[dict[str, int]]:
        """The model feature lengths of each evaluator (computed from the data where not given)."""
        return [{k: int(v[-1]) for k, v in e.model_feature_shapes.items()} for e in self.evaluators]

    # ------------------------------------------------------------------ model functions

    def _predict_fn(self, predictor: Predictor, task_of: Mapping[int, str], with_aux: bool) -> Callable:
        def predict(dataset: Any) -> Any:
            indices, rows = _rows(dataset)
            num_samples = predictor.decode_config.num_samples
            outputs = generate_from_tokens(predictor, rows, self._decode_text, batch_size=self.batch_size,
                                           num_samples=num_samples)
            self.runs.setdefault(task_of[id(dataset)], _TaskRun()).generations = [
                [g for _, g in samples] for samples in outputs]
            length = predictor.decode_config.max_decode_length
            result = [(i, padded_prediction(samples[0][0], length)) for i, samples in zip(indices, outputs)]
            if with_aux:
                return result, {"scores": [samples[0][1].score for samples in outputs]}
            return result
        return predict

    def _score_fn(self, params: Any, task_of: Mapping[int, str]) -> Callable:
        def score(dataset: Any) -> list[tuple[int, float]]:
            result: list[tuple[int, float]] = []
            for indices, features in _batches(dataset, self.batch_size):
                result.extend((int(i), float(v)) for i, v in zip(indices, self.scorer(params, features)))
            self.runs.setdefault(task_of[id(dataset)], _TaskRun()).scores = [v for _, v in sorted(result)]
            return result
        return score

    def _decode_text(self, ids: list[int]) -> str:
        return _text(self.vocabulary.decode(ids))

    # ------------------------------------------------------------------ public API

    def evaluate(self, params: Any, step: int) -> Metrics:
        """{task: {metric: value}} of every task, with the task's own metric functions (plus
        accuracy@k for CoT tasks sampled more than once). Metrics are computed and logged on
        process 0; other processes return {}."""
        self.runs = {}
        results: Metrics = {}
        compute = jax.process_index() == 0
        for evaluator, decode_config in zip(self.evaluators, self.decode_configs):
            predictor = Predictor(self.model_config, params, decode_config, self.partitioner, self.codec)
            task_of = {id(ds): name for name, ds in evaluator.cached_model_datasets.items()}
            future, _ = evaluator.evaluate(
                compute_metrics=compute, step=int(step),
                predict_fn=self._predict_fn(predictor, task_of, with_aux=False),
                predict_with_aux_fn=self._predict_fn(predictor, task_of, with_aux=True),
                score_fn=self._score_fn(predictor.params, task_of))
            for task_name, values in (future.result() or {}).items():
                results[task_name] = _float_metrics(values)
                results[task_name].update(self._self_consistency(task_name))
        for task_name, values in results.items():
            logger.info("step %d %s: %s", step, task_name, values)
        return results

    def _self_consistency(self, task_name: str) -> dict[str, float]:
        """accuracy@k of a CoT task sampled more than once per question."""
        answer_type = cot_answer_type(self.tasks[task_name])
        generations = self.runs.get(task_name, _TaskRun()).generations
        if answer_type is None or not generations or len(generations[0]) < 2:
            return {}
        golds = [_text(ex["answer"]) for ex in self.task_examples(task_name)]
        table = self_consistency.accuracy_by_k([[g.text for g in gens] for gens in generations], golds, answer_type)
        return self_consistency.format_accuracy_by_k(table)

    def task_examples(self, task_name: str) -> list[dict[str, Any]]:
        """The cached task features of `task_name`'s examples, in evaluation order."""
        evaluator = next(e for e in self.evaluators if task_name in e.cached_task_datasets)
        return list(evaluator.cached_task_datasets[task_name].as_numpy_iterator())

    def predictions(self) -> list[dict[str, Any]]:
        """One record per example of the last `evaluate`: task, index, inputs, targets, score
        (with score metrics) and the `prediction_fields` (with predict metrics)."""
        records = []
        for task_name, run in self.runs.items():
            answer_type = cot_answer_type(self.tasks[task_name])
            examples = self.task_examples(task_name)
            for index, example in enumerate(examples):
                record: dict[str, Any] = {"task": task_name, "index": index,
                                          "inputs": _text(example.get("inputs_pretokenized", "")),
                                          "targets": _text(example.get("targets_pretokenized", ""))}
                if run.scores:
                    record["score"] = run.scores[index]
                if run.generations:
                    record.update(prediction_fields(run.generations[index], example, answer_type))
                records.append(record)
        return records


def extract_answer(text: str, answer_type: str) -> str | None:
    """The answer of a generated text; `auto` (type unknown) tries yes/no, a number, then an option letter."""
    if answer_type != AUTO:
        return answers.extract_answer(text, answer_type)
    return (answers.extract_answer(text, "yesno") or answers.extract_answer(text, "number")
            or answers.extract_answer(text, "choice"))


def prediction_fields(samples: Sequence[Generation], example: Mapping[str, Any],
                      answer_type: str | None) -> dict[str, Any]:
    """What one example's generations give: prediction (the first sample), num_tokens, samples
    (several), calculator_calls; with an answer type (`auto` included) also id, answer (the
    majority answer of the samples) and, where the example has its gold `answer`, gold and
    correct."""
    first = samples[0]
    fields: dict[str, Any] = {"prediction": first.text, "num_tokens": first.num_tokens}
    if len(samples) > 1:
        fields["samples"] = [s.text for s in samples]
    if first.calculator_calls:
        fields["calculator_calls"] = [{"expression": c.expression, "forced": c.result}
                                      for c in first.calculator_calls]
    if answer_type is None:
        return fields
    answer = self_consistency.majority_vote([extract_answer(s.text, answer_type) for s in samples])
    fields.update(id=_text(example["id"]) if "id" in example else None, answer=answer)
    if example.get("answer") is not None:
        gold = _text(example["answer"])
        if answer_type == AUTO:
            answer_type = answers.answer_type_of(gold)
        fields.update(gold=gold, correct=answer is not None and answers.is_correct(answer, gold, answer_type))
    return fields
