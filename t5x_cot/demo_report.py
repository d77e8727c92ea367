"""The demo's results: table (markdown and CSV), accuracy-by-people plot, merged predictions."""
from __future__ import annotations

import csv
import dataclasses
import json
import pathlib
from collections.abc import Mapping, Sequence
from typing import Any

RESULTS_MD = "results.md"
RESULTS_CSV = "results.csv"
PLOT_FILE = "accuracy_by_people.png"
PREDICTIONS_FILE = "predictions.jsonl"
CSV_FIELDS = ("student", "label", "num_people", "distribution", "accuracy", "answer_found",
              "num_examples")


def results_table(metrics: Mapping[str, Mapping[int, Mapping[str, Any]]],
                  labels: Mapping[str, str], train_people: int) -> list[dict[str, Any]]:
    """One row per (student, number of people) from eval metrics {student: {people: metrics}}."""
    return [{"student": student, "label": labels[student], "num_people": people,
             "distribution": "in" if people == train_people else "ood",
             "accuracy": round(float(m["accuracy"]), 2),
             "answer_found": round(float(m["answer_found"]), 2),
             "num_examples": int(m["num_examples"])}
            for student, by_people in metrics.items() for people, m in sorted(by_people.items())]


def _column(people: int, distribution: str) -> str:
    return f"{people} people ({'in distribution' if distribution == 'in' else 'OOD'})"


def format_markdown(table: Sequence[Mapping[str, Any]]) -> str:
    """Accuracy (%) as a markdown table: one row per student, one column per number of people."""
    columns = list(dict.fromkeys(_column(r["num_people"], r["distribution"]) for r in table))
    students = list(dict.fromkeys(r["label"] for r in table))
    cells = {(r["label"], _column(r["num_people"], r["distribution"])): r["accuracy"] for r in table}
    lines = ["| student | " + " | ".join(columns) + " |",
             "| --- | " + " | ".join("---:" for _ in columns) + " |"]
    for label in students:
        lines.append(f"| {label} | " + " | ".join(f"{cells[label, c]:.1f}" for c in columns) + " |")
    return "\n".join(lines)


def teacher_line(summary: Mapping[str, Any]) -> str:
    """The teacher's counts in one line."""
    dropped = {k: v for k, v in summary["dropped"].items() if v}
    return (f"{summary['answered']} rationales generated, {summary['kept']} kept, "
            f"{summary['answered'] - summary['kept']} dropped by the answer filter {dropped}")


def write_plot(table: Sequence[Mapping[str, Any]], path: pathlib.Path) -> None:
    """Accuracy against the number of people, one line per student, chance at 50%."""
    import matplotlib  # pylint: disable=import-outside-toplevel
    matplotlib.use("Agg")
    from matplotlib import pyplot as plt  # pylint: disable=import-outside-toplevel

    fig, ax = plt.subplots(figsize=(5, 3.5))
    for label in dict.fromkeys(r["label"] for r in table):
        rows = [r for r in table if r["label"] == label]
        ax.plot([r["num_people"] for r in rows], [r["accuracy"] for r in rows], marker="o",
                label=label)
    people = sorted({r["num_people"] for r in table})
    ax.axhline(50, color="grey", linestyle=":", label="chance")
    ax.set_xticks(people)
    ax.set_xlabel("people in the question (trained on 2)")
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 102)
    ax.set_title("Coinflip: CoT distillation vs answer only")
    ax.legend(loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def merge_predictions(eval_dirs: Mapping[str, pathlib.Path], path: pathlib.Path) -> int:
    """Every student's `predictions.jsonl` into one file with a `student` field; returns lines."""
    count = 0
    with open(path, "w", encoding="utf-8") as out:
        for student, directory in eval_dirs.items():
            with open(directory / PREDICTIONS_FILE, encoding="utf-8") as f:
                for line in f:
                    out.write(json.dumps({"student": student, **json.loads(line)},
                                         ensure_ascii=False) + "\n")
                    count += 1
    return count


def write_outputs(out: pathlib.Path, table: Sequence[Mapping[str, Any]],
                  summary: Mapping[str, Any], seconds: Mapping[str, float], settings: Any,
                  eval_dirs: Mapping[str, pathlib.Path]) -> None:
    """results.md, results.csv, the plot and the merged predictions under `out`."""
    with open(out / RESULTS_CSV, "w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_FIELDS)
        writer.writeheader()
        writer.writerows(table)
    write_plot(table, out / PLOT_FILE)
    merge_predictions(eval_dirs, out / PREDICTIONS_FILE)
    sizes = ", ".join(f"{k} {v}" for k, v in dataclasses.asdict(settings).items())
    timings = ", ".join(f"{k} {v:.0f} s" for k, v in seconds.items())
    text = ["# Coinflip chain-of-thought distillation (t5x-cot demo)", "",
            "Accuracy (%) of greedy answers; students trained from scratch on 2-people questions.",
            "", format_markdown(table), "", f"- teacher: {teacher_line(summary)}",
            f"- settings: {sizes}", f"- wall time: {timings}",
            f"- files: {RESULTS_CSV}, {PLOT_FILE}, {PREDICTIONS_FILE}", ""]
    (out / RESULTS_MD).write_text("\n".join(text), encoding="utf-8")
