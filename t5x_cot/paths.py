"""One path layer for run folders (MODEL_DIR, CHECKPOINT_PATH, INFER_OUTPUT_DIR).

A path is local (`/tmp/run`, `runs/x`) or a URL (`gs://bucket/run`, `s3://...`,
`memory://...`): URLs go through fsspec when it has a filesystem for the scheme, else
through etils `epath` (which reaches `gs://` through TensorFlow's gfile). orbax and
tensorstore read and write `gs://` themselves; this module covers the small files beside
them and the up-front check that a run folder can be written at all.
"""
from __future__ import annotations

import importlib
import importlib.util
import os
import pathlib
import threading
import uuid
from typing import Any

from t5x_cot.errors import UserError

PathLike = str | os.PathLike
WRITE_CHECK_TIMEOUT_S = 5.0


class PathError(UserError, OSError):
    """A run folder that cannot be used; the message names it and says why."""


def is_url(path: PathLike) -> bool:
    """True for `scheme://...` paths (gs, s3, memory, ...), False for local paths."""
    return "://" in str(path)


def _fsspec_fs(path: str) -> Any | None:
    """The fsspec filesystem of a URL, or None when fsspec has no usable one for its scheme."""
    try:
        import fsspec

        return fsspec.core.url_to_fs(path)[0]
    except (ImportError, ValueError):
        return None


def _epath(path: str) -> Any:
    from etils import epath

    return epath.Path(path)


def join(path: PathLike, *parts: str) -> str:
    """`path/part/...` for local paths and URLs alike."""
    text = str(path)
    if not is_url(text):
        return str(pathlib.Path(text, *parts))
    return "/".join([text.rstrip("/"), *(part.strip("/") for part in parts)])


def absolute(path: PathLike) -> str:
    """An absolute local path, or the URL unchanged."""
    return str(path) if is_url(path) else str(pathlib.Path(path).absolute())


def _on(path: PathLike, local: Any, remote: Any, fallback: Any) -> Any:
    """`local(pathlib.Path)`, `remote(fsspec filesystem, url)` or `fallback(epath.Path)` for `path`."""
    text = str(path)
    if not is_url(text):
        return local(pathlib.Path(text))
    fs = _fsspec_fs(text)
    return remote(fs, text) if fs is not None else fallback(_epath(text))


def makedirs(path: PathLike) -> None:
    """Create the folder and its parents (no error when it exists)."""
    _on(path, lambda p: p.mkdir(parents=True, exist_ok=True), lambda fs, url: fs.makedirs(url, exist_ok=True),
        lambda p: p.mkdir(parents=True, exist_ok=True))


def exists(path: PathLike) -> bool:
    return bool(_on(path, pathlib.Path.exists, lambda fs, url: fs.exists(url), lambda p: p.exists()))


def is_dir(path: PathLike) -> bool:
    return bool(_on(path, pathlib.Path.is_dir, lambda fs, url: fs.isdir(url), lambda p: p.is_dir()))


