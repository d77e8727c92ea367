"""`t5x-cot generate`: build a filtered CoT dataset from a teacher.

    t5x-cot generate --task gsm8k --split train --teacher openai --model gpt-4o-mini \\
        --base-url https://api.openai.com/v1 --api-key-env OPENAI_API_KEY --out cot/gsm8k.jsonl

Writes the kept records to --out, raw completions to <out>.completions.jsonl (rerunning
the same command resumes from it; --restart discards it) and the summary to
<out>.summary.json. Offline teachers: --teacher gold (GSM8K, StrategyQA) and
--teacher symbolic (Coinflip). Batch API: --batch-write FILE writes the /v1/batches
request file; after the batch finishes, --batch-ingest FILE (same flags otherwise) stores
its results and writes the records.
"""
from __future__ import annotations

import argparse
import sys

HELP = "generate chain-of-thought records with a teacher (endpoint, gold or symbolic)"

TASKS = ("gsm8k", "strategyqa", "coinflip")
TEACHERS = ("openai", "gold", "symbolic")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the generate flags."""
    parser.formatter_class = argparse.ArgumentDefaultsHelpFormatter
    add = parser.add_argument
    add("--task", required=True, choices=TASKS)
    add("--split", required=True, help="dataset split (coinflip: any name)")
    add("--teacher", required=True, choices=TEACHERS)
    add("--out", required=True, help="CoT records JSONL to write")
    add("--data-dir", default=None, help="dataset dir (default $T5X_COT_DATA_DIR)")
    add("--limit", type=int, default=None, help="annotate only the first N questions")
    add("--num-people", type=int, default=2, help="coinflip: people per puzzle")
    add("--num-examples", type=int, default=1000, help="coinflip: puzzles to generate")
    add("--seed", type=int, default=0,
        help="coinflip generation seed; also seeds --error-rate and drawn exemplars")
    endpoint = parser.add_argument_group("endpoint (teacher openai)")
    endpoint.add_argument("--model", default=None)
    endpoint.add_argument("--base-url", default="https://api.openai.com/v1")
    endpoint.add_argument("--api-key-env", default="OPENAI_API_KEY",
                          help="environment variable holding the API key")
    route = endpoint.add_mutually_exclusive_group()
    route.add_argument("--chat", dest="chat", action="store_true", default=True,
                       help="use /chat/completions")
    route.add_argument("--completion", dest="chat", action="store_false",
                       help="use /completions")
    endpoint.add_argument("--concurrency", type=int, default=16)
    endpoint.add_argument("--rpm", type=float, default=None, help="requests per minute cap")
    endpoint.add_argument("--tpm", type=float, default=None, help="tokens per minute cap")
    endpoint.add_argument("--timeout", type=float, default=120.0, help="per-request seconds")
    endpoint.add_argument("--max-retries", type=int, default=8)
    endpoint.add_argument("--backoff-base", type=float, default=1.0,
                          help="first retry waits up to this many seconds, doubling")
    endpoint.add_argument("--max-consecutive-failures", type=int, default=20)
    endpoint.add_argument("--no-n", action="store_true",
                          help="one request per sample instead of the `n` parameter")
    endpoint.add_argument("--restart", action="store_true",
                          help="discard stored completions instead of resuming (a dry run "
                               "only counts as if they were gone)")
    endpoint.add_argument("--no-progress", action="store_true")
    prompt = parser.add_argument_group("prompt and sampling")
    prompt.add_argument("--mode", choices=("hint", "plain"), default="hint")
    prompt.add_argument("--exemplars", default=None,
                        help="exemplar JSON file ({gsm8k|strategy_qa|coin_flip: {prompt}})")
    prompt.add_argument("--exemplars-from-train", type=int, default=0, metavar="K",
                        help="draw K exemplars per question from the train split instead")
    prompt.add_argument("--samples", type=int, default=1,
                        help="samples per question; keeps up to N distinct correct ones")
    prompt.add_argument("--temperature", type=float, default=0.0)
    prompt.add_argument("--top-p", type=float, default=1.0)
    prompt.add_argument("--max-tokens", type=int, default=256)
    prompt.add_argument("--stop", action="append", default=None,
                        help="stop sequence (repeatable; default '\\nQ:')")
    prompt.add_argument("--sampling-seed", type=int, default=None, help="endpoint `seed`")
    prompt.add_argument("--dry-run", action="store_true",
                        help="print the first prompt, request count and token estimate")
    batch = parser.add_argument_group("batch API and offline teachers")
    batch.add_argument("--batch-write", default=None, metavar="FILE",
                       help="write the /v1/batches request JSONL and stop")
    batch.add_argument("--batch-ingest", default=None, metavar="FILE",
                       help="ingest a /v1/batches output JSONL, then filter and write")
    batch.add_argument("--error-rate", type=float, default=0.0,
                       help="symbolic teacher: fraction of deliberately wrong rationales")
    batch.add_argument("--rationale-style", choices=("exemplar", "trace"), default="exemplar",
                       help="symbolic teacher: count the flips as Wei et al.'s exemplars, or "
                            "trace the coin's side person by person")
    batch.add_argument("--keep-annotations", action="store_true",
                       help="gold teacher: keep GSM8K <<expr=result>> annotations")


def run(args: argparse.Namespace) -> int:
    """Run `t5x-cot generate`; return the exit status."""
    from t5x_cot.errors import UserError, one_line
    from t5x_cot.teacher import run as runner
    try:
        return runner.main(args)
    except (UserError, ValueError, OSError) as err:
        print(f"t5x-cot generate: error: {runner.redactor(args)(one_line(err))}",
              file=sys.stderr)
        return 2

