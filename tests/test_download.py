"""`t5x-cot download` against a real HTTP server on 127.0.0.1 serving files the test writes."""
from __future__ import annotations

import argparse
import functools
import hashlib
import http.server
import pathlib
import threading

import pytest

from t5x_cot.data import download as dl
from t5x_cot.data import load_examples


class _Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # keep test output quiet
        pass

    def do_GET(self) -> None:
        self.server.requests.append(self.path)
        super().do_GET()


@pytest.fixture()
def server(tmp_path, monkeypatch):
    """(base URL, served folder, list of requested paths) of a server on an ephemeral port."""
    for name in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    served = tmp_path / "served"
    served.mkdir()
    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_Handler, directory=str(served)))
    httpd.requests = []
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", served, httpd.requests
    httpd.shutdown()
    httpd.server_close()


def _publish(served: pathlib.Path, path: str, content: bytes) -> dl.RemoteFile:
    target = served / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(content)
    return dl.RemoteFile(path, f"https://example.invalid/{path}",
                         hashlib.sha256(content).hexdigest(), len(content))


def _leftovers(folder: pathlib.Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*.part"))


def test_downloads_verifies_then_skips(server, tmp_path):
    base, served, requests = server
    manifest = [_publish(served, "gsm8k/train.jsonl", b'{"question": "q"}\n' * 1000),
                _publish(served, "vocab/t5_spiece.model", bytes(range(256)) * 5000)]
    data_dir = tmp_path / "data"
    logged = []
    assert dl.download(data_dir, manifest, mirror=base + "/", log=logged.append) == {
        "gsm8k/train.jsonl": "downloaded", "vocab/t5_spiece.model": "downloaded"}
    for entry in manifest:
        assert (data_dir / entry.path).read_bytes() == (served / entry.path).read_bytes()
    assert sorted(requests) == ["/gsm8k/train.jsonl", "/vocab/t5_spiece.model"]
    assert _leftovers(data_dir) == [] and len(logged) == 2

    # Second run: both files verified in place, nothing fetched.
    assert set(dl.download(data_dir, manifest, mirror=base, log=logged.append).values()) == {
        "present"}
    assert len(requests) == 2


def test_checksum_mismatch_is_kept_aside_and_not_used(server, tmp_path):
    base, served, _ = server
    entry = _publish(served, "strategyqa/dev.json", b"[]")
    wrong = dl.RemoteFile(entry.path, entry.url, "0" * 64, entry.size)
    data_dir = tmp_path / "data"
    with pytest.raises(dl.DownloadError, match="checksum mismatch") as info:
        dl.download(data_dir, [wrong], mirror=base, log=lambda _: None)
    message = str(info.value)
    assert "0" * 64 in message and entry.sha256 in message and "dev.json.bad" in message
    assert not (data_dir / entry.path).exists()
    assert (data_dir / "strategyqa" / "dev.json.bad").read_bytes() == b"[]"
    assert _leftovers(data_dir) == []


def test_oversized_download_stops_early(server, tmp_path):
    base, served, _ = server
    entry = _publish(served, "big.bin", b"x" * (3 << 20))
    small = dl.RemoteFile(entry.path, entry.url, entry.sha256, 10)
    with pytest.raises(dl.DownloadError, match="got more than 10 bytes"):
        dl.fetch(small, tmp_path / "data", mirror=base)
    assert (tmp_path / "data" / "big.bin.bad").stat().st_size < entry.size


def test_http_404_reports_url_and_tries_the_rest(server, tmp_path):
    base, served, _ = server
    good = _publish(served, "gsm8k/test.jsonl", b"{}\n")
    missing = dl.RemoteFile("gsm8k/train.jsonl", "unused", "0" * 64, 3)
    data_dir = tmp_path / "data"
    with pytest.raises(dl.DownloadError) as info:
        dl.download(data_dir, [missing, good], mirror=base, log=lambda _: None)
    assert "1 of 2 files failed" in str(info.value)
    assert f"{base}/gsm8k/train.jsonl: HTTP 404" in str(info.value)
    assert not (data_dir / "gsm8k" / "train.jsonl").exists()
    assert (data_dir / "gsm8k" / "test.jsonl").read_bytes() == b"{}\n"
    assert _leftovers(data_dir) == []


def test_unreachable_server(tmp_path):
    entry = dl.RemoteFile("a.txt", "http://127.0.0.1:9/a.txt", "0" * 64, 1)
    with pytest.raises(dl.DownloadError, match="cannot fetch http://127.0.0.1:9/a.txt"):
        dl.fetch(entry, tmp_path, timeout=5)
    assert list(tmp_path.iterdir()) == []


def test_wrong_file_in_place_is_moved_aside_and_replaced(server, tmp_path):
    base, served, _ = server
    entry = _publish(served, "vocab/t5_spiece.model", b"real model")
    data_dir = tmp_path / "data"
    (data_dir / "vocab").mkdir(parents=True)
    (data_dir / "vocab" / "t5_spiece.model").write_bytes(b"stale")
    assert dl.fetch(entry, data_dir, mirror=base) == "downloaded"
    assert (data_dir / entry.path).read_bytes() == b"real model"
    assert (data_dir / "vocab" / "t5_spiece.model.old").read_bytes() == b"stale"


def test_cli_fetches_the_real_manifest_from_a_mirror(server, tmp_path, data_dir, capsys):
    """The pinned checksums and sizes are those of the real files, laid out as readers expect."""
    base, served, requests = server
    for entry in dl.MANIFEST:
        target = served / entry.path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes((data_dir / entry.path).read_bytes())
    out_dir = tmp_path / "data"
    parser = argparse.ArgumentParser()
    dl.add_arguments(parser)
    args = parser.parse_args(["--data-dir", str(out_dir), "--mirror", base])
    assert dl.run(args) == 0
    printed = capsys.readouterr().out
    assert f"export T5X_COT_DATA_DIR={out_dir}" in printed
    assert len(requests) == len(dl.MANIFEST)
    assert all(dl.is_present(entry, out_dir) for entry in dl.MANIFEST)
    assert len(load_examples("gsm8k", "test", out_dir)) == 1319
    assert len(load_examples("strategyqa", "dev", out_dir)) == 229
    assert dl.run(args) == 0 and len(requests) == len(dl.MANIFEST)  # all present: no fetch


def test_manifest_points_at_the_public_sources():
    urls = {entry.path: entry.url for entry in dl.MANIFEST}
    assert urls["gsm8k/train.jsonl"].startswith(
        "https://raw.githubusercontent.com/openai/grade-school-math/")
    assert urls["strategyqa/dev.json"].startswith(
        "https://raw.githubusercontent.com/eladsegal/strategyqa/")
    assert urls["vocab/t5_spiece.model"] == (
        "https://storage.googleapis.com/t5-data/vocabs/cc_all.32000/sentencepiece.model")
