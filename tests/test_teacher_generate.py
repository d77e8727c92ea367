"""End-to-end generation runs against the real local server: failure mix, resume, kill -9,
API key hygiene, diverse samples, Batch API files, dry run."""
from __future__ import annotations

import collections
import json
import logging
import os
import random
import signal
import subprocess
import sys
import time

from openai_server import OpenAIServer

from t5x_cot.data.records import iter_jsonl, read_records
from t5x_cot.teacher.__main__ import main as generate_main

KEY_ENV = "T5X_COT_TEST_TEACHER_KEY"
KEY = "sk-live-do-not-leak-7f3a9c"
FAILURE_MIX = {"429": 0.04, "500": 0.04, "stall": 0.02, "truncate": 0.03, "reset": 0.03}
CONTENT_MIX = {"wrong": 0.02, "none": 0.01, "length": 0.01}  # 20% of first attempts in all


def argv(server, out, *extra):
    return ["--task", "coinflip", "--split", "train", "--teacher", "openai", "--model", "m",
            "--base-url", server.base_url, "--api-key-env", KEY_ENV, "--out", str(out),
            "--backoff-base", "0.001", "--timeout", "0.3", "--no-progress", *extra]


def lines(path):
    return [obj for _, obj in iter_jsonl(path)]


def test_failure_mix_every_question_answered_exactly_once(tmp_path, monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)
    out = tmp_path / "cot.jsonl"
    with OpenAIServer(transient=FAILURE_MIX, content=CONTENT_MIX, stall_s=1.0, seed=1) as srv:
        run = argv(srv, out, "--num-examples", "1000", "--concurrency", "32")
        assert generate_main(run) == 0
        stats = dict(srv.stats)
        records = read_records(out)
        # A rerun resumes: nothing left to request, the same records.
        seen = srv.bodies_seen
        assert generate_main(run) == 0
        assert srv.bodies_seen == seen
        assert read_records(out) == records
    for fault in ("429", "500", "stall", "truncate", "reset", "wrong", "none", "length"):
        assert stats.get(fault, 0) > 0, (fault, stats)
    stored = lines(f"{out}.completions.jsonl")
    ids = collections.Counter(entry["id"] for entry in stored)
    assert len(stored) == 1000 and len(ids) == 1000 and set(ids.values()) == {1}
    assert len({r["id"] for r in records}) == len(records)
    assert all(r["correct"] and r["teacher_answer"] == r["answer"] for r in records)
    summary = json.loads((tmp_path / "cot.jsonl.summary.json").read_text())
    dropped = summary["dropped"]
    assert summary["requested"] == summary["answered"] == 1000
    assert dropped["endpoint_error"] == 0
    assert summary["kept"] == len(records) == 1000 - dropped["wrong_answer"] - \
        dropped["no_answer"] - dropped["truncated"]
    assert dropped["wrong_answer"] > 0 and dropped["no_answer"] > 0 and dropped["truncated"] > 0


def test_samples_keep_distinct_correct_rationales(tmp_path):
    with OpenAIServer(distinct=2) as srv:
        out = tmp_path / "a.jsonl"
        assert generate_main(argv(srv, out, "--num-examples", "20", "--samples", "4",
                                  "--temperature", "0.7")) == 0
        assert srv.bodies_seen == 20
    records = read_records(out)
    assert len(records) == 40
    assert collections.Counter(r["id"] for r in records) == {r["id"]: 2 for r in records}
    assert json.loads((tmp_path / "a.jsonl.summary.json").read_text())["dropped"]["duplicate"] == 40
    with OpenAIServer(distinct=3, supports_n=False) as srv:
        out = tmp_path / "b.jsonl"
        assert generate_main(argv(srv, out, "--num-examples", "5", "--samples", "3",
                                  "--temperature", "0.7", "--no-n", "--sampling-seed", "100")) == 0
        assert srv.bodies_seen == 15
    assert len(read_records(out)) == 15
    assert {r["sample_index"] for r in read_records(out)} == {0, 1, 2}