def _write_local(path: pathlib.Path, text: str) -> None:
    """Write through a temporary file and rename it, so a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{uuid.uuid4().hex}.partial")
    try:
        partial.write_text(text, encoding="utf-8")
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def _write_remote(fs: Any, url: str, text: str) -> None:
    with fs.open(url, "w") as handle:
        handle.write(text)


def _read_remote(fs: Any, url: str) -> str:
    with fs.open(url, "r") as handle:
        return handle.read()


def write_text(path: PathLike, text: str) -> None:
    """Write a small text file (parents created)."""
    _on(path, lambda p: _write_local(p, text), lambda fs, url: _write_remote(fs, url, text),
        lambda p: p.write_text(text))


def _create_local(path: pathlib.Path, text: str) -> bool:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{uuid.uuid4().hex}.partial")
    try:
        partial.write_text(text, encoding="utf-8")
        os.link(partial, path)  # atomic, and fails when `path` exists: the file appears whole or not at all
    except FileExistsError:
        return False
    finally:
        partial.unlink(missing_ok=True)
    return True


def _create_remote(fs: Any, url: str, text: str) -> bool:
    try:
        with fs.open(url, "xb") as handle:
            handle.write(text.encode("utf-8"))
    except FileExistsError:
        return False
    except (ValueError, NotImplementedError):  # a store without exclusive create: check, then write
        if fs.exists(url):
            return False
        _write_remote(fs, url, text)
    return True


def _create_epath(path: Any, text: str) -> bool:
    if path.exists():
        return False
    path.write_text(text)
    return True


def create_exclusive(path: PathLike, text: str) -> bool:
    """Create a small text file only if there is none: True when this call created it.

    Atomic on local disk and on stores with exclusive create (fsspec's `x` mode); elsewhere a
    check followed by a write.
    """
    return bool(_on(path, lambda p: _create_local(p, text), lambda fs, url: _create_remote(fs, url, text),
                    lambda p: _create_epath(p, text)))


def rename(source: PathLike, target: PathLike) -> None:
    """Move a file or folder (on object stores: copy, then delete)."""
    _on(source, lambda p: os.replace(p, target), lambda fs, url: fs.mv(url, str(target), recursive=True),
        lambda p: p.rename(str(target)))


def _append_remote(fs: Any, url: str, text: str) -> None:
    # object stores (gs://) cannot append: rewrite the small file whole
    _write_remote(fs, url, (_read_remote(fs, url) if fs.exists(url) else "") + text)


def _append_epath(path: Any, text: str) -> None:
    path.write_text((path.read_text() if path.exists() else "") + text)


def _append_local(path: pathlib.Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as handle:
        handle.write(text)


def append_text(path: PathLike, text: str) -> None:
    """Append to a small text file (a log); on object stores the file is rewritten whole."""
    _on(path, lambda p: _append_local(p, text), lambda fs, url: _append_remote(fs, url, text),
        lambda p: _append_epath(p, text))


def read_text(path: PathLike) -> str:
    return _on(path, lambda p: p.read_text(encoding="utf-8"), _read_remote, lambda p: p.read_text())


def remove(path: PathLike) -> None:
    _on(path, lambda p: p.unlink(missing_ok=True), lambda fs, url: fs.rm(url), lambda p: p.unlink(missing_ok=True))


def _within(fn: Any, timeout_s: float) -> tuple[bool, Any, BaseException | None]:
    """Run `fn` in a daemon thread for at most `timeout_s`: (finished, result, error)."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["result"] = fn()
        except BaseException as error:  # noqa: BLE001 - handed back to the caller
            outcome["error"] = error

    worker = threading.Thread(target=run, name="path-check", daemon=True)
    worker.start()
    worker.join(timeout_s)
    finished = "result" in outcome or "error" in outcome
    return finished, outcome.get("result"), outcome.get("error")


def _load_backend(path: PathLike) -> None:
    """Import the library that will serve `path` (etils reaches gs:// through TensorFlow's gfile),
    so the time limits below measure the storage, not the import."""
    if is_url(path) and _fsspec_fs(str(path)) is None:
        _epath(str(path))
        if importlib.util.find_spec("tensorflow") is not None:
            os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
            importlib.import_module("tensorflow")


def reachable(path: PathLike, timeout_s: float = 3.0) -> bool:
    """Whether `path` exists and answers within `timeout_s` (False offline or without access)."""
    _load_backend(path)
    finished, result, error = _within(lambda: exists(path), timeout_s)
    return finished and error is None and bool(result)


def check_writable(path: PathLike, what: str = "MODEL_DIR", timeout_s: float = WRITE_CHECK_TIMEOUT_S) -> None:
    """Create `path` and write, read back and delete a probe file in it, within `timeout_s`.

    Raises PathError naming `what` and `path` when that fails or does not finish in time
    (e.g. an unreachable bucket), so a run stops before it compiles anything.
    """

    def probe() -> None:
        makedirs(path)
        target = join(path, f".write_check_{uuid.uuid4().hex}")
        write_text(target, "ok")
        if read_text(target) != "ok":
            raise OSError("a file written there reads back differently")
        remove(target)

    _load_backend(path)
    finished, _, error = _within(probe, timeout_s)
    if not finished:
        raise PathError(f"{what} {path} cannot be written: no answer within {timeout_s:.0f} s "
                        "(unreachable or no credentials?)")
    if error is not None:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise PathError(f"{what} {path} cannot be written: {type(error).__name__}: {first}") from error
