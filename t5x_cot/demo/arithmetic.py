"""Multi-step arithmetic word problems in GSM8K's style and annotation format.

    Ann has 23 apples. She buys 5 more. She gives 7 away. How many apples does she have?
    23 + 5 = <<23+5=28>>28. 28 - 7 = <<28-7=21>>21.            (then "The answer is 21.")

A problem is a start count and a list of steps, each adding or taking away a number; the
running total stays within [0, max_total]. `parse_question` reads a problem back from its
text (the symbolic teacher works from the question alone, as an endpoint teacher would);
`rationales` holds the teacher's rationale designs (the annotated equations above are the
`equations` design).
Pure Python: no TF, no JAX.
"""
from __future__ import annotations

import dataclasses
import random
import re
from collections.abc import Sequence

from t5x_cot.data.example import Example
from t5x_cot.demo import rationales
from t5x_cot.demo.problem import Problem

DATASET = "gsm8k"  # the answer grammar, metrics and calculator of GSM8K
PEOPLE = (("Ann", "She"), ("Ben", "He"), ("Mia", "She"), ("Tom", "He"), ("Eva", "She"),
          ("Sam", "He"), ("Lily", "She"), ("Max", "He"))
ITEMS = ("apples", "books", "stickers", "marbles", "coins", "pencils", "cards", "shells")
GAINS = ("buys {n} more", "finds {n} more", "gets {n} more", "wins {n} more")
LOSSES = ("gives {n} away", "loses {n}", "sells {n}", "uses {n}")
_PHRASES = [(phrase, "+") for phrase in GAINS] + [(phrase, "-") for phrase in LOSSES]
_STEP = re.compile("(?:He|She) (?:" + "|".join(
    re.escape(p).replace(r"\{n\}", fr"(?P<n{i}>\d+)") for i, (p, _) in enumerate(_PHRASES))
    + ")")
_START = re.compile(r"(?P<name>[A-Z][a-z]+) has (?P<n>\d+) (?P<item>[a-z]+)")
_ASK = re.compile(r"How many (?P<item>[a-z]+) does (?:he|she) have\?")


class QuestionFormatError(ValueError):
    """A question text that is not one of this module's problems."""


@dataclasses.dataclass(frozen=True)
class NumberRanges:
    """Where a problem's numbers come from (bounds inclusive)."""

    start: tuple[int, int] = (10, 50)
    operand: tuple[int, int] = (1, 9)
    max_total: int = 99


def draw_problem(rng: random.Random, num_steps: int, ranges: NumberRanges) -> Problem:
    """A random problem with `num_steps` steps whose totals stay in [0, ranges.max_total]."""
    start = total = rng.randint(*ranges.start)
    steps = []
    for _ in range(num_steps):
        amount = rng.randint(*ranges.operand)
        can_add, can_take = total + amount <= ranges.max_total, total - amount >= 0
        if not (can_add or can_take):
            amount = rng.randint(ranges.operand[0], total) if total >= ranges.operand[0] else 0
            can_take = True
        op = rng.choice("+-") if can_add and can_take else ("+" if can_add else "-")
        steps.append((op, amount))
        total = total + amount if op == "+" else total - amount
    return Problem(start, tuple(steps))


def question_text(problem: Problem, rng: random.Random) -> str:
    """The word problem: a person, an item, one sentence per step, the question."""
    name, pronoun = rng.choice(PEOPLE)
    item = rng.choice(ITEMS)
    sentences = [f"{name} has {problem.start} {item}."]
    for op, amount in problem.steps:
        phrase = rng.choice(GAINS if op == "+" else LOSSES)
        sentences.append(f"{pronoun} {phrase.format(n=amount)}.")
    sentences.append(f"How many {item} does {pronoun.lower()} have?")
    return " ".join(sentences)


def parse_question(question: str) -> Problem:
    """The problem a question states; raises QuestionFormatError for any other text."""
    sentences = [s.strip() for s in re.split(r"(?<=[.?])\s+", question.strip()) if s.strip()]
    if len(sentences) < 2:
        raise QuestionFormatError(f"not a word problem: {question!r}")
    first, *middle, last = sentences
    start = _START.fullmatch(first.rstrip("."))
    ask = _ASK.fullmatch(last)
    if start is None or ask is None or ask["item"] != start["item"]:
        raise QuestionFormatError(f"no start count or question in {question!r}")
    steps, clauses = [], []
    for sentence in middle:
        match = _STEP.fullmatch(sentence.rstrip("."))
        if match is None:
            raise QuestionFormatError(f"unknown step {sentence!r} in {question!r}")
        index, amount = next((int(k[1:]), int(v)) for k, v in match.groupdict().items() if v)
        steps.append((_PHRASES[index][1], amount))
        clauses.append(sentence)
    return Problem(int(start["n"]), tuple(steps), tuple(clauses), last, first)


def generate(num_examples: int, num_steps: int | Sequence[int], seed: int, split: str,
             ranges: NumberRanges = NumberRanges(), exclude: frozenset[str] = frozenset(),
             style: str = rationales.DEFAULT_STYLE) -> list[Example]:
    """`num_examples` distinct problems (steps cycling through `num_steps`), none of whose
    question text is in `exclude`; gold rationales of design `style` (`rationales`)."""
    step_counts = [num_steps] if isinstance(num_steps, int) else list(num_steps)
    rng = random.Random(f"arithmetic:{seed}:{split}")
    examples: list[Example] = []
    seen = set(exclude)
    attempts = 0
    while len(examples) < num_examples:
        attempts += 1
        if attempts > 50 * num_examples + 1000:
            raise ValueError(f"cannot draw {num_examples} distinct problems with {step_counts} "
                             f"steps and {ranges}")
        problem = draw_problem(rng, step_counts[len(examples) % len(step_counts)], ranges)
        question = question_text(problem, rng)
        if question in seen:
            continue
        seen.add(question)
        examples.append(Example(id=f"arith-{split}-{seed}-{len(examples)}", task=DATASET,
                                split=split, question=question, answer=str(problem.answer),
                                rationale=rationales.write(parse_question(question), style)))
    return examples
