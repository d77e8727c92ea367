"""The symbolic word problem the demo's generator draws and its teacher reads back. Pure Python."""
from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Problem:
    """A start count and its steps: (operator '+' or '-', amount). Read back from a question,
    it also holds the question's sentences: the first (`opening`), one per step (`clauses`)
    and the last (`ask`)."""

    start: int
    steps: tuple[tuple[str, int], ...]
    clauses: tuple[str, ...] = dataclasses.field(default=(), compare=False)
    ask: str = dataclasses.field(default="", compare=False)
    opening: str = dataclasses.field(default="", compare=False)

    def totals(self) -> list[int]:
        """The running total after each step."""
        totals, total = [], self.start
        for op, amount in self.steps:
            total = total + amount if op == "+" else total - amount
            totals.append(total)
        return totals

    @property
    def answer(self) -> int:
        return self.totals()[-1] if self.steps else self.start
