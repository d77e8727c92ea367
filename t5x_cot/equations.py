"""Finding the equations of a rationale in one left-to-right pass, in time linear in the text.

An equation is a GSM8K annotation `<<expr=result>>` or a plain arithmetic chain
"e1 = e2 = ... = r" on one line:

* a *term* is `(`s, blanks, an optional sign and currency sign, a number (thousands separators
  in their valid form, an optional decimal part), an optional `%`, then any `)`s (blanks
  allowed before each);
* an *expression* is terms joined by operators (`+ - * / ** // x × ÷ −`, blanks around them);
* the chain's first expression has an operator and is not the tail of a longer expression
  (not preceded by a word character, a number, an operator, `=`, a mixed number in words
  "1 and", even with a blank between);
* its result r is a number token (a sign, a currency sign, a blank, a number, a fraction
  "3/4" or mixed number "1 1/2", an optional `%`) that is not followed by a word, a fraction
  bar, a digit, another `=` or another operation;
* the chain is the shortest one whose last `= r` reads as such a result.

Every position is classified once, right to left, into tables (end of the blank run, the
digit run, the number, the term, the operator chain starting there), so finding a term, an
expression or a chain is a table look-up; a chain's outcome is remembered for its first
position. The work is a bounded number of steps per character whatever the text (`Scan.steps`
counts them), where a backtracking regular expression for the same grammar is exponential in
the number of operators ("1 + 1 + 1 + ... + = 3").
"""
from __future__ import annotations

import dataclasses

_BLANK = " \t"
_SIGN = "-−"
_CURRENCY = "$€£"
_OPERATOR = "-+*/×÷x−"
_RESULT_OPERATOR = "-+*/×÷−–"  # what may not follow a result (an en dash too)
_BEFORE_START = ".,<>=%$€£*/+-−×÷"  # (and word characters) may not precede a chain
_BEFORE_BLANK_START = ")%=*/+-−×÷"  # (and digits) may not precede " " + a chain
_SPECIAL = "<>="  # what an annotation's parts may not contain
_END = "\0"  # padding: matches no class


def _word(char: str) -> bool:
    return char.isalnum() or char == "_"


@dataclasses.dataclass(frozen=True)
class Equation:
    """One equation: its (start, end), and the (start, end) of its expression and its result."""

    span: tuple[int, int]
    expr: tuple[int, int]
    result: tuple[int, int]
    annotation: bool


