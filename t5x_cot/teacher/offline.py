"""Teachers that need no endpoint: `gold` (human rationales) and `symbolic` (Coinflip).

Both produce "completions" in the store's entry format, which then go through the same
filter and record writer as endpoint completions:

* gold: GSM8K's human solution (calculator annotations stripped unless
  `keep_annotations`; lines joined into one paragraph) or StrategyQA's facts joined,
  followed by "The answer is <gold>.".
* symbolic: Coinflip only; the puzzle is parsed from the question and
  `coinflip.symbolic_rationale` writes the reasoning (`style` "exemplar" or "trace").
  With `error_rate` > 0 a deterministic (by `seed` and example id) fraction of items get
  a rationale for a puzzle with one person's action reversed, ending in the wrong answer,
  so the filter has something to drop.
"""
from __future__ import annotations

import random
from collections.abc import Sequence

from t5x_cot.data.example import Example

OFFLINE_TEACHERS = ("gold", "symbolic")


def gold_text(example: Example, keep_annotations: bool = False) -> str:
    """The gold rationale plus the answer sentence ("" when the example has none)."""
    from t5x_cot import answers, calculator
    if not example.rationale:
        return ""
    text = example.rationale if keep_annotations else calculator.strip_annotations(
        example.rationale)
    return answers.format_target(" ".join(text.split()), example.answer)


def is_corrupted(example: Example, error_rate: float, seed: int) -> bool:
    """Whether the symbolic teacher writes a wrong rationale for this example."""
    return error_rate > 0 and random.Random(f"{seed}:{example.id}").random() < error_rate


def symbolic_text(example: Example, error_rate: float = 0.0, seed: int = 0,
                  style: str = "exemplar") -> str:
    """A symbolic Coinflip rationale plus the answer sentence (wrong for corrupted items)."""
    from t5x_cot import answers
    from t5x_cot.data import coinflip
    flips = coinflip.parse_question(example.question)
    if is_corrupted(example, error_rate, seed):
        pos = random.Random(f"{seed}:{example.id}:step").randrange(len(flips))
        name, flipped = flips[pos]
        flips = [*flips[:pos], (name, not flipped), *flips[pos + 1:]]
    return answers.format_target(coinflip.symbolic_rationale(flips, style),
                                 coinflip.answer_for(flips))


def offline_texts(teacher: str, examples: Sequence[Example], *, keep_annotations: bool = False,
                  error_rate: float = 0.0, seed: int = 0, style: str = "exemplar") -> list[str]:
    """The offline teacher's text for each example."""
    if teacher == "gold":
        return [gold_text(ex, keep_annotations) for ex in examples]
    if teacher == "symbolic":
        bad = [ex.task for ex in examples if ex.task != "coinflip"]
        if bad:
            raise ValueError(f"the symbolic teacher only handles coinflip, not {bad[0]}")
        return [symbolic_text(ex, error_rate, seed, style) for ex in examples]
    raise ValueError(f"unknown offline teacher {teacher!r}; expected one of {OFFLINE_TEACHERS}")
