"""`t5x-cot data stats`: what the data dir holds, as a readable table (and JSON with --json)."""
from __future__ import annotations

import argparse
import json
import os
import pathlib

HELP = "inspect the datasets: `t5x-cot data stats`"

_LENGTH_GROUPS = (("question_tokens", "question tokens"), ("rationale_words", "rationale words"),
                  ("rationale_tokens", "rationale tokens"))
_SHOWN_MISMATCHES = 5


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="data_command", metavar="SUBCOMMAND", required=True)
    stats = sub.add_parser(
        "stats", help="counts, answer balance, rationale lengths (words, T5 tokens), "
                      "calculator check of GSM8K annotations",
        description="Counts per task and split, answer balance, question and rationale "
                    "lengths in words and T5 SentencePiece tokens, and a calculator check of "
                    "every GSM8K <<expr=result>> annotation. Coinflip is generated, so it "
                    "works without any downloaded file.")
    stats.add_argument("--data-dir", type=pathlib.Path, default=None,
                       help="data dir (default: $T5X_COT_DATA_DIR, else ~/.cache/t5x_cot/data)")
    stats.add_argument("--vocab", type=pathlib.Path, default=None,
                       help="SentencePiece model (default: DATA_DIR/vocab/t5_spiece.model)")
    stats.add_argument("--coinflip-examples", type=int, default=1000,
                       help="generated Coinflip questions per number of people (default 1000)")
    stats.add_argument("--task-lengths", action="store_true",
                       help="also measure inputs/targets of every registered SeqIO task under the "
                            "T5 vocabulary (p50, p95, p99, max, EOS included; loads seqio)")
    stats.add_argument("--json", type=pathlib.Path, default=None, metavar="OUT",
                       help="also write every statistic (and each calculator mismatch) as JSON")


def run(args: argparse.Namespace) -> int:
    from t5x_cot.data import DATA_DIR_ENV, default_data_dir
    from t5x_cot.data.stats import collect

    data_dir = (args.data_dir or default_data_dir()).expanduser()
    vocab = (args.vocab or data_dir / "vocab" / "t5_spiece.model").expanduser()
    result = collect(data_dir, vocab, coinflip_examples=args.coinflip_examples)
    if args.data_dir:
        origin = "--data-dir"
    elif os.environ.get(DATA_DIR_ENV):
        origin = f"${DATA_DIR_ENV}"
    else:
        origin = f"default; set ${DATA_DIR_ENV} or pass --data-dir"
    print(render(result, origin=origin, vocab=vocab))
    if args.task_lengths:
        result["task_lengths"] = _print_task_lengths(data_dir, vocab)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
        print(f"\nWrote {args.json}")
    return 1 if result["errors"] else 0


def _print_task_lengths(data_dir: pathlib.Path, vocab: pathlib.Path) -> list[dict]:
    """Token lengths of every registered SeqIO task (they read the same data dir and vocab)."""
    from t5x_cot.data import DATA_DIR_ENV

    os.environ[DATA_DIR_ENV] = str(data_dir)
    os.environ.setdefault("T5X_COT_VOCAB", str(vocab))
    from t5x_cot.tasks import lengths, registry

    table = lengths.length_table(registry.task_names())
    print("\nSeqIO task lengths in T5 tokens (EOS included):")
    print(lengths.format_length_table(table))
    return table


def _answers_cell(answers: dict) -> str:
    if answers["kind"] == "yesno":
        return f"yes {100 * answers['yes_share']:.1f}%"
    return f"median {answers['median']:g}"


