"""The answer grammar (`t5x_cot.answers.extract_answer`) on real large-model CoT output.

    python bench/answer_grammar.py [--fixture tests/data/answer_outputs/faithful_cot_sample.jsonl]
        [--kojima GIT_DIR] [--faithful-cot GIT_DIR] [--plan-and-solve GIT_DIR]
        [--json OUT] [--disagreements OUT] [--write-fixture OUT --per-group N]

Reads published model completions together with their gold answers and the answer the
publishing project extracted itself, runs our one parsing function on every completion, and
prints a table per (source, dataset): n, our accuracy against gold, the source's own accuracy,
our agreement with the source's extracted answer (both None counts as agreeing), the same
agreement over the completions where both gave an answer, and how many gave us none.

Sources (each a bare git directory of the public repository, read with `git show HEAD:path`):
- `--kojima`: kojima-takeshi188/zero_shot_cot `log/*_zero_shot_cot.log` and `log/*_zero_shot.log`
  (text-davinci-002, zero-shot-CoT with the "Therefore, the answer (...) is" second stage).
- `--faithful-cot`: veronica320/Faithful-COT
  `output_dir/<dataset>/test/<model>_COT/predictions.jsonl` with gold from
  `data/<dataset>/test.jsonl` (few-shot CoT: gpt4, gpt-3.5-turbo, text-davinci-003,
  code-davinci-002).
- `--plan-and-solve`: AGI-Edgerunners/Plan-and-Solve-Prompting `generated_result/*.json`
  (text-davinci-003, free-form plan-and-solve completions that often state no marked answer).
- `--fixture`: the small MIT-licensed sample of Faithful-COT shipped under `tests/data/`, one JSON
  object per line: source, dataset, answer_type, completion, gold, source_answer.

`--write-fixture OUT` writes up to `--per-group` records per (model, dataset) of `--faithful-cot`
(the first ones by id; GSM8K, SVAMP, StrategyQA, sports, AQUA) in the fixture format: that is
how the shipped fixture was made.
"""
from __future__ import annotations

import argparse
import collections
import dataclasses
import json
import pathlib
import re
import subprocess
import sys
from collections.abc import Iterable, Iterator

from t5x_cot import answers


@dataclasses.dataclass(frozen=True)
class Sample:
    """One published completion with its gold answer and the source's own extracted answer."""
    source: str
    dataset: str
    answer_type: str
    completion: str
    gold: str
    source_answer: str | None


def _git_show(git_dir: str, path: str) -> str:
    return subprocess.run(["git", "--git-dir", git_dir, "show", f"HEAD:{path}"], check=True,
                          capture_output=True, text=True).stdout


KOJIMA_LOGS = {"gsm8k": "number", "strategyqa": "yesno", "coin_flip": "yesno", "aqua": "choice",
               "commonsensqa": "choice", "svamp": "number", "multiarith": "number"}
_KOJIMA_RECORD = re.compile(
    r"\nA: (?P<completion>.*?)\npred_before :.*?\npred_after : (?P<source>[^\n]*)\n"
    r".*?\nGT : (?P<gold>[^\n]*)",
    re.DOTALL)


def kojima(git_dir: str) -> Iterator[Sample]:
    """Zero-shot and zero-shot-CoT logs of Kojima et al. (2022)."""
    for dataset, answer_type in KOJIMA_LOGS.items():
        for method in ("zero_shot_cot", "zero_shot"):
            text = _git_show(git_dir, f"log/{dataset}_{method}.log")
            for match in _KOJIMA_RECORD.finditer(text):
                source = match.group("source").strip()
                yield Sample(f"kojima/{method}", dataset, answer_type, match.group("completion"),
                             match.group("gold").strip(), source or None)


FAITHFUL_DATASETS = {"GSM8K": "number", "SVAMP": "number", "MultiArith": "number",
                     "StrategyQA": "yesno", "sports": "yesno", "AQUA": "choice"}