def test_api_key_appears_nowhere(tmp_path, monkeypatch, capsys, caplog):
    monkeypatch.setenv(KEY_ENV, KEY)
    caplog.set_level(logging.DEBUG)
    texts = []
    with OpenAIServer(transient=FAILURE_MIX, content=CONTENT_MIX, echo_auth=True) as srv:
        assert generate_main(argv(srv, tmp_path / "ok.jsonl", "--num-examples", "200")) == 0
        assert f"Bearer {KEY}" in srv.authorization
    with OpenAIServer(transient={"500": 1.0}, echo_auth=True) as dead:
        status = generate_main(argv(dead, tmp_path / "dead.jsonl", "--num-examples", "50",
                                    "--max-consecutive-failures", "5"))
        assert status == 3
    captured = capsys.readouterr()
    assert "failed 5 consecutive attempts" in captured.err
    assert "Authorization: Bearer ***" in captured.err  # the echoed header, redacted
    with OpenAIServer(transient=FAILURE_MIX, content=CONTENT_MIX, echo_auth=True) as srv:
        proc = subprocess.run(  # with the live progress bar on stderr
            [sys.executable, "-m", "t5x_cot.teacher",
             *[a for a in argv(srv, tmp_path / "sub.jsonl", "--num-examples", "100")
               if a != "--no-progress"]],
            env={**os.environ, KEY_ENV: KEY}, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "req/s" in proc.stderr and "kept" in proc.stderr
    texts += [captured.out, captured.err, caplog.text, proc.stdout, proc.stderr]
    texts += [p.read_text() for p in tmp_path.iterdir() if p.is_file()]
    assert len(texts) > 8
    for text in texts:
        assert KEY not in text


def test_kill_9_then_rerun_gives_the_same_records(tmp_path):
    rng = random.Random()
    with OpenAIServer(latency=0.01, content={"wrong": 0.1}, distinct=2) as srv:
        def run_args(out):
            return argv(srv, out, "--num-examples", "300", "--concurrency", "4", "--samples",
                        "2", "--temperature", "0.5")
        reference = tmp_path / "ref.jsonl"
        killed = tmp_path / "killed.jsonl"
        assert generate_main(run_args(reference)) == 0
        cmd = [sys.executable, "-m", "t5x_cot.teacher", *run_args(killed)]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        store = f"{killed}.completions.jsonl"
        target = rng.randint(20, 500)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            if os.path.exists(store) and os.path.getsize(store) // 150 >= target:
                break
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        partial = len(lines(store)) if os.path.exists(store) else 0
        assert partial < 600, "the run finished before it could be killed"
        print(f"killed with {partial} of 600 completions stored")
        assert not killed.exists()
        assert generate_main(run_args(killed)) == 0
    stored = lines(store)
    assert len(stored) == 600 == len({e["key"] for e in stored})
    key = lambda r: (r["id"], r["sample_index"])  # noqa: E731
    assert sorted(read_records(killed), key=key) == sorted(read_records(reference), key=key)


def test_batch_write_and_ingest(tmp_path):
    out = tmp_path / "b.jsonl"
    requests = tmp_path / "requests.jsonl"
    results = tmp_path / "results.jsonl"
    with OpenAIServer() as srv:
        common = argv(srv, out, "--num-examples", "30", "--samples", "2")
        assert generate_main(common + ["--batch-write", str(requests)]) == 0
        lines_out = []
        import httpx
        for req in lines(requests):
            assert req["method"] == "POST" and req["url"] == "/v1/chat/completions"
            assert req["body"]["n"] == 2 and req["body"]["model"] == "m"
            resp = httpx.post(srv.base_url + "/chat/completions", json=req["body"])
            lines_out.append({"id": "r", "custom_id": req["custom_id"], "error": None,
                              "response": {"status_code": 200, "body": resp.json()}})
        results.write_text("".join(json.dumps(x) + "\n" for x in lines_out[:-1]))
        assert generate_main(common + ["--batch-ingest", str(results)]) == 0
        assert srv.bodies_seen == 30
    assert len(read_records(out)) == 29
    summary = json.loads((tmp_path / "b.jsonl.summary.json").read_text())
    assert summary["dropped"]["endpoint_error"] == 2 and summary["answered"] == 58


def test_dry_run_prints_prompt_requests_and_tokens(tmp_path, capsys):
    with OpenAIServer() as srv:
        assert generate_main(argv(srv, tmp_path / "d.jsonl", "--num-examples", "7",
                                  "--dry-run")) == 0
        assert srv.bodies_seen == 0
    out = capsys.readouterr().out
    assert out.startswith("Q: A coin is heads up.")
    assert "Hint: the correct answer is" in out and "\nA:\n" in out
    assert "7 questions, 7 requests to send" in out and "tokens" in out
    assert list(tmp_path.iterdir()) == []  # a dry run writes nothing


def test_exemplars_from_train_and_from_file(tmp_path, capsys):
    exemplar_file = tmp_path / "ex.json"
    exemplar_file.write_text(json.dumps({"coin_flip": {"comment": "", "prompt": (
        "Q: A coin is heads up. Ann flips the coin. Is the coin still heads up?\n"
        "A: The coin was flipped by Ann. So the coin was flipped 1 time. The answer is no.")}}))
    with OpenAIServer() as srv:
        assert generate_main(argv(srv, tmp_path / "f.jsonl", "--num-examples", "3", "--mode",
                                  "plain", "--exemplars", str(exemplar_file))) == 0
        capsys.readouterr()
        assert generate_main(argv(srv, tmp_path / "t.jsonl", "--num-examples", "3",
                                  "--exemplars-from-train", "3", "--dry-run")) == 0
    assert len(read_records(tmp_path / "f.jsonl")) == 3
    assert read_records(tmp_path / "f.jsonl")[0]["prompt_id"].startswith("coinflip-plain-")
    prompt = capsys.readouterr().out.split("\n---")[0]
    blocks = prompt.split("\n\n")
    assert len(blocks) == 4 and all(b.startswith("Q: A coin is heads up.") for b in blocks)
    assert len({b.split("\n")[0] for b in blocks}) == 4  # the item is not among its exemplars
