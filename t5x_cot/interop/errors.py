"""The error every interop reader and writer raises on input it cannot convert."""
from __future__ import annotations

from t5x_cot.data.example import DataError


class ConversionError(DataError):
    """A checkpoint that cannot be converted. The message names the file, the tensor or config
    field, and what was expected (`DataError`'s location format: `path tensor 'x' field 'y'`)."""