class Scan:
    """The position tables of one text (see the module docstring); `steps` counts the work."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.padded = text + _END * 3
        size = len(text) + 3
        self.steps = 0
        self.blank_end = [0] * size
        self.paren_end = [0] * size
        self.digit_end = [0] * size
        self.special = [0] * size  # the first of "<>=" at or after each position
        self.thousands = [0] * size  # end of the ",ddd" groups from a comma (itself if none)
        self.number = [-1] * size  # end of a number starting there, -1 if none
        self.closing = [0] * size  # end of the ")"s (blanks allowed before each) from there
        self.term = [-1] * size  # end of a term starting there, -1 if none
        self.chain = [0] * size  # end of the "op term" repetitions from there
        self._outcome: dict[int, tuple[int, int] | None] = {}
        for position in range(size - 1, -1, -1):
            self._classify(position)

    def _classify(self, p: int) -> None:
        t, last = self.padded, len(self.padded) - 1
        char = t[p]
        nxt = min(p + 1, last)
        self.steps += 1
        self.blank_end[p] = self.blank_end[nxt] if char in _BLANK else p
        self.paren_end[p] = self.paren_end[nxt] if char == "(" else p
        self.digit_end[p] = self.digit_end[nxt] if char.isdecimal() else p
        self.special[p] = p if char in _SPECIAL or p == last else self.special[nxt]
        group = p + 4 <= last and char == "," and self.digit_end[p + 1] == p + 4
        self.thousands[p] = self.thousands[p + 4] if group else p
        self.number[p] = self._number(p)
        close = self.blank_end[p]
        self.closing[p] = self.closing[close + 1] if t[close] == ")" else p
        self.term[p] = self._term_core(self.blank_end[self.paren_end[p]])
        operand = self._operator_end(p)
        following = self._term_after_blanks(operand) if operand >= 0 else -1
        self.chain[p] = self.chain[following] if following >= 0 else p

    def _number(self, p: int) -> int:
        t = self.padded
        if t[p].isdecimal():
            run = self.digit_end[p]
            end = self.thousands[run] if run - p <= 3 and self.thousands[run] > run else run
        elif t[p] == "." and t[p + 1].isdecimal():
            return self.digit_end[p + 1]
        else:
            return -1
        return self.digit_end[end + 1] if t[end] == "." and t[end + 1].isdecimal() else end

    def _term_core(self, p: int) -> int:
        """End of a term whose sign/number starts at p, -1 if none."""
        t = self.padded
        p += t[p] in _SIGN
        p += t[p] in _CURRENCY
        end = self.number[p]
        if end < 0:
            return -1
        end += t[end] == "%"
        return self.closing[end]

    def _operator_end(self, p: int) -> int:
        """Where the operand starts after blanks and an operator at p, -1 if no operator."""
        t = self.padded
        q = self.blank_end[p]
        if t[q:q + 2] in ("**", "//"):
            return q + 2
        return q + 1 if t[q] in _OPERATOR else -1

    def _term_after_blanks(self, p: int) -> int:
        return self.term[self.blank_end[p]]

    # ---- results ---------------------------------------------------------------------------

    def _results(self, p: int) -> list[int]:
        """Candidate ends of a result starting at p, in the order a backtracking match tries
        them (ends inside a digit run are left out: a digit follows them, so none is taken)."""
        t = self.padded
        p += t[p] in _SIGN
        p += t[p] in _CURRENCY
        p += t[p] in _BLANK
        if not (t[p].isdecimal() or t[p] == "."):
            return []
        bases = []
        if t[p].isdecimal():
            run = self.digit_end[p]
            numerator = self.blank_end[run]
            if numerator > run and t[numerator].isdecimal():  # "1 1/2"
                bases.append(self._fraction_end(self.digit_end[numerator]))
            bases.append(self._fraction_end(run))  # "3/4"
        bases.append(self.number[p])  # a shorter reading of it is followed by a digit
        ends = []
        for base in bases:
            if base < 0:
                continue
            if t[base] == "%":
                ends.append(base + 1)
            elif t[base] in _BLANK and t[base + 1] == "%":
                ends.append(base + 2)
            ends.append(base)
        return ends

    def _fraction_end(self, p: int) -> int:
        """End of "/ d" (blanks allowed) after a numerator ending at p, -1 if none."""
        t = self.padded
        bar = self.blank_end[p]
        if t[bar] != "/":
            return -1
        denominator = self.blank_end[bar + 1]
        return self.digit_end[denominator] if t[denominator].isdecimal() else -1

    def _ends_result(self, p: int) -> bool:
        """Whether a result may end at p (what follows is not a word, a digit, a fraction bar,
        another "=" or another operation)."""
        t = self.padded
        char, after = t[p], self.blank_end[p]
        if _word(char) or char in "/%" or (char in ".," and t[p + 1].isdecimal()):
            return False
        if (char in _BLANK and t[after].isdecimal()) or t[after] == "=":
            return False
        for width in (2, 1):
            op = t[after:after + width]
            if width == 2 and op not in ("**", "//"):
                continue
            operand = t[self.blank_end[after + width]]
            if (op in _RESULT_OPERATOR or width == 2) and (_word(operand) or operand in "(.$€£"):
                return False
            if (op in _OPERATOR or width == 2) and (operand.isdecimal() or operand in "(.$€£"):
                return False
        return True

    def _final(self, p: int) -> tuple[int, int] | None:
        """(start, end) of "= result" closing a chain at p, None if there is none."""
        equals = self.blank_end[p]
        if self.padded[equals] != "=":
            return None
        start = self.blank_end[equals + 1]
        for end in self._results(start):
            self.steps += 1
            if self._ends_result(end):
                return start, end
        return None

    def _step(self, p: int) -> int:
        """End of one more "= expression" of a chain at p, -1 if none."""
        equals = self.blank_end[p]
        if self.padded[equals] != "=":
            return -1
        term = self._term_after_blanks(equals + 1)
        return self.chain[term] if term >= 0 else -1

    def _result_of_chain(self, p: int) -> tuple[int, int] | None:
        """The result closing the shortest chain from p (remembered for every position)."""
        visited = []
        while p not in self._outcome:
            self.steps += 1
            found = self._final(p)
            if found is not None:
                self._outcome[p] = found
                break
            following = self._step(p)
            if following < 0:
                self._outcome[p] = None
                break
            visited.append(p)
            p = following
        outcome = self._outcome[p]
        for position in visited:
            self._outcome[position] = outcome
        return outcome

    # ---- equations -------------------------------------------------------------------------

    def _may_start(self, s: int) -> bool:
        t = self.text
        before = t[s - 1] if s else ""
        if before and (_word(before) or before in _BEFORE_START):
            return False
        if s >= 2 and before == " " and (t[s - 2].isdecimal() or t[s - 2] in _BEFORE_BLANK_START):
            return False
        if s >= 3 and t[s - 2:s] == "x " and not _word(t[s - 3]):
            return False
        return not (s >= 6 and t[s - 5:s] == " and " and t[s - 6].isdecimal())

    def _annotation(self, s: int) -> Equation | None:
        t = self.padded
        if t[s:s + 2] != "<<":
            return None
        equals = self.special[s + 2]
        if t[equals] != "=":
            return None
        close = self.special[equals + 1]
        if t[close:close + 2] != ">>":
            return None
        return Equation((s, close + 2), (s + 2, equals), (equals + 1, close), True)

    def _plain(self, s: int) -> Equation | None:
        if not self._may_start(s):
            return None
        first = self.term[s]
        if first < 0:
            return None
        expr_end = self.chain[first]
        if expr_end == first:  # no operator
            return None
        result = self._result_of_chain(expr_end)
        if result is None:
            return None
        return Equation((s, result[1]), (s, expr_end), result, False)

    def equations(self) -> list[Equation]:
        """Every equation, left to right, none overlapping."""
        found = []
        s = 0
        while s < len(self.text):
            self.steps += 1
            equation = self._annotation(s) or self._plain(s)
            if equation is None:
                s += 1
            else:
                found.append(equation)
                s = equation.span[1]
        return found
