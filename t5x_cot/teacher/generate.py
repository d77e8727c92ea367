"""Generation runs: plan the requests, fetch what the store lacks, filter, write records.

Files for `--out PATH`:
    PATH                        the kept CoT records (rewritten atomically at the end)
    PATH.completions.jsonl      the append-only store of raw completions (resume source)
    PATH.summary.json           the summary counts

The store is the only thing written while requests are in flight; the records file is
derived from it, so a killed run loses nothing it had received and can never leave a
duplicated or half-written record behind: rerunning resumes and rewrites PATH whole.
"""
from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from t5x_cot.data.example import Example
from t5x_cot.data.records import write_records
from t5x_cot.teacher.client import (
    Completion,
    EndpointError,
    EndpointRejected,
    EndpointUnavailable,
    SamplingParams,
    TeacherClient,
)
from t5x_cot.teacher.filter import Summary, judge, select
from t5x_cot.teacher.store import CompletionStore, completion_key


def store_path(out: str | os.PathLike) -> str:
    """Where the raw completions for `out` live."""
    return f"{os.fspath(out)}.completions.jsonl"


def summary_path(out: str | os.PathLike) -> str:
    """Where the summary for `out` is saved."""
    return f"{os.fspath(out)}.summary.json"


@dataclasses.dataclass
class Job:
    """One question: its prompt and the store key of each sample."""

    example: Example
    prompt: str
    keys: list[str]

    def missing(self, store: Mapping[str, Any] | CompletionStore) -> list[int]:
        """Sample indices with no stored completion."""
        return [i for i, key in enumerate(self.keys) if key not in store]


def plan_jobs(examples: Sequence[Example], prompts: Sequence[str], endpoint: str, model: str,
              params: Mapping[str, Any], samples: int) -> list[Job]:
    """A Job per example, keyed by (endpoint, model, params, prompt, sample index)."""
    return [Job(ex, prompt, [completion_key(endpoint, model, params, prompt, i)
                             for i in range(samples)])
            for ex, prompt in zip(examples, prompts)]


def count_requests(jobs: Sequence[Job], store: Mapping[str, Any] | CompletionStore,
                   n_supported: bool) -> int:
    """HTTP requests still needed (one per question with `n`, else one per sample)."""
    return sum((1 if n_supported else len(m)) for m in (j.missing(store) for j in jobs) if m)


class Progress:
    """Live progress on stderr: done/total, kept %, tokens, requests/s, ETA."""

    def __init__(self, total: int, answer_type: str, enabled: bool = True):
        from tqdm import tqdm
        self.bar = tqdm(total=total, unit="req", file=sys.stderr, disable=not enabled,
                        dynamic_ncols=True, mininterval=0.25, smoothing=0.1)
        self.answer_type = answer_type
        self.answered = self.kept = self.tokens = 0

    def update(self, example: Example, entries: Sequence[dict]) -> None:
        """Count one finished request and its completions."""
        for entry in entries:
            self.answered += 1
            self.tokens += int((entry.get("usage") or {}).get("total_tokens", 0))
            verdict = judge(entry["text"], entry.get("finish_reason"), example.answer,
                            self.answer_type)
            self.kept += verdict.status == "kept"
        pct = 100.0 * self.kept / self.answered if self.answered else 0.0
        self.bar.set_postfix_str(f"kept {pct:.1f}% tokens {self.tokens}", refresh=False)
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()


def make_entries(job: Job, samples: Sequence[int], completion: Completion) -> list[dict]:
    """Store entries for the choices of one response, assigned to `samples` in order.

    The request's usage goes on the first entry only, so summed usage is not inflated.
    """
    return [{"key": job.keys[idx], "id": job.example.id, "sample_index": idx,
             "text": choice.text, "finish_reason": choice.finish_reason,
             "usage": completion.usage if pos == 0 else {}}
            for pos, (idx, choice) in enumerate(zip(samples, completion.choices))]


async def _fetch_job(job: Job, client: TeacherClient, store: CompletionStore,
                     params: SamplingParams, state: dict[str, Any],
                     on_request: Callable[[Example, list[dict]], None]) -> None:
    missing = job.missing(store)
    while missing:
        n = len(missing) if state["n_supported"] else 1
        seed = None if params.seed is None else params.seed + missing[0]
        completion = await client.complete(job.prompt, n, dataclasses.replace(params, seed=seed))
        if len(completion.choices) < n:
            state["n_supported"] = False
        entries = make_entries(job, missing[:n], completion)
        store.add(entries)
        on_request(job.example, entries)
        missing = missing[len(entries):]


async def fetch(jobs: Sequence[Job], client: TeacherClient, store: CompletionStore,
                params: SamplingParams, n_supported: bool,
                on_request: Callable[[Example, list[dict]], None]) -> list[EndpointError]:
    """Request every missing sample; return the error of each question that ended with one
    (retries exhausted).

    Raises `EndpointUnavailable` (the endpoint is down) or `EndpointRejected` (it refused a
    request for good) after cancelling the rest; everything received before that is
    already in the store.
    """
    state = {"n_supported": n_supported}
    tasks = [asyncio.ensure_future(_fetch_job(j, client, store, params, state, on_request))
             for j in jobs if j.missing(store)]
    failures: list[EndpointError] = []
    try:
        for result in await asyncio.gather(*tasks, return_exceptions=True):
            if isinstance(result, (EndpointUnavailable, EndpointRejected)):
                raise result
            if isinstance(result, EndpointError):
                failures.append(result)
            elif isinstance(result, BaseException):
                raise result
    finally:
        for task in tasks:
            task.cancel()
    return failures


def finish(jobs: Sequence[Job], lookup: Mapping[str, dict] | CompletionStore, answer_type: str,
           teacher: Mapping[str, Any], prompt_id: str,
           out: str | os.PathLike, extra: Mapping[str, Any] | None = None) -> Summary:
    """Filter every job's completions, write the records and the summary; return it."""
    summary = Summary()
    records: list[dict] = []
    for job in jobs:
        entries = [(i, lookup.get(key)) for i, key in enumerate(job.keys)]
        records.extend(select(job.example, entries, answer_type, teacher, prompt_id, summary))
    write_records(out, records)
    payload = {"out": os.fspath(out), **(extra or {}), **summary.as_dict(),
               "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    with open(summary_path(out), "w", encoding="utf-8") as fh:
        json.dump(payload, fh, indent=2)
        fh.write("\n")
    return summary

