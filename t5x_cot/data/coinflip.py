"""Coinflip (Wei et al. 2022): symbolic state tracking, generated here.

A question names people in turn, each of whom flips the coin or does not:

    A coin is heads up. Ka flips the coin. Sherrie does not flip the coin.
    Is the coin still heads up?

(one line, single spaces). The answer is "yes" when the number of flips is even. The paper
trains in distribution on 2 people and tests out of distribution on 3 and 4. Generation is
seeded and reproducible across Python and platform versions (only `random.Random.random`, whose
stream Python guarantees, drives it); names come from the project's list `names.txt`; every
question has distinct people, no question repeats within a generated set, and the answers are
balanced (exactly half "yes" for an even count, one more "yes" for an odd count).
"""
from __future__ import annotations

import functools
import importlib.resources
import math
import random
import re
from collections.abc import Sequence

from t5x_cot.data.example import DataError, Example

QUESTION_START = "A coin is heads up."
QUESTION_END = "Is the coin still heads up?"
# Kojima et al.'s version of the questions (used by the few-shot exemplars) appends this note.
NOTE = 'Note that "flip" here means "reverse".'

Flip = tuple[str, bool]

_NAME = re.compile(r"[^\s.?](?:[^.?]*[^\s.?])?")
_STEP = re.compile(r" (?P<name>[^.?]+?) (?P<verb>flips|does not flip) the coin\.")
_QUESTION = re.compile(
    re.escape(QUESTION_START) + r"(?P<steps>(?:" + _STEP.pattern + r")+) "
    + re.escape(QUESTION_END) + r"(?: " + re.escape(NOTE) + r")?")


@functools.cache
def default_names() -> tuple[str, ...]:
    """The project's first names (package data `t5x_cot/data/names.txt`), in file order."""
    text = importlib.resources.files("t5x_cot.data").joinpath("names.txt").read_text("utf-8")
    lines = (line.strip() for line in text.splitlines())
    return tuple(line for line in lines if line and not line.startswith("#"))


def make_question(names: Sequence[str], flips: Sequence[bool]) -> str:
    """The question in which `names[i]` flips the coin when `flips[i]`."""
    if not names or len(names) != len(flips):
        raise ValueError(f"need one flip per person and at least one person, got "
                         f"{len(names)} names and {len(flips)} flips")
    for name in names:
        if not _NAME.fullmatch(name):
            raise ValueError(f"a name must be non-empty text without '.' or '?', got {name!r}")
    steps = " ".join(f"{name} flips the coin." if flipped else f"{name} does not flip the coin."
                     for name, flipped in zip(names, flips))
    return f"{QUESTION_START} {steps} {QUESTION_END}"


def parse_question(text: str) -> list[Flip]:
    """The (name, flipped) steps of a Coinflip question, in order.

    Whitespace differences are ignored and Kojima et al.'s trailing note is accepted.
    Raises DataError (field "question") when `text` is not a Coinflip question.
    """
    match = _QUESTION.fullmatch(" ".join(text.split()))
    if match is None:
        shown = text if len(text) <= 120 else text[:117] + "..."
        raise DataError("coinflip question", f"expected '{QUESTION_START} <name> flips the coin. "
                        f"<name> does not flip the coin. ... {QUESTION_END}', got {shown!r}",
                        field="question")
    return [(step["name"], step["verb"] == "flips") for step in _STEP.finditer(match["steps"])]


def answer_for(flips: Sequence[Flip] | Sequence[bool]) -> str:
    """"yes" if the coin is still heads up after these steps, else "no".

    `flips` is what `parse_question` returns, or just the flipped flags.
    """
    count = sum(1 for step in flips if (step[1] if isinstance(step, tuple) else step))
    return "yes" if count % 2 == 0 else "no"


def _people(names: Sequence[str]) -> str:
    if not names:
        return "no one"
    if len(names) == 1:
        return names[0]
    return ", ".join(names[:-1]) + " and " + names[-1]


RATIONALE_STYLES = ("exemplar", "trace")


def _exemplar_rationale(flips: Sequence[Flip]) -> str:
    flipped = [name for name, did_flip in flips if did_flip]
    count = len(flipped)
    times = "time" if count == 1 else "times"
    if count % 2 == 0:
        parity, outcome = "even", "it will still be heads up"
    else:
        parity, outcome = "odd", "it will be tails up"
    return (f"The coin was flipped by {_people(flipped)}. So the coin was flipped {count} "
            f"{times}, which is an {parity} number. The coin started heads up, so after an "
            f"{parity} number of flips, {outcome}.")


