"""OpenAI Batch API (`/v1/batches`): write the request file, ingest the results file.

`write_requests` writes one line per question that still lacks samples:

    {"custom_id": "<job key prefix>:<sample indices>", "method": "POST",
     "url": "/v1/chat/completions", "body": {... same body as a live request, n = #samples}}

Upload it with purpose "batch", create the batch, download its output file, then
`ingest_results` stores every choice under the same keys a live run would use; the
normal filter then writes the records. Result lines look like
`{"custom_id": ..., "response": {"status_code": 200, "body": {...}}, "error": null}`.
"""
from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence

from t5x_cot.data.example import DataError
from t5x_cot.data.records import iter_jsonl, write_jsonl_atomic
from t5x_cot.teacher.client import ClientConfig, SamplingParams, parse_completion, request_body
from t5x_cot.teacher.generate import Job, make_entries
from t5x_cot.teacher.store import CompletionStore

_PREFIX = 40


def custom_id(job: Job, samples: Sequence[int]) -> str:
    """The request id: the job's first key prefix plus the sample indices it covers."""
    return f"{job.keys[0][:_PREFIX]}:{'.'.join(str(i) for i in samples)}"


def write_requests(path: str | os.PathLike, jobs: Sequence[Job], store: CompletionStore,
                   config: ClientConfig, params: SamplingParams) -> int:
    """Write the /v1/batches request JSONL for every missing sample; return the line count."""
    url = "/v1/chat/completions" if config.chat else "/v1/completions"
    lines = []
    for job in jobs:
        missing = job.missing(store)
        if not missing:
            continue
        seed = None if params.seed is None else params.seed + missing[0]
        body = request_body(config, job.prompt, len(missing),
                            dataclasses.replace(params, seed=seed))
        lines.append({"custom_id": custom_id(job, missing), "method": "POST", "url": url,
                      "body": body})
    return write_jsonl_atomic(path, lines)


def ingest_results(path: str | os.PathLike, jobs: Sequence[Job], store: CompletionStore,
                   chat: bool) -> tuple[int, int]:
    """Store the completions of a batch output file; return (stored, failed requests)."""
    by_prefix = {job.keys[0][:_PREFIX]: job for job in jobs}
    stored = failed = 0
    for number, line in iter_jsonl(path):
        cid = line.get("custom_id") if isinstance(line, dict) else None
        prefix, _, indices = (cid or "").partition(":")
        job = by_prefix.get(prefix)
        if job is None or not indices:
            raise DataError(path, f"custom_id {cid!r} matches no request of this run "
                            f"(same task, split, prompt and sampling flags expected)",
                            line=number, field="custom_id")
        response = line.get("response") or {}
        if line.get("error") or response.get("status_code") != 200:
            failed += 1
            continue
        try:
            completion = parse_completion(response.get("body"), chat)
        except ValueError as err:
            raise DataError(path, f"expected a completion body ({err})", line=number,
                            field="response.body") from None
        samples = [int(i) for i in indices.split(".")]
        entries = make_entries(job, samples, completion)
        before = len(store)
        store.add(entries)
        stored += len(store) - before
    return stored, failed
