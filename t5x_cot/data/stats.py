"""Dataset statistics: counts, answer balance, lengths in words and T5 tokens, calculator check.

`collect` returns plain JSON-ready dicts; `t5x_cot.data.cli` prints them. Token counts are
T5 SentencePiece pieces (no EOS), computed with the `sentencepiece` package directly.
"""
from __future__ import annotations

import math
import pathlib
import statistics
from collections.abc import Callable, Sequence

from t5x_cot import calculator
from t5x_cot.data import coinflip, gsm8k, strategyqa
from t5x_cot.data.download import MANIFEST, sha256_file
from t5x_cot.data.example import DataError, Example

Encoder = Callable[[list[str]], list[list[int]]]

# (task, split) of the dataset files; Coinflip sets are generated.
FILE_SPLITS = (("gsm8k", "train"), ("gsm8k", "test"), ("strategyqa", "train"),
               ("strategyqa", "dev"))
COINFLIP_PEOPLE = ((2, "2 people (ID)"), (3, "3 people (OOD)"), (4, "4 people (OOD)"))
_READERS = {"gsm8k": gsm8k, "strategyqa": strategyqa}


def load_encoder(vocab_path: pathlib.Path) -> tuple[Encoder, int]:
    """(batch encode function, number of pieces) of a SentencePiece model file."""
    import sentencepiece  # only here: `t5x-cot` must start without it

    processor = sentencepiece.SentencePieceProcessor(model_file=str(vocab_path))
    return processor.encode, processor.get_piece_size()


def summarize(values: Sequence[int]) -> dict[str, float]:
    """mean, median (p50), p95 (nearest rank) and max of a non-empty list of counts."""
    ordered = sorted(values)
    p95 = ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]
    return {"mean": statistics.fmean(ordered), "p50": statistics.median_low(ordered),
            "p95": p95, "max": ordered[-1]}


def answer_summary(examples: Sequence[Example]) -> dict:
    """Yes/no shares, or for numeric answers: integer share, negatives, min/median/max."""
    answers = [e.answer for e in examples]
    if set(answers) <= {"yes", "no"}:
        yes = sum(a == "yes" for a in answers)
        return {"kind": "yesno", "yes": yes, "no": len(answers) - yes,
                "yes_share": yes / len(answers)}
    values = [float(a) for a in answers]
    return {"kind": "number", "integers": sum(v.is_integer() for v in values),
            "negative": sum(v < 0 for v in values), "min": min(values),
            "median": statistics.median(values), "max": max(values)}


def rationale_text(example: Example) -> str:
    """The gold rationale as a student would see it (GSM8K: calculator markup removed)."""
    text = example.rationale or ""
    return calculator.strip_annotations(text) if example.task == "gsm8k" else text


def split_stats(task: str, split: str, label: str, examples: Sequence[Example],
                encode: Encoder | None) -> dict:
    """One table row: counts, answers, and length summaries of questions and rationales."""
    rationales = [rationale_text(e) for e in examples]
    row = {"task": task, "split": split, "label": label, "examples": len(examples),
           "answers": answer_summary(examples),
           "rationale_words": summarize([len(r.split()) for r in rationales])}
    if encode is not None:
        row["question_tokens"] = summarize([len(t) for t in encode([e.question for e in examples])])
        row["rationale_tokens"] = summarize([len(t) for t in encode(rationales)])
    return row


def calculator_check(split: str, examples: Sequence[Example]) -> dict:
    """Recompute every GSM8K `<<expr=result>>` annotation with `t5x_cot.calculator`."""
    total, mismatches = 0, []
    for example in examples:
        total += len(calculator.find_annotations(example.rationale or ""))
        for mismatch in calculator.recompute_annotations(example.rationale or "")[1]:
            mismatches.append({"id": example.id, "expr": mismatch.annotation.expr,
                               "written": mismatch.annotation.result,
                               "computed": mismatch.computed, "error": mismatch.error})
    return {"split": split, "total": total, "matched": total - len(mismatches),
            "mismatches": mismatches}


def file_status(data_dir: pathlib.Path) -> dict[str, str]:
    """{path in the data dir: "ok" | "missing" | "modified"} for every published file."""
    status = {}
    for entry in MANIFEST:
        path = data_dir / entry.path
        if not path.is_file():
            status[entry.path] = "missing"
        else:
            status[entry.path] = "ok" if sha256_file(path) == entry.sha256 else "modified"
    return status


def collect(data_dir: pathlib.Path, vocab_path: pathlib.Path | None,
            coinflip_examples: int = 1000, coinflip_seed: int = 0) -> dict:
    """Every statistic, for the files present; missing files are listed, not fatal.

    A malformed file is reported under "errors" (its DataError message) and skipped.
    """
    encode, pieces = (None, None)
    if vocab_path is not None and vocab_path.is_file():
        encode, pieces = load_encoder(vocab_path)
    result = {"data_dir": str(data_dir), "files": file_status(data_dir),
              "vocab": str(vocab_path) if encode else None, "vocab_pieces": pieces,
              "rows": [], "calculator": [], "errors": []}
    for task, split in FILE_SPLITS:
        reader = _READERS[task]
        if not reader.split_path(data_dir, split).is_file():
            continue
        try:
            examples = reader.load(split, data_dir)
        except DataError as err:
            result["errors"].append(str(err))
            continue
        result["rows"].append(split_stats(task, split, split, examples, encode))
        if task == "gsm8k":
            result["calculator"].append(calculator_check(split, examples))
    for people, label in COINFLIP_PEOPLE:
        examples = coinflip.generate(coinflip_examples, people, coinflip_seed, "test")
        result["rows"].append(split_stats("coinflip", f"test-p{people}", label, examples, encode))
    return result
