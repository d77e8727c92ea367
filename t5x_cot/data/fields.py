"""Reading dataset files with locations, and checked field access that names them in errors."""
from __future__ import annotations

import dataclasses
import json
import pathlib
from collections.abc import Iterator
from typing import Any

from t5x_cot.data.example import DataError


class MissingDataError(DataError):
    """A dataset file does not exist; the message says how to get it."""


@dataclasses.dataclass(frozen=True)
class Location:
    """Where one item came from: a file and its 1-based line, or its 0-based array index."""

    source: str
    line: int | None = None
    index: int | None = None

    def error(self, message: str, field: str | None = None) -> DataError:
        return DataError(self.source, message, line=self.line, index=self.index, field=field)


def _describe(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 60 else text[:57] + "..."


def require(obj: dict, field: str, kind: type, where: Location) -> Any:
    """`obj[field]`, checked to be of JSON type `kind` (str: non-blank; list: non-empty)."""
    if field not in obj:
        raise where.error("missing field", field)
    value = obj[field]
    # bool is a subclass of int; a JSON number must not pass as a boolean or the reverse.
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        names = {str: "a string", bool: "true or false", list: "a list"}
        raise where.error(f"expected {names.get(kind, kind.__name__)}, got {_describe(value)}",
                          field)
    if kind is str and not value.strip():
        raise where.error("expected a non-empty string", field)
    if kind is list and not value:
        raise where.error("expected a non-empty list", field)
    return value


def _check_exists(path: pathlib.Path) -> None:
    if not path.is_file():
        raise MissingDataError(
            path, "file not found; fetch the datasets with `t5x-cot download --data-dir DIR` "
                  "and point T5X_COT_DATA_DIR (or data_dir=) at DIR")


def iter_jsonl(path: pathlib.Path) -> Iterator[tuple[Location, dict]]:
    """(location, object) for each non-blank line of a JSON-lines file."""
    _check_exists(path)
    with open(path, encoding="utf-8") as f:
        for number, text in enumerate(f, start=1):
            if not text.strip():
                continue
            where = Location(str(path), line=number)
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as err:
                raise where.error(f"expected one JSON object per line ({err.msg} at column "
                                  f"{err.colno})") from None
            if not isinstance(obj, dict):
                raise where.error(f"expected a JSON object, got {_describe(obj)}")
            yield where, obj


def iter_json_array(path: pathlib.Path) -> Iterator[tuple[Location, dict]]:
    """(location, object) for each item of a file holding one JSON array of objects."""
    _check_exists(path)
    with open(path, encoding="utf-8") as f:
        try:
            items = json.load(f)
        except json.JSONDecodeError as err:
            raise DataError(path, f"invalid JSON ({err.msg} at column {err.colno})",
                            line=err.lineno) from None
    if not isinstance(items, list):
        raise DataError(path, f"expected a JSON array of objects, got {type(items).__name__}")
    for index, obj in enumerate(items):
        where = Location(str(path), index=index)
        if not isinstance(obj, dict):
            raise where.error(f"expected a JSON object, got {_describe(obj)}")
        yield where, obj
