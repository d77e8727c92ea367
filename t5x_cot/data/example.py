"""The one example type every task shares, and the error bad input raises."""
from __future__ import annotations

import dataclasses
import os

from t5x_cot.errors import UserError


class DataError(UserError, ValueError):
    """Malformed input data. The message names the file, the line or index (or the tensor of a
    checkpoint), and the field.

    `line` is 1-based (a line of a text file, shown as `path:line`); `index` is the 0-based
    position of an item in a JSON array (shown as `path[index]`).
    """

    def __init__(self, source: str | os.PathLike, message: str, *, line: int | None = None,
                 field: str | None = None, index: int | None = None, tensor: str | None = None):
        self.source = str(source)
        self.line = line
        self.index = index
        self.tensor = tensor
        self.field = field
        where = self.source
        if line is not None:
            where += f":{line}"
        if index is not None:
            where += f"[{index}]"
        if tensor is not None:
            where += f" tensor {tensor!r}"
        if field is not None:
            where += f" field {field!r}"
        super().__init__(f"{where}: {message}")


@dataclasses.dataclass(frozen=True)
class Example:
    """One question with its gold answer.

    `answer` is the normalised gold answer as text ("18", "yes"); `rationale` is the
    human or symbolic step-by-step solution when the dataset has one.
    """

    id: str
    task: str
    split: str
    question: str
    answer: str
    rationale: str | None = None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)
