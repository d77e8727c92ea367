"""The demo's results: a table per student, `t5x_cot.report`'s CSV and plot, merged predictions."""
from __future__ import annotations

import dataclasses
import json
import pathlib
from collections.abc import Mapping, Sequence
from typing import Any

from t5x_cot.eval import METRICS_FILE, PREDICTIONS_FILE


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
    cells = {(r["label"], _column(r["num_people"], r["distribution"])): r["accuracy"]
             for r in table}
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


def rationale_line(exact: Mapping[int, float]) -> str:
    """The share of CoT generations that reproduce the gold trace, per number of people."""
    return ("CoT rationales with every step right: "
            + ", ".join(f"{people} people {value:.1f}%" for people, value in sorted(exact.items())))


def verdict(table: Sequence[Mapping[str, Any]], student: str, baseline: str) -> str:
    """Whether `student` beats `baseline` on every out-of-distribution test set, with margins."""
    accuracy = {(r["student"], r["num_people"]): r["accuracy"] for r in table}
    ood = sorted({r["num_people"] for r in table if r["distribution"] == "ood"})
    margins = ", ".join(f"{p} people {accuracy[student, p] - accuracy[baseline, p]:+.1f}"
                        for p in ood)
    beats = all(accuracy[student, p] > accuracy[baseline, p] for p in ood)
    return (f"out of distribution the CoT student {'beats' if beats else 'does NOT beat'} the "
            f"answer-only student (accuracy difference in points: {margins})")


def set_num_people(eval_dir: pathlib.Path, people_of_task: Mapping[str, int],
                   train_people: int) -> None:
    """Record each demo test task's number of people (and in/out of distribution) in the
    eval's metrics.json, which the report plots against; the eval only knows the names of
    the project's own Coinflip tasks."""
    path = eval_dir / METRICS_FILE
    metrics = json.loads(path.read_text("utf-8"))
    for task, people in people_of_task.items():
        metrics[task].update(coin_flips=people,
                             distribution="in" if people == train_people else "ood")
    path.write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def write_outputs(out: pathlib.Path, table: Sequence[Mapping[str, Any]],
                  findings: Sequence[str], seconds: Mapping[str, float], settings: Any,
                  eval_dirs: Mapping[str, pathlib.Path]) -> dict[str, pathlib.Path]:
    """results.md, results.csv, the plot and the merged predictions under `out`; returns paths.

    The CSV and the plot are `t5x_cot.report`'s (one row per student and test set);
    results.md leads with `table` (one row per student) and adds the per-task table.
    """
    from t5x_cot import report  # pylint: disable=import-outside-toplevel

    paths = report.build_report(list(eval_dirs.values()), out, x_axis="coin_flips")
    paths["predictions"] = out / PREDICTIONS_FILE
    merge_predictions(eval_dirs, paths["predictions"])
    sizes = ", ".join(f"{k} {v}" for k, v in dataclasses.asdict(settings).items())
    timings = ", ".join(f"{k} {v:.0f} s" for k, v in seconds.items())
    text = ["# Coinflip chain-of-thought distillation (t5x-cot demo)", "",
            "Accuracy (%) of greedy answers; students trained from scratch on 2-people questions.",
            "", format_markdown(table), "", *(f"- {line}" for line in findings),
            f"- settings: {sizes}", f"- wall time: {timings}",
            f"- files: {paths['csv'].name}, {paths['plot'].name}, {PREDICTIONS_FILE}", "",
            "## Per test set", "", report.markdown_table(report.collect(list(eval_dirs.values())))]
    paths["markdown"].write_text("\n".join(text), encoding="utf-8")
    return paths
