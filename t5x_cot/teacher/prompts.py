"""Few-shot chain-of-thought prompts for the teacher, in two modes.

Exact format (blocks separated by one blank line; the prompt ends right after "A:"):

plain (Wei et al. few-shot CoT)::

    Q: <exemplar question>
    A: <exemplar rationale> The answer is <exemplar answer>.

    ...

    Q: <question>
    A:

hint (Magister et al.: the teacher sees the gold answer and rationalises toward it).
Every block, exemplars included, carries the hint line, so the pattern is consistent::

    Q: <exemplar question>
    Hint: the correct answer is <exemplar answer>.
    A: <exemplar rationale> The answer is <exemplar answer>.

    ...

    Q: <question>
    Hint: the correct answer is <gold answer>.
    A:

The same text is the `prompt` of a completion request and the single user message of
a chat request. Generation stops at "\\nQ:" so the teacher writes one answer.

Exemplars come from an exemplar file (JSON keyed by dataset, each `{"prompt": "Q: ...
A: ... The answer is X.", "comment": ...}`, keys `gsm8k`, `strategy_qa`, `coin_flip`),
from the package's defaults (`default_exemplars.py`), or are drawn, seeded, from the
task's training split with gold rationales (`ExemplarPool`), never including the item
being annotated.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import random
import re
from collections.abc import Sequence

from t5x_cot.data.example import DataError, Example
from t5x_cot.teacher.default_exemplars import DEFAULT_EXEMPLARS

MODES = ("hint", "plain")
FILE_KEYS = {"gsm8k": "gsm8k", "strategyqa": "strategy_qa", "coinflip": "coin_flip"}
HINT_LINE = "Hint: the correct answer is {answer}."
ANSWER_SENTENCE = re.compile(r"\s*The answer is\s+(.+?)\.?\s*$", re.S)


@dataclasses.dataclass(frozen=True)
class Exemplar:
    """One worked example: question, rationale (without the answer sentence), answer."""

    question: str
    rationale: str
    answer: str


def parse_exemplars(text: str, source: str = "<exemplars>") -> list[Exemplar]:
    """Parse "Q: ...\\nA: ... The answer is X." blocks; DataError names the bad block."""
    blocks = [b for b in re.split(r"(?m)^Q:", text) if b.strip()]
    out = []
    for number, block in enumerate(blocks, start=1):
        question, sep, reply = block.partition("\nA:")
        if not sep:
            raise DataError(source, f"exemplar {number}: expected a line starting 'A:'",
                            field="prompt")
        match = ANSWER_SENTENCE.search(reply)
        if not match:
            raise DataError(source, f"exemplar {number}: expected the answer to end with "
                            f"'The answer is X.'", field="prompt")
        question = re.sub(r"\s*\n?Hint:.*$", "", question.strip(), flags=re.S)
        out.append(Exemplar(" ".join(question.split()), reply[:match.start()].strip(),
                            match.group(1).strip()))
    if not out:
        raise DataError(source, "expected at least one 'Q: ... A: ...' block", field="prompt")
    return out


def load_exemplars(task: str, path: str | os.PathLike | None = None) -> list[Exemplar]:
    """Exemplars for `task` from an exemplar JSON file, or the package defaults."""
    if path is None:
        return parse_exemplars(DEFAULT_EXEMPLARS[task], f"default exemplars for {task}")
    try:
        with open(path, encoding="utf-8") as fh:
            table = json.load(fh)
    except json.JSONDecodeError as err:
        raise DataError(path, f"expected a JSON object ({err.msg})", line=err.lineno) from None
    key = FILE_KEYS[task]
    if not isinstance(table, dict) or key not in table:
        raise DataError(path, f"expected a key {key!r} for task {task}", field=key)
    entry = table[key]
    if not isinstance(entry, dict) or not isinstance(entry.get("prompt"), str):
        raise DataError(path, "expected {\"prompt\": str, \"comment\": str}", field=key)
    return parse_exemplars(entry["prompt"], f"{os.fspath(path)} [{key}]")


def clean_gold_rationale(text: str) -> str:
    """A gold rationale as one line of prose: calculator annotations removed."""
    from t5x_cot.calculator import strip_annotations
    return " ".join(strip_annotations(text).split())


class ExemplarPool:
    """Exemplars drawn, seeded per item, from a training split with gold rationales."""

    def __init__(self, examples: Sequence[Example], k: int, seed: int):
        self.pool = [e for e in examples if e.rationale]
        if len(self.pool) <= k:
            raise ValueError(f"need more than {k} training examples with rationales, "
                             f"got {len(self.pool)}")
        self.k = k
        self.seed = seed

    def draw(self, item: Example) -> list[Exemplar]:
        """k exemplars for annotating `item`; never `item` itself (by id or question)."""
        rng = random.Random(f"{self.seed}:{item.id}")
        chosen: list[Exemplar] = []
        for example in rng.sample(self.pool, self.k + 1):
            if example.id == item.id or example.question == item.question:
                continue
            chosen.append(Exemplar(example.question, clean_gold_rationale(example.rationale),
                                   example.answer))
        return chosen[: self.k]


def _block(question: str, answer: str, mode: str, rationale: str | None) -> str:
    lines = [f"Q: {question}"]
    if mode == "hint":
        lines.append(HINT_LINE.format(answer=answer))
    lines.append(f"A: {rationale} The answer is {answer}." if rationale is not None else "A:")
    return "\n".join(lines)


def build_prompt(example: Example, exemplars: Sequence[Exemplar], mode: str) -> str:
    """The full prompt for annotating `example` (see the module docstring)."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    blocks = [_block(e.question, e.answer, mode, e.rationale) for e in exemplars]
    blocks.append(_block(example.question, example.answer, mode, None))
    return "\n\n".join(blocks)


def final_question(prompt: str) -> str | None:
    """The question a prompt of this module's format asks last (its hint dropped), or None
    when `prompt` is not in that format. A student trained on bare questions reads this.
    Linear in the prompt's length (prompts may come from untrusted clients)."""
    text = prompt.rstrip()
    if not text.endswith("\nA:"):
        return None
    block = text[:-len("\nA:")]
    block = block[block.rfind("\n\n") + 2:] if "\n\n" in block else block
    if not block.startswith("Q:"):
        return None
    question, hint_sep, hint = block[len("Q:"):].rpartition("\nHint: ")
    if not hint_sep or "\n" in hint:
        question = block[len("Q:"):]
    return question.strip() or None


def prompt_id(task: str, mode: str, exemplars: Sequence[Exemplar] | str) -> str:
    """Short id of the template and exemplar set ("pool:<seed>:<k>" for drawn sets)."""
    if isinstance(exemplars, str):
        return f"{task}-{mode}-{exemplars}"
    blob = json.dumps([dataclasses.astuple(e) for e in exemplars], ensure_ascii=False)
    return f"{task}-{mode}-{hashlib.sha256(blob.encode()).hexdigest()[:12]}"