def _trace_rationale(flips: Sequence[Flip]) -> str:
    heads = True
    steps = ["The coin starts heads up."]
    for name, did_flip in flips:
        heads ^= did_flip
        side = "heads" if heads else "tails"
        steps.append(f"{name} flips it, so it is {side} up." if did_flip
                     else f"{name} does not flip it, so it is still {side} up.")
    return " ".join(steps)


def symbolic_rationale(flips: Sequence[Flip], style: str = "exemplar") -> str:
    """A correct step-by-step rationale, ending before the answer sentence.

    style "exemplar" (Wei et al.'s exemplars) counts the flips: "The coin was flipped by Ka.
    So the coin was flipped 1 time, which is an odd number. The coin started heads up, so
    after an odd number of flips, it will be tails up."

    style "trace" tracks the coin's side person by person, one local step each: "The coin
    starts heads up. Ka flips it, so it is tails up. Sherrie does not flip it, so it is still
    tails up." Every step depends only on the previous side and one person's action, so the
    same steps apply to any number of people (the exemplar style needs counting up to the
    number of people instead).
    """
    if style == "exemplar":
        return _exemplar_rationale(flips)
    if style == "trace":
        return _trace_rationale(flips)
    raise ValueError(f"unknown rationale style {style!r}; expected one of {RATIONALE_STYLES}")


def _below(rng: random.Random, n: int) -> int:
    """A uniform integer in [0, n) from `rng.random()` alone (n is small here)."""
    return int(rng.random() * n)


def _shuffle(rng: random.Random, items: list) -> None:
    for i in range(len(items) - 1, 0, -1):
        j = _below(rng, i + 1)
        items[i], items[j] = items[j], items[i]


def _sample(rng: random.Random, population: Sequence[str], k: int) -> list[str]:
    pool = list(population)
    for i in range(k):
        j = i + _below(rng, len(pool) - i)
        pool[i], pool[j] = pool[j], pool[i]
    return pool[:k]


def generate(num_examples: int, num_people: int, seed: int, split: str = "train",
             names: Sequence[str] | None = None) -> list[Example]:
    """`num_examples` distinct questions with `num_people` distinct people each.

    The same (num_examples, num_people, seed, split, names) always gives the same list;
    another seed or split gives an independent set (which can share a question by chance:
    2 of the 235 default names make about 220,000 distinct questions). Ids are
    `coinflip-<split>-p<num_people>-s<seed>-<index>`; the rationale is `symbolic_rationale`.
    """
    names = tuple(default_names() if names is None else names)
    if num_people < 1 or num_people > len(names) or len(set(names)) != len(names):
        raise ValueError(f"need 1 <= num_people <= {len(set(names))} distinct names, "
                         f"got num_people={num_people}")
    if num_examples < 0:
        raise ValueError(f"num_examples must be >= 0, got {num_examples}")
    per_answer = math.perm(len(names), num_people) * 2 ** (num_people - 1)
    if (num_examples + 1) // 2 > per_answer:
        raise ValueError(f"only {2 * per_answer} distinct questions exist with {num_people} "
                         f"of {len(names)} names; asked for {num_examples}")
    rng = random.Random(f"coinflip/{split}/{num_people}/{seed}")
    wants_yes = [i % 2 == 0 for i in range(num_examples)]
    _shuffle(rng, wants_yes)
    seen: set[str] = set()
    examples = []
    for index, yes in enumerate(wants_yes):
        while True:
            people = _sample(rng, names, num_people)
            flips = [_below(rng, 2) == 1 for _ in range(num_people - 1)]
            # The last person restores the wanted parity: uniform over that answer's questions.
            flips.append((sum(flips) % 2 == 0) != yes)
            question = make_question(people, flips)
            if question not in seen:
                break
        seen.add(question)
        steps = list(zip(people, flips))
        examples.append(Example(
            id=f"coinflip-{split}-p{num_people}-s{seed}-{index:05d}", task="coinflip",
            split=split, question=question, answer=answer_for(steps),
            rationale=symbolic_rationale(steps)))
    return examples
