"""`t5x-cot serve` as a real process on 127.0.0.1: OpenAI routes, batching, streaming, limits,
malformed payloads, the official `openai` client and `t5x-cot generate` against it."""
from __future__ import annotations

import asyncio
import collections
import contextlib
import importlib.util
import json
import pathlib
import socket
import subprocess
import sys
import time

import httpx
import pytest
from decoding_helpers import save_tiny_checkpoint

from t5x_cot.data.records import iter_jsonl, read_records
from t5x_cot.teacher.__main__ import main as generate_main

pytestmark = pytest.mark.needs_data

MODEL = "student"
MAX_BATCH, MAX_TOKENS_LIMIT, MAX_INPUT_TOKENS, MAX_BODY = 8, 16, 128, 8192
BENCH = pathlib.Path(__file__).resolve().parents[1] / "bench" / "serve_load.py"


def _load_bench():
    spec = importlib.util.spec_from_file_location("serve_load", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@contextlib.contextmanager
def _serving(checkpoint: pathlib.Path, vocab_path: pathlib.Path, *flags: str):
    """`t5x-cot serve` on a free port of 127.0.0.1; yields its base URL (…/v1) and process."""
    process = subprocess.Popen(
        [sys.executable, "-m", "t5x_cot.cli", "serve", "--checkpoint", str(checkpoint), "--port", "0",
         "--model-name", MODEL, "--vocab", str(vocab_path), *flags],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline()
        assert line.startswith(f"serving {MODEL} at http://127.0.0.1:"), process.stderr.read()
        yield line.split(" at ")[1].strip(), process
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> pathlib.Path:
    """A tiny random-weight checkpoint (config.json + params)."""
    path = tmp_path_factory.mktemp("serve") / "ckpt"
    save_tiny_checkpoint(path)
    return path


@pytest.fixture(scope="module")
def server(checkpoint, vocab_path):
    with _serving(checkpoint, vocab_path, "--max-batch", str(MAX_BATCH), "--max-wait-ms", "50",
                  "--max-tokens-limit", str(MAX_TOKENS_LIMIT), "--max-input-tokens",
                  str(MAX_INPUT_TOKENS), "--max-body-bytes", str(MAX_BODY),
                  "--prompt-format", "question") as (url, _):
        yield url


def _chat(content: str, **extra) -> dict:
    return {"model": MODEL, "messages": [{"role": "user", "content": content}], **extra}


def _post(url: str, route: str, body) -> httpx.Response:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.post(f"{url}/{route}", content=data, timeout=120,
                      headers={"Content-Type": "application/json"})


def _stats(url: str) -> dict:
    return httpx.get(url.removesuffix("/v1") + "/stats", timeout=10).json()


def _is_openai_error(response: httpx.Response) -> bool:
    error = response.json().get("error", {})
    return isinstance(error.get("message"), str) and error["message"] and "type" in error \
        and "param" in error and "code" in error


def test_models_chat_and_completions_follow_the_openai_shapes(server):
    models = httpx.get(f"{server}/models", timeout=10).json()
    assert [m["id"] for m in models["data"]] == [MODEL] and models["object"] == "list"
    chat = _post(server, "chat/completions", _chat("Is the coin heads up?", max_tokens=5, n=3,
                                                   temperature=0.0))
    assert chat.status_code == 200, chat.text
    body = chat.json()
    assert body["object"] == "chat.completion" and body["model"] == MODEL
    assert [c["index"] for c in body["choices"]] == [0, 1, 2]
    texts = {c["message"]["content"] for c in body["choices"]}
    assert len(texts) == 1  # greedy: n copies of the same text
    assert all(c["message"]["role"] == "assistant" and c["finish_reason"] in ("stop", "length")
               for c in body["choices"])
    usage = body["usage"]
    assert usage["completion_tokens"] <= 3 * 5 and usage["total_tokens"] == \
        usage["prompt_tokens"] + usage["completion_tokens"] and usage["prompt_tokens"] > 3
    completion = _post(server, "completions", {"model": MODEL, "prompt": ["Is the coin heads up?", "b"],
                                               "max_tokens": 5, "temperature": 0})
    choices = completion.json()["choices"]
    assert len(choices) == 2 and choices[0]["text"] == texts.pop()  # chat of one message == prompt


def test_max_tokens_and_stop_cut_the_text(server):
    long = _post(server, "completions", {"model": MODEL, "prompt": "x y z", "max_tokens": 16,
                                         "temperature": 0}).json()["choices"][0]
    short = _post(server, "completions", {"model": MODEL, "prompt": "x y z", "max_tokens": 3,
                                          "temperature": 0}).json()
    assert short["usage"]["completion_tokens"] == 3 and short["choices"][0]["finish_reason"] == "length"
    assert long["text"].startswith(short["choices"][0]["text"])
    stop = long["text"][len(long["text"]) // 2:][:3]
    cut = _post(server, "completions", {"model": MODEL, "prompt": "x y z", "max_tokens": 16,
                                        "temperature": 0, "stop": [stop]}).json()["choices"][0]
    assert cut["finish_reason"] == "stop" and cut["text"] == long["text"][:long["text"].index(stop)]


def test_seed_makes_sampling_reproducible_and_temperature_varies_it(server):
    def sample(seed):
        body = _chat("Flip a coin.", max_tokens=12, n=4, temperature=1.0, top_p=0.95, seed=seed)
        return [c["message"]["content"] for c in _post(server, "chat/completions", body).json()["choices"]]
    first = sample(7)
    assert first == sample(7)
    assert len(set(first)) > 1 and first != sample(8)


def test_concurrent_requests_share_decodes_without_changing_greedy_outputs(server):
    prompts = [f"Question number {i} about coins?" for i in range(MAX_BATCH * 2)]
    alone = [_post(server, "completions", {"model": MODEL, "prompt": p, "max_tokens": 8,
                                           "temperature": 0}).json()["choices"][0]["text"]
             for p in prompts[:3]]
    before = _stats(server)

    async def burst():
        async with httpx.AsyncClient(timeout=120) as client:
            return await asyncio.gather(*(client.post(f"{server}/completions", json={
                "model": MODEL, "prompt": p, "max_tokens": 8, "temperature": 0}) for p in prompts))
    responses = asyncio.run(burst())
    after = _stats(server)
    assert all(r.status_code == 200 for r in responses)
    assert [r.json()["choices"][0]["text"] for r in responses[:3]] == alone
    new_batches = after["batches"] - before["batches"]
    assert after["requests"] - before["requests"] == len(prompts)
    assert new_batches < len(prompts)  # requests were batched together
    assert max(int(k) for k in after["batch_rows"]) <= MAX_BATCH


def test_chat_streaming_sends_the_same_text_as_chunks(server):
    body = _chat("Is the coin still heads up?", max_tokens=10, temperature=0)
    whole = _post(server, "chat/completions", body).json()["choices"][0]
    with httpx.stream("POST", f"{server}/chat/completions", timeout=120,
                      json={**body, "stream": True, "stream_options": {"include_usage": True}}) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        events = [line[len("data: "):] for line in r.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    content = [c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"]]
    assert "".join(content) == whole["message"]["content"] and len([p for p in content if p]) > 1
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] == whole["finish_reason"]
    assert chunks[-1]["usage"]["completion_tokens"] > 0 and all(c["object"] == "chat.completion.chunk"
                                                                 for c in chunks)


def test_calculator_option_decodes(server):
    response = _post(server, "completions", {"model": MODEL, "prompt": "What is 48/2?", "max_tokens": 8,
                                             "temperature": 0, "use_calculator": True})
    assert response.status_code == 200 and response.json()["choices"][0]["finish_reason"] in ("stop", "length")


@pytest.mark.parametrize("route,body,status,param", [
    ("chat/completions", b"{not json", 400, None),
    ("chat/completions", b"\xff\xfe", 400, None),
    ("chat/completions", b"[1, 2]", 400, None),
    ("chat/completions", b'{"model": "student", "messages": [], "n": 1}', 400, "messages"),
    ("chat/completions", {"model": MODEL, "messages": [{"role": "robot", "content": "x"}]}, 400,
     "messages[0].role"),
    ("chat/completions", {"model": MODEL, "messages": [{"role": "user", "content": "x"}],
                          "temperature": "hot"}, 400, "temperature"),
    ("chat/completions", b'{"model": "student", "messages": [{"role": "user", "content": "x"}], '
                         b'"top_p": NaN}', 400, None),
    ("chat/completions", {"model": MODEL, "messages": [{"role": "user", "content": "x"}],
                          "n": MAX_BATCH + 1}, 400, "n"),
    ("chat/completions", {"model": MODEL, "messages": [{"role": "user", "content": "x"}],
                          "max_tokens": MAX_TOKENS_LIMIT + 1}, 400, "max_tokens"),
    ("chat/completions", {"model": MODEL, "messages": [{"role": "user", "content": "x"}],
                          "stop": ["a", "b", "c", "d", "e"]}, 400, "stop"),
    ("chat/completions", {"model": MODEL, "messages": [{"role": "user", "content": "x"}],
                          "logprobs": True}, 400, "logprobs"),
    ("chat/completions", {"model": MODEL, "messages": [{"role": "user", "content": "x"}],
                          "temperature": 1.0, "seed": 2**70}, 400, "seed"),
    ("chat/completions", {"model": "gpt-9", "messages": [{"role": "user", "content": "x"}]}, 404, "model"),
    ("completions", {"model": MODEL, "prompt": [1, 2, 3]}, 400, "prompt"),
    ("completions", {"model": MODEL, "prompt": "word " * 400}, 400, "prompt"),
    ("completions", {"model": MODEL, "prompt": "x" * (MAX_BODY + 1)}, 413, None),
    ("nowhere", {"model": MODEL}, 404, None),
    ("completions", b'{"model": "student", "prompt": "x\\ud800y"}', 400, "prompt"),
    ("completions", b'{"model": "student\\udfff", "prompt": "x"}', 400, "model"),
    ("chat/completions", b'{"model": "student", "messages": [{"role": "user", "content": "\\ud83d"}]}',
     400, "messages[0].content"),
    ("completions", b'{"model": "student", "prompt": "x", "user": {"\\ud800": 1}}', 400, "user.\\ud800"),
])
def test_bad_requests_get_openai_errors(server, route, body, status, param):
    response = _post(server, route, body)
    assert response.status_code == status, response.text
    assert _is_openai_error(response) and response.json()["error"]["param"] == param


def test_malformed_payload_fuzz_always_4xx_and_server_keeps_serving(server):
    payloads = _load_bench().malformed_payloads(150, seed=0, model=MODEL, max_body_bytes=MAX_BODY)
    statuses = {}
    with httpx.Client(timeout=60) as client:
        for label, route, data in payloads:
            response = client.post(f"{server}/{route}", content=data,
                                   headers={"Content-Type": "application/json"})
            assert 400 <= response.status_code < 500 and _is_openai_error(response), (label, response.text)
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
    assert set(statuses) >= {400, 413}
    assert _post(server, "chat/completions", _chat("still there?", max_tokens=2)).status_code == 200


def test_official_openai_client(server):
    openai = pytest.importorskip("openai")
    client = openai.OpenAI(base_url=server, api_key="unused", max_retries=0, timeout=120)
    assert [m.id for m in client.models.list()] == [MODEL]
    chat = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Hi?"}],
                                          max_tokens=6, temperature=0, n=2)
    assert len(chat.choices) == 2 and chat.choices[0].message.content == chat.choices[1].message.content
    text = client.completions.create(model=MODEL, prompt="Hi?", max_tokens=6, temperature=0)
    assert text.choices[0].text == chat.choices[0].message.content
    stream = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Hi?"}],
                                            max_tokens=6, temperature=0, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == \
        chat.choices[0].message.content
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="other", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.BadRequestError, match="max_tokens"):
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}],
                                       max_tokens=10_000)