FAITHFUL_MODELS = ("gpt4", "gpt-3.5-turbo", "text003", "code002")
# The shipped fixture leaves MultiArith out: its license is not stated.
FIXTURE_DATASETS = ("GSM8K", "SVAMP", "StrategyQA", "sports", "AQUA")


def _faithful_answer(dataset: str, answer: str) -> str:
    """Gold or extracted answer as our grammar writes it (sports labels are "1"/"0", GSM8K's
    gold is the whole solution ending in "#### X")."""
    if dataset == "sports":
        return {"1": "yes", "0": "no"}.get(answer, answer)
    return answer.rpartition("####")[2].strip() if "####" in answer else answer


def faithful_cot(git_dir: str, datasets: Iterable[str] = tuple(FAITHFUL_DATASETS)
                 ) -> Iterator[Sample]:
    """Few-shot CoT predictions published with Faithful-CoT (Lyu et al., 2023; MIT license)."""
    for dataset in datasets:
        answer_type = FAITHFUL_DATASETS[dataset]
        gold = {str(r["id"]): _faithful_answer(dataset, str(r["answer"])) for r in
                map(json.loads, _git_show(git_dir, f"data/{dataset}/test.jsonl").splitlines())}
        for model in FAITHFUL_MODELS:
            path = f"output_dir/{dataset}/test/{model}_COT/predictions.jsonl"
            for record in map(json.loads, _git_show(git_dir, path).splitlines()):
                source = _faithful_answer(dataset, str(record["answer"]))
                yield Sample(f"faithful_cot/{model}", dataset, answer_type, record["completion"],
                             gold[str(record["id"])], None if source == "[invalid]" else source)


PLAN_AND_SOLVE = {"gsm8k-zero_shot-305": ("gsm8k", "number"),
                  "StrategyQA-zero_shot-306": ("strategyqa", "yesno"),
                  "coin_flip-zero_shot-304": ("coin_flip", "yesno"),
                  "AQuA-zero_shot-305": ("aqua", "choice"),
                  "CommensenseQA-zero_shot-302": ("commonsenseqa", "choice")}


def plan_and_solve(git_dir: str) -> Iterator[Sample]:
    """Plan-and-Solve (Wang et al., 2023) text-davinci-003 completions."""
    for stem, (dataset, answer_type) in PLAN_AND_SOLVE.items():
        records = json.loads(_git_show(git_dir, f"generated_result/{stem}-text-davinci-003.json"))
        for record in records:
            source = str(record["pred"]).strip()
            yield Sample("plan_and_solve/text003", dataset, answer_type,
                         record["chain-of-thought"], str(record["answer"]), source or None)


_FIELDS = {field.name for field in dataclasses.fields(Sample)}


def fixture(path: str) -> Iterator[Sample]:
    """Samples from a fixture file (one JSON object per line, `Sample`'s fields)."""
    for number, line in enumerate(pathlib.Path(path).read_text(encoding="utf-8").splitlines(), 1):
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise SystemExit(f"{path}:{number}: not valid JSON ({error.msg})") from None
        if not isinstance(record, dict) or set(record) != _FIELDS:
            raise SystemExit(f"{path}:{number}: expected an object with the fields "
                             f"{sorted(_FIELDS)}")
        if record["answer_type"] not in answers.TYPES:
            raise SystemExit(f"{path}:{number}: field answer_type: expected one of "
                             f"{list(answers.TYPES)}, got {record['answer_type']!r}")
        yield Sample(**record)


def _agrees(ours: str | None, theirs: str | None, answer_type: str) -> bool:
    if ours is None or theirs is None:
        return ours is None and theirs is None
    return answers.is_correct(ours, theirs, answer_type)


