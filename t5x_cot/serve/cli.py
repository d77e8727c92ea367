"""`t5x-cot serve --checkpoint DIR [--host 127.0.0.1] [--port 8000] [--model-name NAME]`.

Loads an "ours" checkpoint (params dir with config.json, a training step dir, or a
MODEL_DIR: its latest step) and the T5 SentencePiece vocabulary, then serves the model
over the OpenAI API (see `t5x_cot.serve.app`). `--port 0` picks a free port; the line
`serving <model> at http://HOST:PORT/v1` on stdout says which, once the socket listens.
"""
from __future__ import annotations

import argparse
import logging
import os
import pathlib
import socket
import sys

from t5x_cot.serve.protocol import PROMPT_FORMATS


def default_vocab_path() -> str | None:
    """$T5X_COT_VOCAB, else $T5X_COT_DATA_DIR/vocab/t5_spiece.model when it exists."""
    if os.environ.get("T5X_COT_VOCAB"):
        return os.environ["T5X_COT_VOCAB"]
    local = pathlib.Path(os.environ.get("T5X_COT_DATA_DIR", "")) / "vocab" / "t5_spiece.model"
    return str(local) if os.environ.get("T5X_COT_DATA_DIR") and local.is_file() else None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the serve flags."""
    parser.formatter_class = argparse.ArgumentDefaultsHelpFormatter
    add = parser.add_argument
    add("--checkpoint", required=True, help="checkpoint dir (params + config.json, step dir or MODEL_DIR)")
    add("--host", default="127.0.0.1")
    add("--port", type=int, default=8000, help="0 picks a free port")
    add("--model-name", default=None, help="model id clients send (default: the checkpoint dir's name)")
    add("--vocab", default=default_vocab_path(),
        help="SentencePiece model (default $T5X_COT_VOCAB or $T5X_COT_DATA_DIR/vocab/t5_spiece.model)")
    limits = parser.add_argument_group("batching and limits")
    limits.add_argument("--max-batch", type=int, default=32, help="rows (prompts x n) per decode")
    limits.add_argument("--max-wait-ms", type=float, default=10.0,
                        help="longest a request waits for others to share its decode")
    limits.add_argument("--max-queue", type=int, default=256, help="queued requests before 429")
    limits.add_argument("--max-body-bytes", type=int, default=1 << 20, help="larger bodies get 413")
    limits.add_argument("--body-timeout-s", type=float, default=30.0,
                        help="a body not received this long after its headers gets 408")
    limits.add_argument("--max-connections", type=int, default=512,
                        help="open connections; past it new ones get 503 and are closed")
    limits.add_argument("--max-input-tokens", type=int, default=512, help="longer prompts get 400")
    limits.add_argument("--max-tokens-limit", type=int, default=256, help="largest max_tokens accepted")
    add("--prompt-format", default="as-is", choices=PROMPT_FORMATS,
        help="question: reduce few-shot 'Q: ... A:' prompts to their last question (a student "
             "serving as a teacher for `t5x-cot generate`)")
    add("--input-prefix", default="",
        help="text put before every encoder input, e.g. '[label] ' for a distilling step-by-step "
             "student's label task")
    add("--log-level", default="warning", choices=("debug", "info", "warning", "error"))


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    return sock


def run(args: argparse.Namespace) -> int:
    """Load the model and serve until interrupted; 2 on a bad checkpoint or flag."""
    import uvicorn  # pylint: disable=import-outside-toplevel

    from t5x_cot import checkpoints  # pylint: disable=import-outside-toplevel
    from t5x_cot.serve.app import ServerLimits, create_app  # pylint: disable=import-outside-toplevel
    from t5x_cot.serve.engine import Engine  # pylint: disable=import-outside-toplevel

    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s: %(message)s")
    if args.vocab is None:
        print("t5x-cot serve: error: no vocabulary; pass --vocab or set T5X_COT_VOCAB", file=sys.stderr)
        return 2
    for flag in ("max_batch", "max_queue", "max_body_bytes", "max_input_tokens", "max_tokens_limit",
                 "max_connections", "body_timeout_s"):
        if getattr(args, flag) < 1:
            print(f"t5x-cot serve: error: --{flag.replace('_', '-')} must be positive", file=sys.stderr)
            return 2
    try:
        engine = Engine.from_checkpoint(args.checkpoint, args.vocab, max_batch=args.max_batch,
                                        max_input_tokens=args.max_input_tokens,
                                        max_tokens_limit=args.max_tokens_limit)
        sock = _listen(args.host, args.port)
    except (checkpoints.CheckpointError, OSError, ValueError) as error:
        print(f"t5x-cot serve: error: {error}", file=sys.stderr)
        return 2
    name = args.model_name or pathlib.Path(args.checkpoint).resolve().name
    limits = ServerLimits(max_batch=args.max_batch, max_wait_ms=args.max_wait_ms,
                          max_queue=args.max_queue, max_body_bytes=args.max_body_bytes,
                          body_timeout_s=args.body_timeout_s)
    app = create_app(engine, name, limits, args.prompt_format, args.input_prefix)
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    print(f"serving {name} at http://{shown}:{port}/v1", flush=True)
    server = uvicorn.Server(uvicorn.Config(app, log_level=args.log_level, access_log=False,
                                           timeout_keep_alive=30,
                                           limit_concurrency=args.max_connections))
    server.run(sockets=[sock])
    return 0
