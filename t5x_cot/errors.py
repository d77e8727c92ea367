"""The error contract: what a user can act on, as opposed to a bug.

Every error whose message tells the user what to change (a config value, a data file, a
path, a checkpoint, a T5X feature with no counterpart) derives from `UserError`. Entry
points print a `UserError` as one line and exit 2; any other exception is a bug and keeps
its traceback (exit 1).
"""
from __future__ import annotations


class UserError(Exception):
    """An error the user can act on; its message is one line naming the cause."""


def one_line(error: BaseException) -> str:
    """The first non-empty line of `error`'s message (gin appends its call trail below it)."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
