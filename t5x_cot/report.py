"""Results tables (markdown, CSV) and accuracy plots from `t5x_cot.eval` output directories.

    python -m t5x_cot.report /runs/small/eval /runs/base/eval --out /runs/report --x model_size

Each directory holds metrics.json and run_info.json. One table row per (run, task); the plot
draws accuracy against `--x`: model_size (parameter count), data_fraction (share of the
training rationales) or coin_flips (people flipping the coin; in- and out-of-distribution),
one line per task family (coinflip_ood3 joins coinflip_cot on the coin_flips axis).
"""
from __future__ import annotations

import argparse
import csv
import json
import pathlib
import sys
from collections.abc import Sequence
from typing import Any

from t5x_cot.errors import UserError
from t5x_cot.eval import METRICS_FILE, RUN_INFO_FILE

X_AXES = {"model_size": "num_params", "data_fraction": "data_fraction", "coin_flips": "coin_flips"}
COLUMNS = ("run", "task", "distribution", "num_params", "data_fraction", "coin_flips", "num_examples",
           "accuracy", "calculator_accuracy", "answer_found", "mean_generated_length",
           "accuracy@1", "accuracy@5", "accuracy@10", "accuracy@20")


class ReportError(UserError, ValueError):
    """An eval output directory that cannot be read."""


def _read_json(path: pathlib.Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ReportError(f"{path}: missing (expected the output of python -m t5x_cot.eval)") from None
    except json.JSONDecodeError as error:
        raise ReportError(f"{path}:{error.lineno}: not valid JSON ({error.msg})") from None


def collect(eval_dirs: Sequence[str | pathlib.Path]) -> list[dict[str, Any]]:
    """One row per (eval dir, task) with the COLUMNS that the eval wrote."""
    rows = []
    for directory in map(pathlib.Path, eval_dirs):
        metrics = _read_json(directory / METRICS_FILE)
        info = _read_json(directory / RUN_INFO_FILE)
        run = directory.name if directory.name not in ("eval", "") else directory.parent.name
        for task, values in sorted(metrics.items()):
            row = {"run": run, "task": task, "num_params": info.get("num_params")}
            row.update({k: values.get(k) for k in COLUMNS if k in values})
            rows.append(row)
    return rows


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}" if not value.is_integer() else f"{value:.1f}"
    return str(value)


def markdown_table(rows: Sequence[dict[str, Any]]) -> str:
    """A markdown table of the columns present in any row."""
    columns = [c for c in COLUMNS if any(row.get(c) is not None for row in rows)]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(row.get(c)) for c in columns) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def write_csv(rows: Sequence[dict[str, Any]], path: pathlib.Path) -> None:
    columns = [c for c in COLUMNS if any(row.get(c) is not None for row in rows)]
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def family(task: str, x_axis: str) -> str:
    """The line a task belongs to: on the coin_flips axis OOD tasks join coinflip_cot."""
    if x_axis == "coin_flips" and task.startswith("coinflip"):
        return "coinflip"
    if x_axis == "data_fraction":
        return task.split("_frac")[0]
    return task


def plot(rows: Sequence[dict[str, Any]], x_axis: str, path: pathlib.Path) -> pathlib.Path:
    """Accuracy vs `x_axis` (a key of X_AXES), one line per (run, task family) or task."""
    import matplotlib  # pylint: disable=import-outside-toplevel
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
    key = X_AXES[x_axis]
    lines: dict[str, list[tuple[float, float]]] = {}
    for row in rows:
        if row.get(key) is None or row.get("accuracy") is None:
            continue
        label = family(row["task"], x_axis) + ("" if x_axis == "model_size" else f" ({row['run']})")
        lines.setdefault(label, []).append((float(row[key]), float(row["accuracy"])))
    if not lines:
        raise ReportError(f"no eval result has both {key!r} and accuracy to plot")
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, points in sorted(lines.items()):
        xs, ys = zip(*sorted(points))
        ax.plot(xs, ys, marker="o", label=label)
    if x_axis == "model_size":
        ax.set_xscale("log")
    elif x_axis == "coin_flips":
        ax.set_xticks(sorted({x for points in lines.values() for x, _ in points}))
    ax.set_xlabel({"model_size": "parameters", "data_fraction": "fraction of training rationales",
                   "coin_flips": "people flipping the coin"}[x_axis])
    ax.set_ylabel("accuracy (%)")
    ax.legend(fontsize="small")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def build_report(eval_dirs: Sequence[str | pathlib.Path], out_dir: str | pathlib.Path,
                 x_axis: str = "model_size") -> dict[str, pathlib.Path]:
    """results.md, results.csv and accuracy_vs_<x_axis>.png in `out_dir`; returns their paths."""
    if x_axis not in X_AXES:
        raise ReportError(f"x axis {x_axis!r}; expected one of {', '.join(X_AXES)}")
    rows = collect(eval_dirs)
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"markdown": out / "results.md", "csv": out / "results.csv",
             "plot": out / f"accuracy_vs_{x_axis}.png"}
    paths["markdown"].write_text(markdown_table(rows), encoding="utf-8")
    write_csv(rows, paths["csv"])
    plot(rows, x_axis, paths["plot"])
    return paths


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m t5x_cot.report", description=__doc__.split("\n")[0])
    parser.add_argument("eval_dirs", nargs="+", help="EVAL_OUTPUT_DIRs of python -m t5x_cot.eval")
    parser.add_argument("--out", required=True, help="folder for results.md, results.csv and the plot")
    parser.add_argument("--x", default="model_size", choices=sorted(X_AXES), help="x axis of the plot")
    args = parser.parse_args(argv)
    try:
        paths = build_report(args.eval_dirs, args.out, args.x)
    except ReportError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(paths["markdown"].read_text(encoding="utf-8"))
    for kind, path in paths.items():
        print(f"{kind}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
