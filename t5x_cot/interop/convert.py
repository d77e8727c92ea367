"""`t5x-cot convert --from {t5x,hf,ours} SRC --to {hf,ours,t5x} DST`: checkpoint conversion.

Sources are read one tensor at a time (T5X tensorstore arrays, safetensors tensors, torch
state dicts through mmap); an HF destination is written one tensor at a time, so converting
to HF holds about one tensor at a time (plus a T5X msgpack file, which is one blob). An
"ours" destination is saved as one orbax tree, so it holds the model once. A T5X destination
is `DST/checkpoint_<step>/` in T5X's tensorstore layout (params and Adafactor state, see
`t5x_export`), written one array at a time.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import pathlib
import sys
from typing import Any

HELP = "Convert checkpoints: T5X, HuggingFace or ours in; HuggingFace, ours or T5X out."
SOURCE_KINDS = ("t5x", "hf", "ours")
TARGET_KINDS = ("hf", "ours", "t5x")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--from", dest="source_kind", choices=SOURCE_KINDS, required=True,
                        help="source format: a T5X checkpoint (msgpack file or tensorstore dir, "
                             "local or gs://), an HF T5 model dir, or one of our checkpoints")
    parser.add_argument("source", metavar="SRC", help="source checkpoint path")
    parser.add_argument("--to", dest="target_kind", choices=TARGET_KINDS, required=True,
                        help="target format: an HF T5 model dir, our params checkpoint "
                             "(what INITIAL_CHECKPOINT_PATH / CHECKPOINT_PATH accept), or a T5X "
                             "model dir (DST/checkpoint_<step>/, params and Adafactor state)")
    parser.add_argument("target", metavar="DST", help="target directory")
    parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16", "float16"),
                        help="tensor dtype of an HF target (ours are always float32)")
    parser.add_argument("--spm", metavar="PATH", default=None,
                        help="SentencePiece model to write the T5Tokenizer files from (HF target)")
    parser.add_argument("--set", metavar="FIELD=VALUE", action="append", default=[],
                        help="set a T5Config field the source cannot show (a T5X checkpoint "
                             "has no config: e.g. relative_attention_max_distance=128); "
                             "VALUE is JSON or a bare string; repeatable")
    parser.add_argument("--overwrite", action="store_true",
                        help="write into DST even when it already holds files")


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """`["FIELD=VALUE", ...]` to T5Config keyword overrides (VALUE as JSON, else a string)."""
    from t5x_cot.interop.errors import ConversionError
    from t5x_cot.model.network import T5Config

    known = {f.name for f in dataclasses.fields(T5Config)}
    overrides: dict[str, Any] = {}
    for item in items:
        field, sep, raw = item.partition("=")
        if not sep or field not in known:
            raise ConversionError("--set", f"{item!r}: expected FIELD=VALUE with FIELD one of "
                                  f"{', '.join(sorted(known))}", field=field or None)
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        overrides[field] = tuple(value) if isinstance(value, list) else value
    return overrides


def open_source(kind: str, path: str, overrides: dict[str, Any] | None = None) -> Any:
    """A ParamSource for a checkpoint of the given kind."""
    overrides = overrides or {}
    if kind == "t5x":
        from t5x_cot.interop.sources import T5XSource

        return T5XSource(path, **overrides)
    if kind == "hf":
        from t5x_cot.interop.hf_import import HFSource

        return HFSource(path, **overrides)
    if kind == "ours":
        from t5x_cot.interop.ours_io import open_ours

        return open_ours(path, **overrides)
    raise ValueError(f"unknown source kind {kind!r} (expected one of {', '.join(SOURCE_KINDS)})")


def convert(source_kind: str, source: str, target_kind: str, target: str, *, dtype: str = "float32",
            spm_model: str | None = None, overrides: dict[str, Any] | None = None) -> Any:
    """Convert one checkpoint; returns the model's T5Config."""
    from t5x_cot.interop.hf_export import export_source
    from t5x_cot.interop.ours_io import write_ours

    params = open_source(source_kind, source, overrides)
    try:
        if target_kind == "hf":
            export_source(params, target, dtype=dtype, spm_model=spm_model)
        elif target_kind == "ours":
            write_ours(params, target)
        elif target_kind == "t5x":
            from t5x_cot.interop.t5x_export import export_t5x

            export_t5x(params, source_kind, source, target)
        else:
            raise ValueError(f"unknown target kind {target_kind!r} (expected one of {', '.join(TARGET_KINDS)})")
        return params.config
    finally:
        params.close()


def run(args: argparse.Namespace) -> int:
    from t5x_cot.checkpoints import CheckpointError
    from t5x_cot.interop.errors import ConversionError

    target = pathlib.Path(args.target)
    if target.is_dir() and any(target.iterdir()) and not args.overwrite:
        print(f"error: {target} already holds files (pass --overwrite to write into it)", file=sys.stderr)
        return 2
    if args.spm and args.target_kind != "hf":
        print("error: --spm only applies to --to hf", file=sys.stderr)
        return 2
    try:
        config = convert(args.source_kind, args.source, args.target_kind, os.fspath(target),
                         dtype=args.dtype, spm_model=args.spm, overrides=parse_overrides(args.set))
    except (ConversionError, CheckpointError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    fields = ", ".join(f"{f.name}={getattr(config, f.name)!r}" for f in dataclasses.fields(config))
    print(f"converted {args.source_kind} {args.source} -> {args.target_kind} {target}\nT5Config({fields})")
    return 0
