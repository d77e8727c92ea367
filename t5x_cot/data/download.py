"""`t5x-cot download`: fetch the datasets and the T5 vocabulary into a data dir, checksummed.

Every file has a pinned SHA-256 and size (`MANIFEST`). A file already in place with the right
checksum is skipped, so the command is safe to re-run after an interruption. Downloads go to a
temporary file next to the target and are renamed into place only once verified: a data dir
never holds a partial or unverified file under its real name. A download whose checksum does
not match is kept aside as `<name>.bad` for inspection and never used; a file already in place
with a wrong checksum is moved to `<name>.old` and downloaded again.

`--mirror URL` fetches `URL/<path>` instead (the data dir's layout, e.g. a copy on an internal
server or bucket), for machines that cannot reach the public sources; the vocabulary's public
home is Google Cloud Storage, which some networks block.
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import http.client
import os
import pathlib
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from typing import BinaryIO

from t5x_cot.data import default_data_dir
from t5x_cot.errors import UserError

HELP = "fetch GSM8K, StrategyQA and the T5 SentencePiece model into a data dir (checksummed)"

_CHUNK = 1 << 20


@dataclasses.dataclass(frozen=True)
class RemoteFile:
    """One file of the data dir: where it goes, where it comes from, what it must hash to."""

    path: str  # relative to the data dir, '/'-separated
    url: str
    sha256: str
    size: int


_GSM8K = "https://raw.githubusercontent.com/openai/grade-school-math/HEAD/grade_school_math/data"
_STRATEGYQA = "https://raw.githubusercontent.com/eladsegal/strategyqa/HEAD/data/strategyqa"
_T5_VOCAB = "https://storage.googleapis.com/t5-data/vocabs/cc_all.32000/sentencepiece.model"

MANIFEST: tuple[RemoteFile, ...] = (
    RemoteFile("gsm8k/train.jsonl", f"{_GSM8K}/train.jsonl",
               "17f347dc51477c50d4efb83959dbb7c56297aba886e5544ee2aaed3024813465", 4166206),
    RemoteFile("gsm8k/test.jsonl", f"{_GSM8K}/test.jsonl",
               "3730d312f6e3440559ace48831e51066acaca737f6eabec99bccb9e4b3c39d14", 749738),
    RemoteFile("strategyqa/train.json", f"{_STRATEGYQA}/train.json",
               "0f72560b8a6fad3db847d2f1a7524fb087297843bb45a8d3245ffd68cbe0de12", 3857762),
    RemoteFile("strategyqa/dev.json", f"{_STRATEGYQA}/dev.json",
               "0d94842ffb022db8fd5ecd2168b785d5cf67f6faf64f665476bad544a3eb9dde", 424195),
    RemoteFile("vocab/t5_spiece.model", _T5_VOCAB,
               "d60acb128cf7b7f2536e8f38a5b18a05535c9e14c7a355904270e15b0945ea86", 791656),
)


class DownloadError(UserError, RuntimeError):
    """A file could not be fetched or did not match its checksum."""


def sha256_file(path: pathlib.Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def is_present(entry: RemoteFile, data_dir: pathlib.Path) -> bool:
    """Whether the data dir already holds this file with the right size and checksum."""
    path = data_dir / entry.path
    return (path.is_file() and path.stat().st_size == entry.size
            and sha256_file(path) == entry.sha256)


def _fetch_to(url: str, f: BinaryIO, expected_size: int, timeout: float) -> tuple[str, int]:
    """Stream `url` into the open file `f`; (sha256, bytes). Stops past the expected size."""
    digest, size = hashlib.sha256(), 0
    request = urllib.request.Request(url, headers={"User-Agent": "t5x_cot-download"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        while chunk := response.read(_CHUNK):
            digest.update(chunk)
            f.write(chunk)
            size += len(chunk)
            if size > expected_size:
                break
    return digest.hexdigest(), size


def fetch(entry: RemoteFile, data_dir: pathlib.Path, *, mirror: str | None = None,
          timeout: float = 60.0) -> str:
    """Put one verified file into the data dir; returns "present" or "downloaded"."""
    dest = data_dir / entry.path
    if is_present(entry, data_dir):
        return "present"
    if dest.exists():
        os.replace(dest, dest.with_name(dest.name + ".old"))
    dest.parent.mkdir(parents=True, exist_ok=True)
    url = f"{mirror.rstrip('/')}/{entry.path}" if mirror else entry.url
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as tmp:
            digest, size = _fetch_to(url, tmp, entry.size, timeout)
            tmp.flush()
            os.fsync(tmp.fileno())
    except BaseException as err:
        os.unlink(tmp_name)
        if isinstance(err, urllib.error.HTTPError):
            raise DownloadError(f"{entry.path}: cannot fetch {url}: HTTP {err.code} "
                                f"{err.reason}") from err
        if isinstance(err, urllib.error.URLError):
            raise DownloadError(f"{entry.path}: cannot fetch {url}: {err.reason}") from err
        if isinstance(err, (http.client.HTTPException, OSError, ValueError)):
            raise DownloadError(f"{entry.path}: cannot fetch {url}: {err!r}") from err
        raise
    if digest != entry.sha256 or size != entry.size:
        bad = dest.with_name(dest.name + ".bad")
        os.replace(tmp_name, bad)
        got = (f"more than {entry.size} bytes" if size > entry.size
               else f"sha256 {digest} ({size} bytes)")
        raise DownloadError(
            f"{entry.path}: checksum mismatch for {url}: expected sha256 {entry.sha256} "
            f"({entry.size} bytes), got {got}; the download is kept at {bad} and was not used")
    os.replace(tmp_name, dest)
    return "downloaded"


def download(data_dir: pathlib.Path, manifest: Sequence[RemoteFile] = MANIFEST, *,
             mirror: str | None = None, timeout: float = 60.0,
             log: Callable[[str], None] = print) -> dict[str, str]:
    """Fetch every file of `manifest` that is missing; {path: status}.

    Tries every file, then raises DownloadError listing all failures if any.
    """
    statuses, failures = {}, []
    for entry in manifest:
        try:
            statuses[entry.path] = fetch(entry, data_dir, mirror=mirror, timeout=timeout)
        except DownloadError as err:
            failures.append(str(err))
            log(f"  failed      {err}")
            continue
        log(f"  {statuses[entry.path]:<10}  {entry.path} ({entry.size / 1e6:.1f} MB)")
    if failures:
        raise DownloadError(f"{len(failures)} of {len(manifest)} files failed:\n  "
                            + "\n  ".join(failures))
    return statuses


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", type=pathlib.Path, default=None,
                        help="where to put the files (default: $T5X_COT_DATA_DIR, else "
                             "~/.cache/t5x_cot/data)")
    parser.add_argument("--mirror", default=None, metavar="URL",
                        help="fetch URL/<path> (same layout as the data dir) instead of the "
                             "public sources")
    parser.add_argument("--timeout", type=float, default=60.0,
                        help="seconds to wait for a server (default 60)")


def run(args: argparse.Namespace) -> int:
    data_dir = (args.data_dir or default_data_dir()).expanduser()
    print(f"Downloading into {data_dir}")
    try:
        download(data_dir, mirror=args.mirror, timeout=args.timeout)
    except DownloadError as err:
        print(f"error: {str(err).splitlines()[0].rstrip(':')} (see above)")
        print("Re-run to retry (verified files are kept); --mirror URL fetches from a copy.")
        return 1
    print(f"Done. Use it with:\n  export T5X_COT_DATA_DIR={data_dir}\n  t5x-cot data stats")
    return 0
