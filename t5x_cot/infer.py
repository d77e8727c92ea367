"""Inference as T5X's infer.py: decode (mode 'predict') or score the targets of (mode 'score')
every example of a seqio task or mixture, or of a file of new questions, into a folder of
JSON lines.

    python -m t5x_cot.infer --gin_file=gin/runs/infer.gin --gin_file=gin/models/t5_1_1/small.gin \\
        --gin.CHECKPOINT_PATH="'/tmp/run'" --gin.MIXTURE_OR_TASK_NAME="'gsm8k_cot'" \\
        --gin.INFER_OUTPUT_DIR="'/tmp/run/infer'"

T5X's own run file works unchanged (`--gin_file=t5x/configs/runs/infer.gin`).

INFER_OUTPUT_DIR gets one file per task, named as T5X names it:
`<task>-<mode>.jsonl-<shard_id:05>-of-<num_shards:05>`, one JSON object per example:
`{"inputs": {"inputs_pretokenized": ..., "targets_pretokenized": ...}, "prediction": text,
"aux": {"scores": ..., ...}}` (predict) or `{"inputs": ..., "score": log-likelihood}` (score).
For answer-extracting tasks and question files `aux` also holds id, answer (the majority answer
with NUM_SAMPLES > 1, plus the samples), and gold/correct where the gold answer is known.

Every `checkpoint_period` batches the finished chunk is written to
`tmp-<task>-<shard>-of-<num_shards>/`; a rerun of the same command resumes after the last
finished chunk, and the chunks are merged into the final file at the end.
`shard_id`/`num_shards` split each task's examples across jobs.

INFER_INPUT (instead of MIXTURE_OR_TASK_NAME) is a JSONL file (one object per line with a
"question" string, optional "id", "answer" (gold, then `correct` is written) and "task"
(gsm8k | strategyqa | coinflip, picks the answer grammar)) or a text file (one question per
non-empty line); its output file is named after the input file. A malformed line is reported
with its file and line number and skipped (ON_BAD_LINE='skip') or stops the run
(ON_BAD_LINE='fail'); skipped lines are counted in the summary, never dropped silently.
"""
from __future__ import annotations

import dataclasses
import functools
import itertools
import json
import logging
import pathlib
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from t5x_cot import answers, gin_utils, paths
from t5x_cot.data.example import DataError
from t5x_cot.decoding.predict import DecodeConfig

gin = gin_utils.gin
logger = logging.getLogger("t5x_cot.infer")
BAD_LINE_POLICIES = ("skip", "fail")
MODES = ("predict", "score", "predict_with_aux")
AUTO = "auto"
Example = tuple[dict[str, Any], np.ndarray, dict[str, np.ndarray]]  # (task features, encoder row, model features)


@dataclasses.dataclass(frozen=True)
class Question:
    """One input: the question text and what the input said about it."""

    question: str
    id: str
    answer: str | None = None
    answer_type: str = AUTO


@dataclasses.dataclass
class ReadResult:
    questions: list[Question]
    skipped: list[DataError]


def _parse_json_line(path: str, number: int, text: str) -> Question:
    try:
        record = json.loads(text)
    except json.JSONDecodeError as error:
        raise DataError(path, f"not valid JSON ({error.msg} at column {error.colno})", line=number) from None
    if not isinstance(record, dict):
        raise DataError(path, f"expected a JSON object, got {type(record).__name__}", line=number)
    question = record.get("question", record.get("inputs"))
    if not isinstance(question, str) or not question.strip():
        raise DataError(path, "expected a non-empty string", line=number, field="question")
    answer = record.get("answer")
    if answer is not None and not isinstance(answer, (str, int, float, bool)):
        raise DataError(path, "expected a string, number or boolean", line=number, field="answer")
    answer_type = AUTO
    if record.get("task") is not None:
        task = record["task"]
        if not isinstance(task, str) or task.split("_")[0] not in answers.ANSWER_TYPES:
            raise DataError(path, f"expected one of {sorted(answers.ANSWER_TYPES)}, got {task!r}",
                            line=number, field="task")
        answer_type = answers.ANSWER_TYPES[task.split("_")[0]]
    if isinstance(answer, bool):
        answer = "yes" if answer else "no"
    return Question(question.strip(), str(record.get("id", f"line-{number}")),
                    None if answer is None else str(answer), answer_type)


