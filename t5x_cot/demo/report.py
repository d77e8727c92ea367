"""Stage 7, report: per-seed tables, the mean ± spread over seeds, the gaps between the
students, a plot with error bars and every prediction in one file."""
from __future__ import annotations

import csv
import json
import pathlib
import statistics
from collections.abc import Mapping, Sequence
from typing import Any

from t5x_cot.demo.data import DemoTask
from t5x_cot.eval import METRICS_FILE, PREDICTIONS_FILE

Metrics = Mapping[int, Mapping[str, Mapping[int, Mapping[str, Any]]]]  # seed, student, size
CSV_FIELDS = ("seed", "student", "label", "size", "distribution", "accuracy", "answer_found",
              "num_examples")


def results_rows(task: DemoTask, metrics: Metrics) -> list[dict[str, Any]]:
    """One row per (seed, student, size) from eval metrics {seed: {student: {size: metrics}}}."""
    return [{"seed": seed, "student": student, "label": task.students[student], "size": size,
             "distribution": "in" if task.in_distribution(size) else "ood",
             "accuracy": round(float(m["accuracy"]), 2),
             "answer_found": round(float(m["answer_found"]), 2),
             "num_examples": int(m["num_examples"])}
            for seed, by_student in metrics.items() for student, by_size in by_student.items()
            for size, m in sorted(by_size.items())]


def spread(values: Sequence[float]) -> tuple[float, float, float]:
    """(mean, min, max)."""
    return statistics.fmean(values), min(values), max(values)


def summary(rows: Sequence[Mapping[str, Any]]) -> dict[tuple[str, int], tuple[float, float, float]]:
    """{(student, size): (mean, min, max) of the accuracy over seeds}."""
    cells: dict[tuple[str, int], list[float]] = {}
    for row in rows:
        cells.setdefault((row["student"], row["size"]), []).append(row["accuracy"])
    return {key: spread(values) for key, values in cells.items()}


def _columns(rows: Sequence[Mapping[str, Any]]) -> list[int]:
    return sorted({row["size"] for row in rows})


def _header(task: DemoTask, sizes: Sequence[int]) -> list[str]:
    names = [f"{size} {task.unit} ({'in' if task.in_distribution(size) else 'OOD'})"
             for size in sizes]
    return ["| student | " + " | ".join(names) + " |",
            "| --- | " + " | ".join("---:" for _ in sizes) + " |"]


def format_markdown(task: DemoTask, rows: Sequence[Mapping[str, Any]]) -> str:
    """Accuracy (%) as a markdown table; with several seeds each cell is `mean ± half-range`."""
    sizes = _columns(rows)
    cells = summary(rows)
    several = len({row["seed"] for row in rows}) > 1
    lines = _header(task, sizes)
    for student, label in task.students.items():
        if (student, sizes[0]) not in cells:
            continue
        texts = []
        for size in sizes:
            mean, low, high = cells[student, size]
            texts.append(f"{mean:.1f} ± {(high - low) / 2:.1f}" if several else f"{mean:.1f}")
        lines.append(f"| {label} | " + " | ".join(texts) + " |")
    return "\n".join(lines)


def in_distribution_mean(rows: Sequence[Mapping[str, Any]], student: str) -> float:
    """The student's accuracy averaged over seeds and in-distribution sizes."""
    return statistics.fmean(r["accuracy"] for r in rows
                            if r["student"] == student and r["distribution"] == "in")