def test_generate_uses_the_served_student_as_teacher(server, tmp_path, vocab_path):
    out = tmp_path / "student_cot.jsonl"
    argv = ["--task", "coinflip", "--split", "train", "--teacher", "openai", "--model", MODEL,
            "--base-url", server, "--out", str(out), "--num-examples", "12", "--samples", "2",
            "--temperature", "0.8", "--max-tokens", str(MAX_TOKENS_LIMIT), "--no-progress"]
    started = time.monotonic()
    assert generate_main(argv) == 0
    assert time.monotonic() - started < 120
    stored = [obj for _, obj in iter_jsonl(f"{out}.completions.jsonl")]
    assert len(stored) == 24 and all(isinstance(e["text"], str) for e in stored)
    summary = json.loads(pathlib.Path(f"{out}.summary.json").read_text())
    assert summary["requested"] == summary["answered"] == 24
    assert summary["kept"] + sum(summary["dropped"].values()) == 24
    assert summary["teacher"]["model"] == MODEL and summary["teacher"]["endpoint"] == server
    records = read_records(out)
    assert len(records) == summary["kept"] and all(r["correct"] for r in records)
    # the server's `question` prompt format fed the student the bare question, not the few-shot prompt
    import sentencepiece  # pylint: disable=import-outside-toplevel
    processor = sentencepiece.SentencePieceProcessor(model_file=str(vocab_path))
    from t5x_cot.data import load_examples  # pylint: disable=import-outside-toplevel
    questions = {e.id: e.question for e in load_examples("coinflip", "train", None, num_people=2,
                                                         num_examples=12, seed=0)}
    usages = [(e["id"], e["usage"]) for e in stored if e["usage"]]  # one per request
    assert len(usages) == 12
    for question_id, usage in usages:
        assert usage["prompt_tokens"] == len(processor.encode(questions[question_id])) + 1


