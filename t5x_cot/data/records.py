"""CoT records: schema, validation and crash-safe JSONL reading and writing.

A CoT record is one JSON object per line with the fields in `RECORD_FIELDS`:

    id, task, split, question, answer    the annotated example (answer = gold, normalised:
                                         "yes"/"no" for strategyqa and coinflip, a number
                                         for gsm8k; any non-empty text for other tasks)
    rationale                            the kept step-by-step text, without "The answer is X."
    teacher_answer                       the answer the teacher's text ended with
    correct                              whether teacher_answer matches the gold answer
    teacher {endpoint, model, params}    provenance (never an API key)
    prompt_id                            identifies the prompt template + exemplar set
    sample_index                         which sample of this question (0..samples-1)
    usage                                token counts the endpoint reported (may be {})

Crash safety. Appending writes whole lines and flushes them to the kernel, so a killed
process leaves at most one torn line: the last one, without its newline. Readers
(`iter_jsonl`) never return such a line as data, and `open_append` cuts it off before
writing more, so a torn line can never be glued to the next record. Whole-file outputs
go through `write_jsonl_atomic` (temporary file + fsync + rename): readers see the old
file or the new one, never a mixture.
"""
from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from typing import IO, Any

from t5x_cot.data.example import DataError
from t5x_cot.data.gsm8k import normalize_number

RECORD_FIELDS: tuple[str, ...] = (
    "id", "task", "split", "question", "answer", "rationale", "teacher_answer", "correct",
    "teacher", "prompt_id", "sample_index", "usage",
)

_TYPES: dict[str, tuple[type, ...]] = {
    "id": (str,), "task": (str,), "split": (str,), "question": (str,), "answer": (str,),
    "rationale": (str,), "teacher_answer": (str, type(None)), "correct": (bool,),
    "teacher": (dict,), "prompt_id": (str,), "sample_index": (int,), "usage": (dict,),
}
_TEACHER_FIELDS = ("endpoint", "model", "params")
_NON_EMPTY = ("id", "task", "question", "answer", "rationale")
YES_NO = ("yes", "no")
# The gold answers of the known tasks: (check, what the error says was expected).
_GOLD_ANSWERS = {
    "strategyqa": (lambda answer: answer in YES_NO, '"yes" or "no"'),
    "coinflip": (lambda answer: answer in YES_NO, '"yes" or "no"'),
    "gsm8k": (lambda answer: normalize_number(answer) is not None, "a number such as 18 or -2.5"),
}


def validate_record(record: Any, source: str | os.PathLike = "<record>",
                    line: int | None = None) -> dict:
    """Check one record against the schema; raise `DataError` naming source, line, field."""
    if not isinstance(record, dict):
        raise DataError(source, f"expected a JSON object, got {type(record).__name__}", line=line)
    for name in RECORD_FIELDS:
        if name not in record:
            raise DataError(source, "missing field", line=line, field=name)
        value = record[name]
        expected = _TYPES[name]
        if not isinstance(value, expected) or (name == "sample_index" and isinstance(value, bool)):
            names = " or ".join("null" if t is type(None) else t.__name__ for t in expected)
            raise DataError(source, f"expected {names}, got {type(value).__name__}",
                            line=line, field=name)
        if name in _NON_EMPTY and not value.strip():
            raise DataError(source, "expected a non-empty string", line=line, field=name)
    check, expected = _GOLD_ANSWERS.get(record["task"], (bool, "a non-empty string"))
    if not check(record["answer"]):
        raise DataError(source, f"expected {expected} as a {record['task']} gold answer, got "
                        f"{record['answer']!r}", line=line, field="answer")
    if record["sample_index"] < 0:
        raise DataError(source, "expected an integer >= 0", line=line, field="sample_index")
    for name in _TEACHER_FIELDS:
        if name not in record["teacher"]:
            raise DataError(source, "missing field", line=line, field=f"teacher.{name}")
    return record


def iter_jsonl(path: str | os.PathLike) -> Iterator[tuple[int, Any]]:
    """Yield (1-based line number, parsed object) for every complete line of a JSONL file.

    A last line without a trailing newline is a torn write and is skipped. Blank lines
    are skipped. A complete line that is not JSON raises `DataError`.
    """
    with open(path, "rb") as fh:
        for number, raw in enumerate(fh, start=1):
            if not raw.endswith(b"\n"):
                return
            if not raw.strip():
                continue
            try:
                yield number, json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError) as err:
                raise DataError(path, f"expected one JSON object per line ({err})",
                                line=number) from None


def read_records(path: str | os.PathLike) -> list[dict]:
    """Read and validate a CoT records file."""
    if not os.path.exists(path):
        raise DataError(path, "CoT records file not found")
    return [validate_record(obj, path, number) for number, obj in iter_jsonl(path)]


def dumps_line(obj: Any) -> bytes:
    """One compact JSON line, newline-terminated, UTF-8."""
    return (json.dumps(obj, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")


def open_append(path: str | os.PathLike) -> IO[bytes]:
    """Open a JSONL file for appending after cutting off a torn last line, if any."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fh = open(path, "ab+")
    size = fh.seek(0, os.SEEK_END)
    if size:
        fh.seek(max(0, size - 1))
        if fh.read(1) != b"\n":
            fh.seek(0)
            data = fh.read()
            keep = data.rfind(b"\n") + 1
            fh.truncate(keep)
            fh.flush()
            os.fsync(fh.fileno())
    fh.seek(0, os.SEEK_END)
    return fh


def write_jsonl_atomic(path: str | os.PathLike, objects: Iterable[Any]) -> int:
    """Write a whole JSONL file atomically; return the number of lines written."""
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp.{os.getpid()}"
    count = 0
    with open(tmp, "wb") as fh:
        for obj in objects:
            fh.write(dumps_line(obj))
            count += 1
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return count


def write_records(path: str | os.PathLike, records: Iterable[dict]) -> int:
    """Validate and atomically write CoT records; return how many were written."""
    return write_jsonl_atomic(path, (validate_record(r, path, i)
                                     for i, r in enumerate(records, start=1)))