def gap_lines(task: DemoTask, rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """The in-distribution gaps between consecutive students, in points."""
    means = {s: in_distribution_mean(rows, s) for s in task.students}
    lines = ["in distribution (mean over seeds and " + task.unit + " "
             + "/".join(str(s) for s in _columns(rows) if task.in_distribution(s)) + "): "
             + ", ".join(f"{task.students[s]} {m:.1f}" for s, m in means.items())]
    pairs = [("cot", "answer_only"), ("cot_calculator", "cot"), ("cot_calculator", "answer_only"),
             ("dsbs", "answer_only"), ("dsbs", "cot")]
    for student, baseline in pairs:
        if student in means:
            lines.append(f"{task.students[student]} vs {task.students[baseline]}: "
                         f"{means[student] - means[baseline]:+.1f} points in distribution")
    return lines


def ood_line(task: DemoTask, rows: Sequence[Mapping[str, Any]], student: str,
             baseline: str) -> str:
    """Whether `student` beats `baseline` (mean over seeds) at every out-of-distribution size."""
    cells = summary(rows)
    ood = [s for s in _columns(rows) if not task.in_distribution(s)]
    margins = {s: cells[student, s][0] - cells[baseline, s][0] for s in ood}
    beats = all(m > 0 for m in margins.values())
    return (f"out of distribution the {task.students[student]} student "
            f"{'beats' if beats else 'does NOT beat'} the {task.students[baseline]} student "
            "(points: " + ", ".join(f"{s} {task.unit} {m:+.1f}" for s, m in margins.items()) + ")")


def exact_line(label: str, exact: Mapping[int, float], unit: str) -> str:
    """The share of a student's generations that reproduce the gold rationale, per size."""
    return (f"{label} rationales with every step right: "
            + ", ".join(f"{size} {unit} {value:.1f}%" for size, value in sorted(exact.items())))


def exact_rationales(eval_dir: pathlib.Path, gold: Mapping[str, Mapping[str, str]],
                     size_of: Mapping[str, int]) -> dict[int, float]:
    """Per size: % of generated texts equal to the gold target ({task: {id: target}})."""
    hits: dict[int, list[bool]] = {}
    with open(eval_dir / PREDICTIONS_FILE, encoding="utf-8") as f:
        for line in f:
            record = json.loads(line)
            hits.setdefault(size_of[record["task"]], []).append(
                record["rationale"] == gold[record["task"]][record["id"]])
    return {size: 100.0 * sum(flags) / len(flags) for size, flags in sorted(hits.items())}


def annotate_metrics(eval_dir: pathlib.Path, task: DemoTask, size_of: Mapping[str, int]) -> None:
    """Record each test task's size and distribution in the eval's metrics.json (the eval
    only knows the project's own tasks)."""
    path = eval_dir / METRICS_FILE
    metrics = json.loads(path.read_text("utf-8"))
    for name, size in size_of.items():
        metrics[name].update({task.unit: size, "distribution":
                              "in" if task.in_distribution(size) else "ood"})
    path.write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def plot(task: DemoTask, rows: Sequence[Mapping[str, Any]], path: pathlib.Path) -> pathlib.Path:
    """Accuracy per size, one line per student: the mean over seeds, bars from min to max."""
    import matplotlib  # pylint: disable=import-outside-toplevel
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel

    cells = summary(rows)
    sizes = _columns(rows)
    fig, ax = plt.subplots(figsize=(6, 4))
    for student, label in task.students.items():
        if (student, sizes[0]) not in cells:
            continue
        mean = [cells[student, s][0] for s in sizes]
        low = [cells[student, s][0] - cells[student, s][1] for s in sizes]
        high = [cells[student, s][2] - cells[student, s][0] for s in sizes]
        ax.errorbar(sizes, mean, yerr=[low, high], marker="o", capsize=4, label=label)
    ax.axvline(max(task.train_sizes) + 0.5, color="grey", linestyle=":", linewidth=1)
    ax.set_xticks(sizes)
    ax.set_xlabel(f"{task.unit} per question (right of the dotted line: out of distribution)")
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(-2, 102)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def merge_predictions(eval_dirs: Mapping[tuple[int, str], pathlib.Path], path: pathlib.Path) -> None:
    """Every eval's predictions.jsonl into one file with `seed` and `student` fields."""
    with open(path, "w", encoding="utf-8") as out:
        for (seed, student), directory in eval_dirs.items():
            with open(directory / PREDICTIONS_FILE, encoding="utf-8") as f:
                for line in f:
                    out.write(json.dumps({"seed": seed, "student": student, **json.loads(line)},
                                         ensure_ascii=False) + "\n")


def write_outputs(out: pathlib.Path, task: DemoTask, rows: Sequence[Mapping[str, Any]],
                  findings: Sequence[str], settings: Mapping[str, Any],
                  eval_dirs: Mapping[tuple[int, str], pathlib.Path],
                  sections: Sequence[str] = ()) -> dict[str, pathlib.Path]:
    """results.md (with the markdown `sections` after the per-seed tables), results.csv,
    accuracy_vs_<unit>.png and predictions.jsonl under `out`."""
    paths = {"markdown": out / "results.md", "csv": out / "results.csv",
             "plot": out / f"accuracy_vs_{task.unit}.png", "predictions": out / PREDICTIONS_FILE}
    with open(paths["csv"], "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    plot(task, rows, paths["plot"])
    merge_predictions(eval_dirs, paths["predictions"])
    seeds = sorted({row["seed"] for row in rows})
    text = [f"# {task.name} chain-of-thought distillation (t5x-cot demo)", "",
            f"Accuracy (%) of greedy answers, students trained from scratch on questions with "
            f"{'/'.join(map(str, task.train_sizes))} {task.unit}; mean ± half the range over "
            f"seeds {', '.join(map(str, seeds))}.", "", format_markdown(task, rows), "",
            *(f"- {line}" for line in findings),
            "- settings: " + ", ".join(f"{k} {v}" for k, v in settings.items()),
            f"- files: {paths['csv'].name}, {paths['plot'].name}, {PREDICTIONS_FILE}", ""]
    for seed in seeds:
        text += [f"## Seed {seed}", "",
                 format_markdown(task, [r for r in rows if r["seed"] == seed]), ""]
    text += [line for section in sections for line in (section, "")]
    paths["markdown"].write_text("\n".join(text), encoding="utf-8")
    return paths