def test_full_queue_gets_429_and_the_queued_request_still_completes(checkpoint, vocab_path):
    # one request may wait (up to 3 s, for company); the next finds the queue full.
    # The server also puts the DSbS label prefix before every input.
    with _serving(checkpoint, vocab_path, "--max-queue", "1", "--max-wait-ms", "3000",
                  "--max-tokens-limit", "4", "--input-prefix", "[label] ") as (url, _):
        async def two():
            async with httpx.AsyncClient(timeout=120) as client:
                body = {"model": MODEL, "prompt": "x", "max_tokens": 2}
                first = asyncio.create_task(client.post(f"{url}/completions", json=body))
                await asyncio.sleep(1.0)
                second = await client.post(f"{url}/completions", json=body)
                return await first, second
        first, second = asyncio.run(two())
    assert first.status_code == 200
    assert first.json()["usage"]["prompt_tokens"] == 7  # "▁[ l abel ] ▁ x" and EOS
    assert second.status_code == 429 and second.headers["retry-after"] == "1"
    assert _is_openai_error(second) and second.json()["error"]["code"] == "queue_full"


def test_bad_checkpoint_is_a_clear_startup_error(tmp_path, vocab_path):
    result = subprocess.run([sys.executable, "-m", "t5x_cot.cli", "serve", "--checkpoint", str(tmp_path),
                             "--vocab", str(vocab_path), "--port", "0"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and str(tmp_path) in result.stderr and "no checkpoint" in result.stderr


def _open_fds(process: subprocess.Popen) -> int:
    return len(list(pathlib.Path(f"/proc/{process.pid}/fd").iterdir()))


def test_slow_bodies_time_out_and_connections_are_capped(checkpoint, vocab_path):
    with _serving(checkpoint, vocab_path, "--body-timeout-s", "1", "--max-connections", "20") \
            as (url, process):
        host, port = url.removeprefix("http://").removesuffix("/v1").split(":")
        # headers, then a body that never finishes arriving: 408 about a second later
        slow = socket.create_connection((host, int(port)), timeout=30)
        slow.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
                     b"\r\nContent-Length: 100\r\n\r\n{")
        started = time.monotonic()
        reply = b"".join(iter(lambda: slow.recv(4096), b""))  # until the server closes it
        assert reply.startswith(b"HTTP/1.1 408") and b"request_timeout" in reply, reply
        assert time.monotonic() - started < 10
        slow.close()
        # 100 clients that send headers and no body: past the cap they get 503 at once, the
        # admitted ones 408 after the body timeout; none is left holding a connection
        baseline = _open_fds(process)
        clients = [socket.create_connection((host, int(port)), timeout=30) for _ in range(100)]
        for client in clients:
            client.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 9\r\n\r\n")
        started = time.monotonic()
        statuses = collections.Counter(c.recv(4096)[9:12].decode() for c in clients)
        assert set(statuses) <= {"503", "408"} and statuses["503"] >= 50, statuses
        assert time.monotonic() - started < 15
        during = _open_fds(process)
        for client in clients:
            client.close()
        time.sleep(1.0)
        assert _open_fds(process) <= baseline + 5, (baseline, during, _open_fds(process))
        assert _post(url, "completions", {"model": MODEL, "prompt": "x", "max_tokens": 2}).status_code == 200