def evaluate(samples: Iterable[Sample]) -> tuple[list[dict], list[dict]]:
    """(one row per (source, dataset), the samples where we and the source differ)."""
    rows: dict[tuple[str, str], collections.Counter] = collections.defaultdict(collections.Counter)
    differences = []
    for sample in samples:
        ours = answers.extract_answer(sample.completion, sample.answer_type)
        counts = rows[(sample.source, sample.dataset)]
        counts["n"] += 1
        counts["ours_correct"] += answers.is_correct(ours, sample.gold, sample.answer_type)
        counts["source_correct"] += answers.is_correct(sample.source_answer, sample.gold,
                                                       sample.answer_type)
        counts["ours_none"] += ours is None
        agree = _agrees(ours, sample.source_answer, sample.answer_type)
        counts["agree"] += agree
        if ours is not None and sample.source_answer is not None:
            counts["both"] += 1
            counts["both_agree"] += agree
        if not agree:
            differences.append({**dataclasses.asdict(sample), "ours": ours})
    table = [{"source": source, "dataset": dataset, "n": c["n"],
              "ours_accuracy": c["ours_correct"] / c["n"],
              "source_accuracy": c["source_correct"] / c["n"],
              "agreement": c["agree"] / c["n"], "both_answered": c["both"],
              "agreement_both_answered": c["both_agree"] / c["both"] if c["both"] else None,
              "ours_none": c["ours_none"]}
             for (source, dataset), c in rows.items()]
    return table, differences


def _markdown(table: list[dict]) -> str:
    lines = ["| source | dataset | n | ours vs gold | source vs gold | agreement | both answered "
             "| agreement there | ours None |", "| --- | --- |" + " ---: |" * 7]
    for row in table:
        both = row["agreement_both_answered"]
        lines.append(f"| {row['source']} | {row['dataset']} | {row['n']} "
                     f"| {row['ours_accuracy']:.3f} | {row['source_accuracy']:.3f} "
                     f"| {row['agreement']:.3f} | {row['both_answered']} "
                     f"| {'-' if both is None else f'{both:.3f}'} | {row['ours_none']} |")
    total = sum(row["n"] for row in table)
    lines.append(f"\ntotal n = {total}")
    return "\n".join(lines)


def write_fixture(samples: Iterable[Sample], out: str, per_group: int) -> int:
    """Write up to `per_group` samples per (source, dataset); returns how many were written."""
    kept: collections.Counter = collections.Counter()
    with open(out, "w", encoding="utf-8") as f:
        for sample in samples:
            if kept[(sample.source, sample.dataset)] < per_group:
                kept[(sample.source, sample.dataset)] += 1
                f.write(json.dumps(dataclasses.asdict(sample), ensure_ascii=False) + "\n")
    return sum(kept.values())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fixture", action="append", default=[])
    parser.add_argument("--kojima")
    parser.add_argument("--faithful-cot")
    parser.add_argument("--plan-and-solve")
    parser.add_argument("--json", help="write the table as JSON here")
    parser.add_argument("--disagreements", help="write the differing samples as JSONL here")
    parser.add_argument("--write-fixture", help="write a fixture from --faithful-cot here")
    parser.add_argument("--per-group", type=int, default=20)
    args = parser.parse_args(argv)
    if args.write_fixture:
        if not args.faithful_cot:
            parser.error("--write-fixture needs --faithful-cot")
        samples = faithful_cot(args.faithful_cot, FIXTURE_DATASETS)
        written = write_fixture(samples, args.write_fixture, args.per_group)
        print(f"wrote {written} samples to {args.write_fixture}")
        return 0
    sources = ((kojima, args.kojima), (faithful_cot, args.faithful_cot),
               (plan_and_solve, args.plan_and_solve))
    loaders = [(fixture, path) for path in args.fixture] + [
        (loader, where) for loader, where in sources if where]
    if not loaders:
        parser.error("give at least one of --fixture, --kojima, --faithful-cot, --plan-and-solve")
    samples = [sample for loader, where in loaders for sample in loader(where)]
    table, differences = evaluate(samples)
    print(_markdown(table))
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(table, indent=1), encoding="utf-8")
    if args.disagreements:
        with open(args.disagreements, "w", encoding="utf-8") as f:
            for record in differences:
                f.write(json.dumps(record, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
