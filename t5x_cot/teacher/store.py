"""Append-only, resumable store of raw teacher completions.

Every completion is one JSON line, written the moment it arrives:

    {"key": ..., "id": ..., "sample_index": ..., "text": ..., "finish_reason": ...,
     "usage": {...}}

`key` is `completion_key(endpoint, model, params, prompt, sample_index)`: a SHA-256 over
exactly what determines the completion, so a rerun with the same settings finds its
finished work and a changed prompt or temperature does not reuse stale text. Each line
is flushed to the kernel as it is written (a `kill -9` loses nothing that was
written); the file is fsynced every `fsync_every` lines and on close (bounding what a
power cut can take). On open, a torn last line is cut off (see `t5x_cot.data.records`).
If the same key is ever written twice the first line wins, so readers see each key once.
"""
from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from typing import Any

from t5x_cot.data.records import dumps_line, iter_jsonl, open_append


def completion_key(endpoint: str, model: str, params: Mapping[str, Any], prompt: Any,
                   sample_index: int) -> str:
    """Stable hash of what determines one completion."""
    blob = json.dumps([endpoint, model, dict(params), prompt, int(sample_index)],
                      sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def load_entries(path: str | os.PathLike) -> dict[str, dict]:
    """Read-only view of a store file: key -> first entry with that key ({} if absent)."""
    entries: dict[str, dict] = {}
    if os.path.exists(path):
        for _, entry in iter_jsonl(path):
            entries.setdefault(entry["key"], entry)
    return entries


class CompletionStore:
    """Completions keyed by `completion_key`, persisted to an append-only JSONL file."""

    def __init__(self, path: str | os.PathLike, fsync_every: int = 64):
        self.path = os.fspath(path)
        self.entries = load_entries(self.path)
        self._fh = open_append(self.path)
        self._fsync_every = max(1, fsync_every)
        self._unsynced = 0

    def __contains__(self, key: str) -> bool:
        return key in self.entries

    def __len__(self) -> int:
        return len(self.entries)

    def get(self, key: str) -> dict | None:
        """The stored entry for `key`, or None."""
        return self.entries.get(key)

    def add(self, entries: list[dict]) -> None:
        """Persist new entries (each with a "key"); keys already stored are ignored."""
        fresh = [e for e in entries if e["key"] not in self.entries]
        if not fresh:
            return
        self._fh.write(b"".join(dumps_line(e) for e in fresh))
        self._fh.flush()
        for entry in fresh:
            self.entries[entry["key"]] = entry
        self._unsynced += len(fresh)
        if self._unsynced >= self._fsync_every:
            self.sync()

    def sync(self) -> None:
        """Force written lines to disk."""
        os.fsync(self._fh.fileno())
        self._unsynced = 0

    def close(self) -> None:
        """Sync and close the file."""
        if not self._fh.closed:
            self.sync()
            self._fh.close()

    def __enter__(self) -> CompletionStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