def _decode_line(path: str, number: int, raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise DataError(path, f"not UTF-8 text ({error.reason} at byte {error.start + 1})", line=number) from None


def read_questions(path: str | pathlib.Path, on_bad_line: str = "skip") -> ReadResult:
    """Questions of a JSONL (`*.jsonl`, `*.json`) or text file; see the module docstring."""
    if on_bad_line not in BAD_LINE_POLICIES:
        raise gin_utils.GinConfigError(f"ON_BAD_LINE={on_bad_line!r}; expected one of {', '.join(BAD_LINE_POLICIES)}")
    path = pathlib.Path(path)
    is_json = path.suffix in (".jsonl", ".json")
    questions: list[Question] = []
    skipped: list[DataError] = []
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            try:
                line = _decode_line(str(path), number, raw)
                if not line.strip():
                    continue
                if is_json:
                    questions.append(_parse_json_line(str(path), number, line))
                else:
                    questions.append(Question(line.strip(), f"line-{number}"))
            except DataError as error:
                if on_bad_line == "fail":
                    raise
                logger.warning("skipping %s", error)
                skipped.append(error)
    return ReadResult(questions, skipped)


# ------------------------------------------------------------------ inputs


@dataclasses.dataclass
class InferSource:
    """One output file's examples: a name, the encoder/decoder lengths, how to read the answer
    (None: not an answer-extracting task) and a fresh iterator over its examples."""

    name: str
    lengths: dict[str, int]
    answer_type: Callable[[Mapping[str, Any]], str | None]
    examples: Callable[[], Iterator[Example]]


def _pretokenized(features: Mapping[str, Any]) -> dict[str, Any]:
    return {k: (v.decode("utf-8") if isinstance(v, bytes) else v) for k, v in features.items()
            if k.endswith("_pretokenized")}


def _max_lengths(dataset: Any, features: Iterable[str]) -> dict[str, int]:
    """The longest example of each feature (tokens, EOS included), as T5X computes missing lengths."""
    lengths = {name: 1 for name in features}
    for example in dataset.as_numpy_iterator():
        for name in lengths:
            lengths[name] = max(lengths[name], len(example[name]))
    return lengths


def _task_dataset(task: Any, dataset_cfg: Any, shard: Any, lengths: Mapping[str, int] | None = None) -> Any:
    """One shard of a task's split, in source order, once."""
    return task.get_dataset(sequence_length=lengths, split=dataset_cfg.split, shuffle=False, num_epochs=1,
                            shard_info=shard, use_cached=dataset_cfg.use_cached, seed=dataset_cfg.seed)


def _task_examples(task: Any, dataset_cfg: Any, shard: Any, lengths: Mapping[str, int],
                   max_examples: int | None) -> Iterator[Example]:
    """(task features, encoder row, model features) of each example, as seqio's EncDecFeatureConverter
    (unpacked) builds them."""
    import seqio  # pylint: disable=import-outside-toplevel
    task_ds = _task_dataset(task, dataset_cfg, shard, lengths)
    model_ds = seqio.EncDecFeatureConverter(pack=False)(task_ds, lengths)
    pairs = zip(task_ds.as_numpy_iterator(), model_ds.as_numpy_iterator())
    for features, model_features in itertools.islice(pairs, max_examples):
        yield (features, np.asarray(model_features["encoder_input_tokens"], np.int32),
               {k: np.asarray(v, np.int32) for k, v in model_features.items()})


def task_sources(dataset_cfg: Any, shard_id: int, num_shards: int, max_examples: int | None) -> list[InferSource]:
    """One source per task of the dataset config's task or mixture (this shard's examples); a
    feature without a length gets the longest of the shard (T5X's TASK_FEATURE_LENGTHS=None)."""
    import seqio  # pylint: disable=import-outside-toplevel

    from t5x_cot.data_pipeline import get_task  # pylint: disable=import-outside-toplevel
    from t5x_cot.inference_evaluation import cot_answer_type, split_names  # pylint: disable=import-outside-toplevel
    shard = seqio.ShardInfo(shard_id, num_shards)
    sources = []
    for name in split_names(dataset_cfg.mixture_or_task_name):
        for task in seqio.get_subtasks(get_task(dataclasses.replace(dataset_cfg, mixture_or_task_name=name))):
            lengths = dict(dataset_cfg.task_feature_lengths or {})
            missing = [k for k in task.output_features if lengths.get(k) is None]
            if missing:
                lengths.update(_max_lengths(_task_dataset(task, dataset_cfg, shard), missing))
            answer_type = cot_answer_type(task)
            sources.append(InferSource(task.name, lengths, lambda _, t=answer_type: t, functools.partial(
                _task_examples, task, dataset_cfg, shard, lengths, max_examples)))
    return sources


def question_source(path: str, questions: Sequence[Question], lengths: Mapping[str, int] | None,
                    vocabulary: Any) -> InferSource:
    """The questions of a file as one source, named after the file."""
    from t5x_cot.decoding.state import EOS_ID  # pylint: disable=import-outside-toplevel
    if not lengths or lengths.get("targets") is None:
        raise gin_utils.GinConfigError(f"INFER_INPUT={path}: set TASK_FEATURE_LENGTHS['targets'] (how many tokens to decode); "
                         "a file of questions has no targets to measure")
    encoded = [list(vocabulary.encode(q.question)) for q in questions]
    input_length = int(lengths.get("inputs") or max((len(ids) + 1 for ids in encoded), default=1))

    def examples() -> Iterator[Example]:
        for question, ids in zip(questions, encoded):
            row = np.asarray(ids[:input_length - 1] + [EOS_ID], np.int32)
            features = {"id": question.id, "inputs_pretokenized": question.question, "answer": question.answer,
                        "answer_type": question.answer_type}
            yield features, row, {}
    return InferSource(pathlib.Path(path).stem, {"inputs": input_length, "targets": int(lengths["targets"])},
                       lambda features: features["answer_type"], examples)


# ------------------------------------------------------------------ chunked, resumable writing


def output_name(source_name: str, mode: str, shard_id: int, num_shards: int) -> str:
    """T5X's output file name: `<task>-<mode>.jsonl-<shard_id:05>-of-<num_shards:05>`."""
    return f"{source_name}-{mode}.jsonl-{shard_id:05d}-of-{num_shards:05d}"


def _finished_chunks(tmp_dir: str, name: str) -> int:
    """How many consecutive chunk files (from chunk 0) a previous run finished."""
    count = 0
    while paths.exists(paths.join(tmp_dir, f"{name}-chunk{count:05d}")):
        count += 1
    return count


def write_chunked(output_dir: str, name: str, tmp_name: str, examples: Iterator[Example], chunk_size: int,
                  infer_chunk: Callable[[list[Example]], list[dict[str, Any]]]) -> tuple[str, int]:
    """Infer `examples` `chunk_size` at a time into chunk files under `output_dir/tmp_name/`
    (skipping the chunks a previous run finished), then merge them into `output_dir/name`.
    Returns (output path, examples inferred now)."""
    tmp_dir = paths.join(output_dir, tmp_name)
    paths.makedirs(tmp_dir)
    done = _finished_chunks(tmp_dir, name)
    if done:
        logger.info("%s: resuming after %d finished chunks", name, done)
    examples = itertools.islice(examples, done * chunk_size, None)
    inferred = 0
    for index in itertools.count(done):
        chunk = list(itertools.islice(examples, chunk_size))
        if not chunk:
            break
        records = infer_chunk(chunk)
        inferred += len(records)
        _write_atomically(paths.join(tmp_dir, f"{name}-chunk{index:05d}"),
                          "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    chunk_paths = [paths.join(tmp_dir, f"{name}-chunk{i:05d}") for i in range(_finished_chunks(tmp_dir, name))]
    output_path = paths.join(output_dir, name)
    paths.write_text(output_path, "".join(paths.read_text(p) for p in chunk_paths))
    for chunk_path in chunk_paths:
        paths.remove(chunk_path)
    if not paths.is_url(tmp_dir):
        pathlib.Path(tmp_dir).rmdir()
    return output_path, inferred


def _write_atomically(path: str, text: str) -> None:
    """A local file appears complete or not at all (written beside, then renamed); object
    stores (gs://) publish an object only once it is fully uploaded."""
    if paths.is_url(path):
        paths.write_text(path, text)
        return
    paths.write_text(path + ".tmp", text)
    pathlib.Path(path + ".tmp").replace(path)


# ------------------------------------------------------------------ the gin entry point


def _predict_records(predictor: Any, vocabulary: Any, batch_size: int,
                     answer_type: Callable[[Mapping[str, Any]], str | None]) -> Callable[[list[Example]], list[dict]]:
    from t5x_cot.decoding.generate import generate_from_tokens  # pylint: disable=import-outside-toplevel
    from t5x_cot.inference_evaluation import prediction_fields  # pylint: disable=import-outside-toplevel

    def infer_chunk(chunk: list[Example]) -> list[dict[str, Any]]:
        outputs = generate_from_tokens(predictor, [row for _, row, _ in chunk], lambda ids: vocabulary.decode(ids),
                                       batch_size=batch_size, num_samples=predictor.decode_config.num_samples)
        records = []
        for (features, _, _), samples in zip(chunk, outputs):
            generations = [g for _, g in samples]
            fields = prediction_fields(generations, features, answer_type(features))
            aux = {"scores": generations[0].score, **{k: v for k, v in fields.items() if k != "prediction"}}
            records.append({"inputs": _pretokenized(features), "prediction": fields["prediction"], "aux": aux})
        return records
    return infer_chunk


def _score_records(scorer: Any, params: Any) -> Callable[[list[Example]], list[dict]]:
    def infer_chunk(chunk: list[Example]) -> list[dict[str, Any]]:
        records = []
        for start in range(0, len(chunk), scorer.batch_size):
            part = chunk[start:start + scorer.batch_size]
            features = {k: np.stack([m[k] for _, _, m in part]) for k in part[0][2]}
            records += [{"inputs": _pretokenized(f), "score": float(s)}
                        for (f, _, _), s in zip(part, scorer(params, features))]
        return records
    return infer_chunk


def infer(*, mode: str = "predict", model: Any, output_dir: str, restore_checkpoint_cfg: Any,
          dataset_cfg: Any = None, partitioner: Any = None, checkpoint_period: int = 100,
          shard_id: int = 0, num_shards: int = 1, decode_config: DecodeConfig | None = None,
          input_path: str | None = None, on_bad_line: str = "skip",
          max_examples: int | None = None) -> dict[str, Any]:
    """The gin-configured run behind `python -m t5x_cot.infer` (T5X's `infer` arguments, plus the
    decoding settings, a questions file `input_path` and an example cap per task); returns a
    summary (files written, examples inferred now, skipped lines)."""
    from t5x_cot.decoding.codec import SentencePieceCodec  # pylint: disable=import-outside-toplevel
    from t5x_cot.decoding.predict import Predictor  # pylint: disable=import-outside-toplevel
    from t5x_cot.eval import checkpoint_paths, restore  # pylint: disable=import-outside-toplevel
    from t5x_cot.inference_evaluation import Scorer  # pylint: disable=import-outside-toplevel
    from t5x_cot.tasks import vocab as vocab_lib  # pylint: disable=import-outside-toplevel

    if mode not in MODES:
        raise gin_utils.GinConfigError(f"infer.mode={mode!r}; expected one of {', '.join(MODES)}")
    if not 0 <= shard_id < num_shards:
        raise gin_utils.GinConfigError(f"infer.shard_id={shard_id} with infer.num_shards={num_shards}: expected 0 <= shard_id < num_shards")
    if checkpoint_period < 1:
        raise gin_utils.GinConfigError(f"infer.checkpoint_period={checkpoint_period}: expected a positive number of batches")
    if getattr(restore_checkpoint_cfg, "mode", "specific") == "all":
        raise gin_utils.GinConfigError("RestoreCheckpointConfig.mode='all' evaluates every checkpoint: use python -m t5x_cot.eval; "
                         "infer reads one checkpoint ('specific' or 'latest')")
    paths.check_writable(output_dir, "INFER_OUTPUT_DIR")
    batch_size = int(dataset_cfg.batch_size) if dataset_cfg is not None else 32
    skipped: list[DataError] = []
    if input_path and pathlib.Path(input_path).is_file():
        if mode == "score":
            raise gin_utils.GinConfigError(f"infer.mode='score' scores targets; INFER_INPUT={input_path} has questions only: "
                             "score a seqio task (MIXTURE_OR_TASK_NAME) instead")
        read = read_questions(input_path, on_bad_line)
        skipped = read.skipped
        vocabulary = vocab_lib.get_vocabulary()
        lengths = dataset_cfg.task_feature_lengths if dataset_cfg is not None else None
        sources = [question_source(input_path, read.questions[:max_examples], lengths, vocabulary)]
    else:
        if input_path:  # a task or mixture name given as INFER_INPUT
            dataset_cfg = dataclasses.replace(dataset_cfg, mixture_or_task_name=input_path)
        if dataset_cfg is None or not dataset_cfg.mixture_or_task_name:
            raise gin_utils.GinConfigError("set MIXTURE_OR_TASK_NAME (a seqio task or mixture) or INFER_INPUT (a file of questions)")
        sources = task_sources(dataset_cfg, shard_id, num_shards, max_examples)
        vocabulary = None
    params, step = restore(checkpoint_paths(restore_checkpoint_cfg)[-1], model.config,
                           getattr(restore_checkpoint_cfg, "dtype", None))
    logger.info("inferring with the checkpoint of step %d", step)
    base = decode_config or DecodeConfig()
    scorer = Scorer(model.config, batch_size, partitioner) if mode == "score" else None
    summary: dict[str, Any] = {"files": [], "inferred": 0, "skipped_lines": len(skipped)}
    for source in sources:
        if scorer is not None:
            placed = Predictor(model.config, params, base, partitioner).params
            infer_chunk = _score_records(scorer, placed)
        else:
            decode = dataclasses.replace(base, max_decode_length=source.lengths["targets"])
            source_vocabulary = vocabulary or _task_vocabulary(source.name)
            codec = SentencePieceCodec.from_vocabulary(source_vocabulary) if decode.use_calculator else None
            predictor = Predictor(model.config, params, decode, partitioner, codec)
            infer_chunk = _predict_records(predictor, source_vocabulary, batch_size, source.answer_type)
        name = output_name(source.name, mode, shard_id, num_shards)
        path, inferred = write_chunked(output_dir, name, f"tmp-{source.name}-{shard_id:05d}-of-{num_shards:05d}",
                                       source.examples(), checkpoint_period * batch_size, infer_chunk)
        summary["files"].append(path)
        summary["inferred"] += inferred
    for error in skipped:
        print(f"skipped {error}", file=sys.stderr)
    return summary


def _task_vocabulary(task_name: str) -> Any:
    import seqio  # pylint: disable=import-outside-toplevel
    return seqio.get_mixture_or_task(task_name).output_features["targets"].vocabulary


def register_configurables() -> None:
    """`infer` as a gin name, with `evaluate`'s and the training core's (idempotent)."""
    from t5x_cot import eval as eval_lib  # pylint: disable=import-outside-toplevel
    eval_lib.register_configurables()
    if not gin_utils.is_registered("t5x_cot.infer.infer"):
        gin.external_configurable(infer, module="t5x_cot.infer")


def shard_id_flag(argv: Sequence[str]) -> list[str]:
    """T5X infer.py's `--shard_id=N` (overrides infer.shard_id) as the gin binding it stands for."""
    out: list[str] = []
    args = iter(argv)
    for arg in args:
        if arg == "--shard_id":
            arg = f"--shard_id={next(args, '')}"
        if arg.startswith("--shard_id="):
            value = arg.split("=", 1)[1]
            if not value.isdigit():
                raise gin_utils.GinConfigError(f"--shard_id={value!r}: expected a non-negative integer")
            out.append(f"--gin.infer.shard_id={int(value)}")
        else:
            out.append(arg)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: gin flags (see `t5x_cot.gin_utils`) and T5X's `--shard_id`."""
    argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    from t5x_cot.errors import UserError, one_line  # pylint: disable=import-outside-toplevel
    register_configurables()
    try:
        summary = gin_utils.run_configured(shard_id_flag(argv), infer, "t5x_cot.infer")
    except UserError as error:  # one line; any other exception is a bug and keeps its traceback
        print(f"error: {one_line(error)}", file=sys.stderr)
        return 2
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    from t5x_cot import infer as _canonical  # run the importable module, so gin sees one `infer`

    sys.exit(_canonical.main())
