"""The error every interop reader and writer raises on input it cannot convert."""
from __future__ import annotations

import os


class ConversionError(ValueError):
    """A checkpoint that cannot be converted. The message names the file, the tensor or config
    field, and what was expected."""

    def __init__(self, source: str | os.PathLike, message: str, *, tensor: str | None = None,
                 field: str | None = None):
        self.source = str(source)
        self.tensor = tensor
        self.field = field
        where = self.source
        if tensor is not None:
            where += f" tensor {tensor!r}"
        if field is not None:
            where += f" field {field!r}"
        super().__init__(f"{where}: {message}")
