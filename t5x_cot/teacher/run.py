"""Wiring for `t5x-cot generate`: parsed flags in, files written, exit status out."""
from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys

from t5x_cot.data import load_examples
from t5x_cot.data.example import Example
from t5x_cot.teacher import batch_api, generate, offline, prompts
from t5x_cot.teacher.client import ClientConfig, EndpointUnavailable, SamplingParams, TeacherClient
from t5x_cot.teacher.redaction import RedactingFilter, Redactor, check_api_key, check_base_url, split_credentials
from t5x_cot.teacher.store import CompletionStore, load_entries

EXIT_ENDPOINT_DOWN = 3


def redactor(args: argparse.Namespace) -> Redactor:
    """What masks the run's secrets: the key variable's value (as set, and stripped) and the
    user information of --base-url."""
    raw = os.environ.get(args.api_key_env) if getattr(args, "api_key_env", None) else None
    base_url = getattr(args, "base_url", None) or ""
    return Redactor([raw, raw.strip() if raw else None, *split_credentials(base_url)[1]])


def _examples(args: argparse.Namespace) -> list[Example]:
    kw = {}
    if args.task == "coinflip":
        kw = dict(num_people=args.num_people, num_examples=args.num_examples, seed=args.seed)
    examples = load_examples(args.task, args.split, args.data_dir, **kw)
    return examples[: args.limit] if args.limit is not None else examples


def _answer_type(task: str) -> str:
    from t5x_cot.answers import ANSWER_TYPES
    return ANSWER_TYPES[task]


def _report(summary_text: str, out: str) -> None:
    print(summary_text)
    print(f"records: {out}\nsummary: {generate.summary_path(out)}")


def run_offline(args: argparse.Namespace, examples: list[Example]) -> int:
    """Gold or symbolic teacher: no endpoint, same filter and records."""
    texts = offline.offline_texts(args.teacher, examples, keep_annotations=args.keep_annotations,
                                  error_rate=args.error_rate, seed=args.seed,
                                  style=args.rationale_style)
    params = {"keep_annotations": args.keep_annotations} if args.teacher == "gold" else {
        "error_rate": args.error_rate, "seed": args.seed, "rationale_style": args.rationale_style}
    jobs = generate.plan_jobs(examples, [ex.question for ex in examples], "offline",
                              args.teacher, params, 1)
    lookup = {job.keys[0]: {"text": text, "finish_reason": "stop", "usage": {}}
              for job, text in zip(jobs, texts) if text}
    teacher = {"endpoint": "offline", "model": args.teacher, "params": params}
    summary = generate.finish(jobs, lookup, _answer_type(args.task), teacher,
                              f"{args.task}-{args.teacher}", args.out,
                              {"task": args.task, "split": args.split, "teacher": teacher})
    _report(summary.text(), args.out)
    return 0


def _prompts(args: argparse.Namespace, examples: list[Example]) -> tuple[list[str], str]:
    """The prompt for each example and the prompt id they share."""
    if args.exemplars_from_train:
        pool = prompts.ExemplarPool(load_examples(args.task, "train", args.data_dir),
                                    args.exemplars_from_train, args.seed)
        pid = prompts.prompt_id(args.task, args.mode,
                                f"pool:{args.seed}:{args.exemplars_from_train}")
        return [prompts.build_prompt(ex, pool.draw(ex), args.mode) for ex in examples], pid
    exemplars = prompts.load_exemplars(args.task, args.exemplars)
    pid = prompts.prompt_id(args.task, args.mode, exemplars)
    return [prompts.build_prompt(ex, exemplars, args.mode) for ex in examples], pid