def _table(rows: list[dict], with_tokens: bool) -> list[str]:
    """Aligned rows: task, split, examples, answers, then mean/p95/max per length group."""
    groups = [(key, title) for key, title in _LENGTH_GROUPS if with_tokens or "tokens" not in key]
    cells = [["task", "split", "examples", "answers"] + ["mean", "p95", "max"] * len(groups)]
    for row in rows:
        line = [row["task"], row["label"], str(row["examples"]), _answers_cell(row["answers"])]
        for key, _ in groups:
            s = row[key]
            line += [f"{s['mean']:.1f}", str(s["p95"]), str(s["max"])]
        cells.append(line)
    widths = [max(len(line[i]) for line in cells) for i in range(len(cells[0]))]

    def join(parts: list[str]) -> str:
        text = "  ".join(parts[:4])
        for index in range(len(groups)):
            text += "     " + "  ".join(parts[4 + 3 * index: 7 + 3 * index])
        return text.rstrip()

    title = " " * (sum(widths[:4]) + 2 * 3)
    for index, (_, name) in enumerate(groups):
        title += "     " + name.center(sum(widths[4 + 3 * index: 7 + 3 * index]) + 4)
    rows_text = [join([line[i].ljust(widths[i]) if i in (0, 1, 3) else line[i].rjust(widths[i])
                       for i in range(len(line))]) for line in cells]
    return [title.rstrip()] + rows_text


def _number(value: float) -> str:
    return f"{int(value):,}" if float(value).is_integer() else f"{value:g}"


def _number_lines(rows: list[dict]) -> list[str]:
    out = []
    for row in rows:
        a = row["answers"]
        if a["kind"] != "number":
            continue
        kinds = ("all integers" if a["integers"] == row["examples"]
                 else f"{a['integers']} integers")
        out.append(f"  {row['task']} {row['label']:<6} {row['examples']} numbers ({kinds}, "
                   f"{a['negative']} negative): min {_number(a['min'])}, median "
                   f"{_number(a['median'])}, max {_number(a['max'])}")
    return out


def _calculator_lines(checks: list[dict]) -> list[str]:
    out = ["Calculator check of every GSM8K <<expr=result>> annotation (t5x_cot.calculator):"]
    for check in checks:
        out.append(f"  {check['split']:<6} total {check['total']:>6}   matched "
                   f"{check['matched']:>6}   mismatches {len(check['mismatches'])}")
    shown = [m for check in checks for m in check["mismatches"]][:_SHOWN_MISMATCHES]
    for m in shown:
        got = m["error"] if m["computed"] is None else f"calculator gives {m['computed']!r}"
        out.append(f"    {m['id']}: <<{m['expr']}={m['written']}>>  {got}")
    hidden = sum(len(check["mismatches"]) for check in checks) - len(shown)
    if hidden > 0:
        out.append(f"    ... {hidden} more (all listed with --json OUT)")
    return out


def render(result: dict, *, origin: str, vocab: pathlib.Path) -> str:
    """The human-readable report of `t5x_cot.data.stats.collect`'s result."""
    data_dir = result["data_dir"]
    lines = [f"Data dir  {data_dir}  ({origin})"]
    if result["vocab"]:
        lines.append(f"Vocab     {result['vocab']}  ({result['vocab_pieces']} pieces)")
    else:
        lines.append(f"Vocab     {vocab} not found: token columns are left out")
    lines += [""] + _table(result["rows"], with_tokens=bool(result["vocab"]))
    lines += ["", "Rationales: GSM8K solutions without <<...>> markup, StrategyQA facts, "
              "Coinflip symbolic steps.", "Tokens: T5 SentencePiece pieces, without EOS. "
              "Answers: share of yes, or the median number."]
    numbers = _number_lines(result["rows"])
    if numbers:
        lines += ["", "Numeric answers:"] + numbers
    if result["calculator"]:
        lines += [""] + _calculator_lines(result["calculator"])
    missing = [path for path, status in result["files"].items() if status == "missing"]
    modified = [path for path, status in result["files"].items() if status == "modified"]
    if missing:
        lines += ["", f"Missing from {data_dir} (their rows are left out):"]
        lines += [f"  {path}" for path in missing]
        lines += ["Get them (about 10 MB, checksummed) with:",
                  f"  t5x-cot download --data-dir {data_dir}",
                  "then point T5X_COT_DATA_DIR (or --data-dir) at that folder."]
    if modified:
        lines += ["", "Differ from the published files (sha256 mismatch; "
                      "`t5x-cot download` replaces them):"]
        lines += [f"  {path}" for path in modified]
    if result["errors"]:
        lines += ["", "Malformed files (left out):"] + [f"  {e}" for e in result["errors"]]
    return "\n".join(lines)
