"""Generate rationales and answers for new questions, configured by gin.

    python -m t5x_cot.infer --gin_file=gin/runs/infer.gin --gin_file=gin/models/t5_1_1/small.gin \\
        --gin.CHECKPOINT_PATH="'/tmp/run'" --gin.INFER_INPUT="'questions.jsonl'" \\
        --gin.INFER_OUTPUT="'out.jsonl'"

INFER_INPUT is a JSONL file (one object per line with a "question" string, optional "id",
"answer" (gold, then `correct` is written) and "task" (gsm8k | strategyqa | coinflip, picks
the answer grammar)), a text file (one question per non-empty line), or the name of a
registered seqio task or mixture (its INFER_SPLIT examples). A malformed line is reported
with its file and line number and skipped (ON_BAD_LINE='skip') or stops the run
(ON_BAD_LINE='fail'); skipped lines are counted in the summary, never dropped silently.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import pathlib
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from t5x_cot import answers, gin_utils
from t5x_cot.data.example import DataError
from t5x_cot.decoding.predict import DecodeConfig
from t5x_cot.eval import dataset_of, load_checkpoint

gin = gin_utils.gin
logger = logging.getLogger("t5x_cot.infer")
BAD_LINE_POLICIES = ("skip", "fail")
AUTO = "auto"


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


def read_questions(path: str | pathlib.Path, on_bad_line: str = "skip") -> ReadResult:
    """Questions of a JSONL (`*.jsonl`, `*.json`) or text file; see the module docstring."""
    if on_bad_line not in BAD_LINE_POLICIES:
        raise ValueError(f"ON_BAD_LINE={on_bad_line!r}; expected one of {', '.join(BAD_LINE_POLICIES)}")
    path = pathlib.Path(path)
    is_json = path.suffix in (".jsonl", ".json")
    questions: list[Question] = []
    skipped: list[DataError] = []
    with open(path, encoding="utf-8", errors="strict") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
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


def task_questions(task_name: str, split: str, max_examples: int | None = None) -> list[Question]:
    """Questions of every task of a seqio task or mixture."""
    import t5x_cot.tasks  # noqa: F401  pylint: disable=import-outside-toplevel,unused-import
    from t5x_cot.eval import expand_task_names, task_examples  # pylint: disable=import-outside-toplevel
    questions = []
    for name in expand_task_names(task_name, add_ood_tasks=False):
        answer_type = answers.ANSWER_TYPES[dataset_of(name)]
        questions += [Question(r["inputs"], r.get("id") or f"{name}-{i}", r["answer"], answer_type)
                      for i, r in enumerate(task_examples(name, split, max_examples))]
    return questions


def extract(text: str, answer_type: str) -> str | None:
    """The answer of a generated text; `auto` tries yes/no, then a number."""
    if answer_type != AUTO:
        return answers.extract_answer(text, answer_type)
    return answers.extract_answer(text, "yesno") or answers.extract_answer(text, "number")


def infer_questions(model_config: Any, params: Any, questions: Sequence[Question], *,
                    decode_config: DecodeConfig = DecodeConfig(), batch_size: int = 32,
                    input_length: int = 256, partitioner: Any = None, vocabulary: Any = None,
                    progress: bool = True) -> list[dict[str, Any]]:
    """One output record per question: id, question, rationale, answer (the majority answer
    with NUM_SAMPLES > 1, plus the samples), and gold/correct where the gold answer is known."""
    from t5x_cot.decoding import self_consistency  # pylint: disable=import-outside-toplevel
    from t5x_cot.decoding.codec import SentencePieceCodec  # pylint: disable=import-outside-toplevel
    from t5x_cot.decoding.generate import generate  # pylint: disable=import-outside-toplevel
    from t5x_cot.decoding.predict import Predictor  # pylint: disable=import-outside-toplevel
    from t5x_cot.tasks import vocab as vocab_lib  # pylint: disable=import-outside-toplevel

    codec = SentencePieceCodec.from_vocabulary(vocabulary or vocab_lib.get_vocabulary())
    predictor = Predictor(model_config, params, decode_config, partitioner, codec)
    generations = generate(predictor, codec, [q.question for q in questions], batch_size=batch_size,
                           input_length=input_length, num_samples=decode_config.num_samples,
                           progress="infer" if progress else None)
    records = []
    for question, samples in zip(questions, generations, strict=True):
        answer = self_consistency.majority_vote([extract(s.text, question.answer_type) for s in samples])
        record: dict[str, Any] = {"id": question.id, "question": question.question,
                                  "rationale": samples[0].text, "answer": answer}
        if question.answer is not None:
            answer_type = question.answer_type if question.answer_type != AUTO else (
                "yesno" if answers.normalize_yesno(question.answer) else "number")
            record["gold"] = question.answer
            record["correct"] = answer is not None and answers.is_correct(answer, question.answer, answer_type)
        calls = samples[0].calculator_calls
        if calls:
            record["calculator_calls"] = [{"expression": c.expression, "forced": c.result} for c in calls]
        if len(samples) > 1:
            record["samples"] = [s.text for s in samples]
        records.append(record)
    return records


def infer(*, model: Any, checkpoint_path: str, input_path: str, output_path: str,
          decode_config: DecodeConfig = DecodeConfig(), batch_size: int = 32,
          task_feature_lengths: Mapping[str, int] | None = None, split: str = "test",
          max_examples: int | None = None, on_bad_line: str = "skip", partitioner: Any = None,
          progress: bool = True) -> dict[str, int]:
    """The gin-configured run behind `python -m t5x_cot.infer`; returns counts
    (questions, written, skipped_lines)."""
    lengths = dict(task_feature_lengths or {"inputs": 256, "targets": 256})
    decode_config = dataclasses.replace(decode_config, max_decode_length=int(lengths["targets"]))
    if pathlib.Path(input_path).is_file():
        read = read_questions(input_path, on_bad_line)
        questions, skipped = read.questions[:max_examples], read.skipped
    else:
        questions, skipped = task_questions(input_path, split, max_examples), []
    params = load_checkpoint(checkpoint_path, model.config)
    records = infer_questions(model.config, params, questions, decode_config=decode_config,
                              batch_size=batch_size, input_length=int(lengths["inputs"]),
                              partitioner=partitioner, progress=progress)
    out = pathlib.Path(output_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
    summary = {"questions": len(questions), "written": len(records), "skipped_lines": len(skipped)}
    for error in skipped:
        print(f"skipped {error}", file=sys.stderr)
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: gin flags (see `t5x_cot.gin_utils`)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    from t5x_cot import checkpoints  # pylint: disable=import-outside-toplevel
    try:
        summary = gin_utils.run_configured(argv, infer, "t5x_cot.infer")
    except (gin_utils.GinConfigError, checkpoints.CheckpointError, DataError, ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    from t5x_cot import infer as _canonical  # run the importable module, so gin sees one `infer`

    sys.exit(_canonical.main())
