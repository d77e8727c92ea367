"""The symbolic teacher's rationale designs for the arithmetic word problems.

Every design writes the same GSM8K-annotated equation per step (`13 - 4 = <<13-4=9>>9.`, so
the calculator in the loop works on all of them); they differ in how a step finds the
sentence it uses and how the rationale knows it is done. For the question
`Ann has 7 marbles. She sells 3. She finds 9 more. How many marbles does she have?`:

* `equations`, the equations alone: step k has to find the k-th sentence of the question,
  a position a student never saw past the step counts it was trained on, and the stop
  follows the lengths seen in training.
      7 - 3 = <<7-3=4>>4. 4 + 9 = <<4+9=13>>13.
* `clauses`: each step first copies the sentence it uses, and the rationale ends by
  copying the question's last sentence, so the stop is tied to the question's text.
      She sells 3: 7 - 3 = <<7-3=4>>4. She finds 9 more: 4 + 9 = <<4+9=13>>13.
      How many marbles does she have?
* `window`: each step copies two consecutive sentences of the question, the one the
  previous step used and the next, so every copy continues text it has just written (the
  question's own context), and the rationale ends by copying the question's last sentence.
      Ann has 7 marbles. She sells 3: 7 - 3 = <<7-3=4>>4. She sells 3. She finds 9 more:
      4 + 9 = <<4+9=13>>13. She finds 9 more. How many marbles does she have?
* `remaining`: after each step the rest of the problem is restated (the new total and
  the sentences not used yet), so the next step always reads the first sentence left and
  the rationale ends when none is left.
      7 - 3 = <<7-3=4>>4. She has 4. She finds 9 more. 4 + 9 = <<4+9=13>>13. She has 13.

`write` takes a problem read back from its question (`arithmetic.parse_question`), which
holds the question's sentences. Pure Python.
"""
from __future__ import annotations

from collections.abc import Sequence

from t5x_cot.demo.problem import Problem

STYLES = ("equations", "clauses", "window", "remaining")
DEFAULT_STYLE = "equations"


def equation(before: int, op: str, amount: int, total: int) -> str:
    """One annotated step: `23 + 5 = <<23+5=28>>28.`"""
    return f"{before} {op} {amount} = <<{before}{op}{amount}={total}>>{total}."


def write(problem: Problem, style: str = DEFAULT_STYLE,
          totals: Sequence[int] | None = None) -> str:
    """The rationale of design `style` for `problem`.

    `totals` (default: the right ones) are the results written, each carried into the next
    step, so a teacher's slip propagates to its final answer as it would in a real trace.
    """
    if style not in STYLES:
        raise ValueError(f"unknown rationale style {style!r}; expected one of {STYLES}")
    totals = problem.totals() if totals is None else list(totals)
    if style != "equations" and len(problem.clauses) != len(problem.steps):
        raise ValueError(f"the {style} rationale needs the question's sentences "
                         "(a problem read back with parse_question)")
    befores = [problem.start, *totals[:-1]]
    steps = [equation(before, op, amount, total) for before, (op, amount), total
             in zip(befores, problem.steps, totals, strict=True)]
    if style == "equations":
        return " ".join(steps)
    if style == "clauses":
        return " ".join([f"{clause.rstrip('.')}: {step}"
                         for clause, step in zip(problem.clauses, steps)] + [problem.ask])
    if style == "window":
        sentences = [problem.opening, *problem.clauses, problem.ask]
        return " ".join(f"{before} {clause.rstrip('.')}: {step}" for before, clause, step
                        in zip(sentences, problem.clauses, steps)) + (
            f" {sentences[-2]} {problem.ask}")
    pronoun = problem.ask.split()[-2].capitalize()  # "... does she have?"
    return " ".join(" ".join([step, f"{pronoun} has {total}.", *problem.clauses[k + 1:]])
                    for k, (step, total) in enumerate(zip(steps, totals)))
