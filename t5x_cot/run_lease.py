"""One trainer per MODEL_DIR: an exclusive lease file, taken atomically, refreshed while training.

`MODEL_DIR/.trainer_lease.json` records who trains there (host, pid, start time) and when it
last said so (heartbeat). A second trainer is refused with a line naming the holder. A lease
whose holder is gone does not block: on the same host, a pid that no longer runs; from another
host, a heartbeat older than `stale_after_s`. So `kill -9` and rerun still resumes. Files go
through `t5x_cot.paths` (local disk, or a URL such as gs:// or memory://).
"""
from __future__ import annotations

import contextlib
import datetime
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any, Self

from t5x_cot import paths
from t5x_cot.errors import UserError

LEASE_FILE = ".trainer_lease.json"
HEARTBEAT_S = 30.0
STALE_AFTER_S = 300.0


class LeaseError(UserError):
    """MODEL_DIR is held by another live trainer."""


def _pid_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def _utc(seconds: float) -> str:
    return datetime.datetime.fromtimestamp(seconds, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Lease:
    """The lease of `model_dir`; `acquire()` takes it or raises LeaseError, `release()` gives it up.

    Args:
      model_dir: the run folder (local or URL).
      heartbeat_s: how often the holder rewrites its heartbeat (a daemon thread).
      stale_after_s: a lease from another host whose heartbeat is older than this is free.
    """

    def __init__(self, model_dir: str, *, heartbeat_s: float = HEARTBEAT_S,
                 stale_after_s: float = STALE_AFTER_S) -> None:
        self.model_dir = str(model_dir)
        self.path = paths.join(model_dir, LEASE_FILE)
        self.heartbeat_s = heartbeat_s
        self.stale_after_s = stale_after_s
        now = time.time()
        self.record = {"host": socket.gethostname(), "pid": os.getpid(), "started": _utc(now),
                       "heartbeat": now, "token": uuid.uuid4().hex}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def acquire(self) -> None:
        """Take the lease (replacing one whose holder is gone) and start the heartbeat."""
        for _ in range(3):  # a stale lease removed by a rival between our read and our create
            if paths.create_exclusive(self.path, self._text()):
                break
            holder = self._read()
            if holder is not None and self._alive(holder):
                raise LeaseError(
                    f"MODEL_DIR {self.model_dir} is in use by another trainer (host "
                    f"{holder.get('host')}, pid {holder.get('pid')}, started {holder.get('started')}; "
                    f"lease {self.path}): stop it or use another MODEL_DIR")
            if holder is None or self._read() == holder:
                paths.remove(self.path)
        else:
            raise LeaseError(f"could not take the lease {self.path}: other trainers keep taking it")
        self._thread = threading.Thread(target=self._beat, name="model-dir-lease", daemon=True)
        self._thread.start()

    def release(self) -> None:
        """Stop the heartbeat and remove the lease file if it is still ours."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
            holder = self._read()
            if holder is not None and holder.get("token") == self.record["token"]:
                paths.remove(self.path)

    def __enter__(self) -> Self:
        self.acquire()
        return self

    def __exit__(self, *_: object) -> None:
        self.release()

    def _text(self) -> str:
        return json.dumps(self.record, sort_keys=True) + "\n"

    def _read(self) -> dict[str, Any] | None:
        """The lease on disk, or None when there is none or it cannot be parsed (a torn write)."""
        try:
            record = json.loads(paths.read_text(self.path))
        except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
            return None
        return record if isinstance(record, dict) else None

    def _alive(self, holder: dict[str, Any]) -> bool:
        """Whether the holder still trains: a fresh heartbeat and, on this host, a running pid."""
        heartbeat = holder.get("heartbeat")
        fresh = isinstance(heartbeat, (int, float)) and time.time() - heartbeat < self.stale_after_s
        pid = holder.get("pid")
        if holder.get("host") == self.record["host"] and isinstance(pid, int):
            return fresh and pid != os.getpid() and _pid_running(pid)
        return fresh

    def _beat(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            self.record["heartbeat"] = time.time()
            try:
                paths.write_text(self.path, self._text())
            except OSError:  # a missed beat only makes the lease look older to other hosts
                continue


@contextlib.contextmanager
def held(model_dir: str, **lease_args: Any) -> Iterator[None]:
    """Hold MODEL_DIR's lease for the block: process 0 takes it, and every process learns whether it did."""
    import jax

    lease = Lease(model_dir, **lease_args) if jax.process_index() == 0 else None
    refused: LeaseError | None = None
    if lease is not None:
        try:
            lease.acquire()
        except LeaseError as error:
            refused = error
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        if not int(multihost_utils.broadcast_one_to_all(int(refused is None))) and refused is None:
            refused = LeaseError(f"MODEL_DIR {model_dir} is in use by another trainer (process 0 was refused "
                                 "its lease)")
    if refused is not None:
        raise refused
    try:
        yield
    finally:
        if lease is not None:
            lease.release()
