"""Credentials against a real local endpoint: a key read with its newline, a key that cannot be
sent, user information in --base-url, and refusals (401/403/404/400) that must stop the run
at once with the endpoint's message, none of which may show a secret anywhere."""
from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import subprocess
import sys
import urllib.parse

import pytest
from openai_server import OpenAIServer

from t5x_cot.teacher.__main__ import main as generate_main
from t5x_cot.teacher.client import ClientConfig, EndpointRejected, SamplingParams, TeacherClient
from t5x_cot.teacher.redaction import Redactor

KEY_ENV = "T5X_COT_TEST_REDACTION_KEY"
KEY = "sk-live-do-not-leak-42b9e1"
PROMPT = "Q: What is 2 + 3?\nHint: the correct answer is 5.\nA:"


def argv(base_url, out, *extra):
    return ["--task", "coinflip", "--split", "train", "--teacher", "openai", "--model", "m",
            "--base-url", base_url, "--api-key-env", KEY_ENV, "--out", str(out),
            "--num-examples", "6", "--backoff-base", "0.001", "--timeout", "1",
            "--no-progress", *extra]


def _written(tmp_path, captured) -> list[str]:
    return [captured.out, captured.err] + [p.read_text() for p in tmp_path.iterdir()]


def _assert_hidden(texts, *secrets):
    for secret in secrets:
        forms = {secret, repr(secret)[1:-1], repr(secret.encode())[2:-1], json.dumps(secret)[1:-1],
                 urllib.parse.quote(secret, safe=""), secret.strip()}
        for text in texts:
            for form in forms:
                assert form not in text, (form, text[:300])


def test_a_key_read_with_its_newline_is_sent_stripped(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(KEY_ENV, KEY + "\r\n")
    with OpenAIServer(api_key=KEY) as srv:
        assert generate_main(argv(srv.base_url, tmp_path / "cot.jsonl")) == 0
        assert srv.authorization == {f"Bearer {KEY}"}
    assert json.loads((tmp_path / "cot.jsonl.summary.json").read_text())["kept"] == 6


@pytest.mark.parametrize("inside", ["\n", " ", "\t", "\x1b", "\x7f", "é"])
def test_a_key_that_cannot_be_sent_is_refused_before_any_request(tmp_path, monkeypatch, capsys,
                                                                 inside):
    bad = KEY[:10] + inside + KEY[10:]
    monkeypatch.setenv(KEY_ENV, bad)
    with OpenAIServer() as srv:
        assert generate_main(argv(srv.base_url, tmp_path / "cot.jsonl")) == 2
        assert srv.bodies_seen == 0 and not srv.authorization
    captured = capsys.readouterr()
    assert f"${KEY_ENV}: the API key has a whitespace" in captured.err
    assert "character 11 of" in captured.err and len(captured.err.strip().splitlines()) == 1
    _assert_hidden(_written(tmp_path, captured), bad, KEY[:10], KEY[10:])


def test_url_user_information_is_sent_as_basic_auth_and_written_nowhere(tmp_path, monkeypatch,
                                                                       capsys):
    monkeypatch.delenv(KEY_ENV, raising=False)
    password = "pa/ss:SECRET-9"
    with OpenAIServer(transient={"500": 0.3}, echo_auth=True) as srv:
        url = srv.base_url.replace("http://", f"http://alice:{urllib.parse.quote(password, safe='')}@")
        caught = logging.getLogger("t5x_cot.test")
        assert generate_main(argv(url, tmp_path / "cot.jsonl")) == 0
        caught.warning("request went to %s", url)  # a log line naming the URL is masked too
        sent = base64.b64encode(f"alice:{password}".encode()).decode()
        assert srv.authorization == {f"Basic {sent}"}
    summary = json.loads((tmp_path / "cot.jsonl.summary.json").read_text())
    assert summary["teacher"]["endpoint"] == srv.base_url
    _assert_hidden(_written(tmp_path, capsys.readouterr()), password, sent)


@pytest.mark.parametrize("url", ["http://alice:pa/ss@127.0.0.1:1/v1", "ftp://127.0.0.1/v1",
                                 "127.0.0.1:8000/v1", "http://alice:pass@:99/v1"])
def test_a_base_url_that_cannot_be_used_is_refused_without_quoting_it(tmp_path, monkeypatch,
                                                                      capsys, url):
    monkeypatch.setenv(KEY_ENV, KEY)
    assert generate_main(argv(url, tmp_path / "cot.jsonl")) == 2
    err = capsys.readouterr().err
    assert "--base-url must be an http:// or https:// URL" in err
    assert "pa" not in err.replace("part", "") and "pass" not in err


@pytest.mark.parametrize("status", ["400", "401", "403", "404"])
def test_a_refusal_stops_at_once_with_the_status_and_the_endpoints_message(tmp_path, monkeypatch,
                                                                           capsys, status):
    monkeypatch.setenv(KEY_ENV, KEY)
    with OpenAIServer(echo_auth=True) as srv:
        srv.command(status)
        assert generate_main(argv(srv.base_url, tmp_path / "cot.jsonl", "--concurrency", "1")) == 2
        assert srv.stats[status] == 1 and srv.bodies_seen == 1
    captured = capsys.readouterr()
    line = captured.err.strip()
    assert line.startswith(f"t5x-cot generate: error: HTTP {status} from {srv.base_url}")
    assert "rejected (request had Authorization: Bearer ***)" in line
    assert len(line.splitlines()) == 1
    _assert_hidden(_written(tmp_path, captured), KEY)


def test_a_wrong_key_exits_non_zero_in_a_real_process(tmp_path):
    with OpenAIServer(api_key=KEY, echo_auth=True) as srv:
        proc = subprocess.run([sys.executable, "-m", "t5x_cot.teacher",
                               *argv(srv.base_url, tmp_path / "cot.jsonl")],
                              env={**os.environ, KEY_ENV: "sk-wrong-" + KEY}, capture_output=True,
                              text=True, timeout=120)
        assert srv.stats["401"] <= 6  # the requests already in flight, none retried
    assert proc.returncode == 2
    assert f"HTTP 401 from {srv.base_url}/chat/completions: Incorrect API key provided" in \
        proc.stderr
    _assert_hidden([proc.stdout, proc.stderr], "sk-wrong-" + KEY)


def test_client_refusal_is_final_for_every_later_request():
    with OpenAIServer() as srv:
        srv.command("401")

        async def go():
            config = ClientConfig(base_url=srv.base_url, model="m", api_key=KEY, max_retries=5)
            async with TeacherClient(config) as client:
                errors = []
                for _ in range(3):
                    try:
                        await client.complete(PROMPT, 1, SamplingParams())
                    except EndpointRejected as error:
                        errors.append(str(error))
                return errors, client.requests_sent
        errors, sent = asyncio.run(go())
    assert sent == 1 and len(errors) == 3 and "HTTP 401" in errors[0]


@pytest.mark.parametrize("secret", [KEY, "k'e\\y\"+/=%\u00e9-long", "sk-with\nnewline"])
def test_every_written_form_is_masked(secret):
    redact = Redactor([secret])
    texts = [secret, repr(secret), repr(secret.encode()), json.dumps(secret),
             urllib.parse.quote(secret, safe=""), f"Illegal header value {f'Bearer {secret}'.encode()!r}"]
    for text in texts:
        assert redact(text).count("***") >= 1
        _assert_hidden([redact(text)], secret)