def run_endpoint(args: argparse.Namespace, examples: list[Example]) -> int:
    """Teacher openai: live requests, Batch API files, or a dry run."""
    if not args.model:
        raise ValueError("--model is required with --teacher openai")
    if args.samples < 1:
        raise ValueError(f"--samples must be >= 1, got {args.samples}")
    check_base_url(args.base_url)
    api_key = check_api_key(os.environ.get(args.api_key_env), f"${args.api_key_env}")
    config = ClientConfig(base_url=args.base_url, model=args.model, api_key=api_key,
                          chat=args.chat, concurrency=args.concurrency, rpm=args.rpm,
                          tpm=args.tpm, timeout=args.timeout, max_retries=args.max_retries,
                          backoff_base=args.backoff_base,
                          max_consecutive_failures=args.max_consecutive_failures)
    params = SamplingParams(temperature=args.temperature, top_p=args.top_p,
                            max_tokens=args.max_tokens,
                            stop=tuple(args.stop) if args.stop else ("\nQ:",),
                            seed=args.sampling_seed)
    key_params = {**params.as_dict(), "mode": args.mode}
    texts, pid = _prompts(args, examples)
    jobs = generate.plan_jobs(examples, texts, config.endpoint, args.model, key_params,
                              args.samples)
    path = generate.store_path(args.out)
    n_supported = not args.no_n
    if args.dry_run:
        stored = {} if args.restart else load_entries(path)
        pending = generate.count_requests(jobs, stored, n_supported)
        prompt_tokens = sum(len(j.prompt) // 4 for j in jobs if j.missing(stored))
        estimate = prompt_tokens * (1 if n_supported else args.samples) + \
            args.max_tokens * sum(len(j.missing(stored)) for j in jobs)
        print(texts[0] if texts else "(no questions)")
        print(f"--- {len(jobs)} questions, {pending} requests to send "
              f"({len(stored)} completions already stored), about {estimate} tokens "
              f"(prompt ~4 characters per token, completions at --max-tokens)")
        return 0
    if args.restart and os.path.exists(path):
        os.remove(path)
    with CompletionStore(path) as store:
        pending = generate.count_requests(jobs, store, n_supported)
        if args.batch_write:
            count = batch_api.write_requests(args.batch_write, jobs, store, config, params)
            print(f"wrote {count} batch requests to {args.batch_write}")
            return 0
        status = 0
        if args.batch_ingest:
            stored, failed = batch_api.ingest_results(args.batch_ingest, jobs, store, args.chat)
            print(f"ingested {stored} completions ({failed} failed requests) from "
                  f"{args.batch_ingest}")
        elif pending:
            status = asyncio.run(_fetch_all(args, config, jobs, store, params, pending))
        teacher = {"endpoint": split_credentials(config.base_url)[0],
                   "model": args.model, "params": key_params}
        summary = generate.finish(jobs, store, _answer_type(args.task), teacher,
                                  pid, args.out,
                                  {"task": args.task, "split": args.split, "teacher": teacher})
    _report(summary.text(), args.out)
    return status


async def _fetch_all(args: argparse.Namespace, config: ClientConfig, jobs: list[generate.Job],
                     store: CompletionStore, params: SamplingParams, pending: int) -> int:
    progress = generate.Progress(pending, _answer_type(args.task), not args.no_progress)
    async with TeacherClient(config) as client:
        try:
            failures = await generate.fetch(jobs, client, store, params, not args.no_n,
                                            progress.update)
        except EndpointUnavailable as err:
            progress.close()
            print(f"t5x-cot generate: {client.redact(err)}", file=sys.stderr)
            return EXIT_ENDPOINT_DOWN
        finally:
            progress.close()
    if failures:
        print(f"t5x-cot generate: {len(failures)} questions hit endpoint errors after retries "
              f"(first: {client.redact(failures[0])}); every completion received is saved, "
              f"rerun the same command to retry them", file=sys.stderr)
        return EXIT_ENDPOINT_DOWN
    return 0


def main(args: argparse.Namespace) -> int:
    """Entry point used by `t5x_cot.teacher.cli.run`."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    redacting = RedactingFilter(redactor(args))
    for handler in logging.getLogger().handlers:
        for old in [f for f in handler.filters if isinstance(f, RedactingFilter)]:
            handler.removeFilter(old)
        handler.addFilter(redacting)
    examples = _examples(args)
    if args.teacher == "openai":
        return run_endpoint(args, examples)
    return run_offline(args, examples)
