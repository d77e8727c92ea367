"""Safe arithmetic for chain-of-thought text, and GSM8K `<<expr=result>>` annotation tools.

`evaluate` parses an expression with `ast.parse(mode="eval")` and walks a whitelist of nodes
(numbers, `+ - * / // % **`, unary `+ -`, parentheses) in exact rational arithmetic; nothing is
ever compiled or executed. Every bound is checked before the work it guards:

* the text is at most `MAX_EXPR_CHARS` characters and uses only digits, `.`, `,`, `$`, spaces,
  parentheses and operator characters (so names, calls, strings, attributes never reach the
  parser), and its parenthesis depth is at most `MAX_DEPTH` (counted before parsing, since deep
  nesting can crash the parser);
* the tree has at most `MAX_NODES` nodes;
* every constant and intermediate value has magnitude at most `MAX_MAGNITUDE`;
* `a ** b` needs `|b| <= MAX_EXPONENT`, and its result size is estimated with logarithms of
  the exact numerator and denominator (magnitude, and the bit length of the exact fraction)
  before it is computed;
* so every step works on numbers of at most `MAX_FRACTION_BITS` bits, and an evaluation does
  a bounded amount of work (well under 10 ms on any input; the property tests measure it)
  with a result that never depends on timing or machine load.

Values are exact: decimal literals are read from the text ("0.10000000000000001" is that
fraction, not the nearest float), and a fractional power is exact whenever its value is
rational (`(8/27) ** (2/3)` is 4/9); only an irrational power is rounded (to a float).

Input conveniences (as model output writes arithmetic): `×`, `·`, `÷`, `−`, and `x` between two
operands; thousands separators in their valid form only (`1,000`, `12,345,678`); `$`, `€`, `£`;
and a percent sign after an operand (`50%` is `0.5`; `a % b` between operands is modulo).

Results are `int` when integral, else `float`. `format_number` writes a value canonically.
"""
from __future__ import annotations

import ast
import dataclasses
import math
import re
from collections.abc import Callable
from fractions import Fraction

from t5x_cot.equations import Equation, Scan

MAX_EXPR_CHARS = 200
MAX_DEPTH = 20
MAX_NODES = 256
MAX_EXPONENT = 100
MAX_MAGNITUDE = 10**15
MAX_FRACTION_BITS = 4096
MAX_NUMBER_CHARS = 100  # a longer written number is not read as one (nor parsed: bounded work)
DECIMALS = 10  # digits after the point that `format_number` keeps for non-integral values

Number = int | float


class CalculatorError(ValueError):
    """The expression is not plain bounded arithmetic, or its value is undefined or too large."""


# --------------------------------------------------------------------------------------------
# Number text: parsing and canonical formatting (shared with `t5x_cot.answers`).

_CURRENCY = "$€£"
_BODY = r"(?:(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?:\.\d+)?|\.\d+)"
_NUMBER_TOKEN = re.compile(
    r"(?<![\w.])(?P<sign>[-−])?(?P<currency>[$€£]\s?)?(?P<sign2>[-−])?"
    r"(?:(?P<whole>\d+)[ \t]+(?=\d+[ \t]*/[ \t]*\d))?"
    rf"(?P<body>{_BODY})(?P<over>[ \t]*/[ \t]*\d+(?![\d.]))?(?P<pct>[ \t]*%)?"
)
_PLAIN_TOKEN = re.compile(rf"(?<![\w.])(?P<body>{_BODY})")


def parse_number(text: str) -> Fraction | None:
    """The exact value of one written number such as "1,080", "$-3.50", "18.0", "3/4", "1 1/2",
    "25%".

    A percent sign is dropped ("25%" is 25: answers are written as the percentage itself);
    a fraction "a/b" or mixed number "a b/c" is divided out; a trailing sentence period is
    ignored. Returns None when the text is not exactly one number, or is longer than
    `MAX_NUMBER_CHARS`."""
    match = _NUMBER_TOKEN.fullmatch(text.strip().rstrip(".").strip())
    return None if match is None else _token_value(match)


def _body_value(body: str) -> Fraction | None:
    """The value of a number's digits ("1,080.5"), None when longer than `MAX_NUMBER_CHARS`."""
    return Fraction(body.replace(",", "")) if len(body) <= MAX_NUMBER_CHARS else None


def _token_value(match: re.Match[str]) -> Fraction | None:
    value = _body_value(match.group("body"))
    if value is None or len(match.group(0)) > MAX_NUMBER_CHARS:
        return None
    if match.group("over"):
        denominator = int(match.group("over").strip().lstrip("/").strip())
        if denominator == 0:
            return None
        value = value / denominator + int(match.group("whole") or 0)
    negative = bool(match.group("sign")) != bool(match.group("sign2"))
    return -value if negative else value


def find_numbers(text: str) -> list[tuple[re.Match[str], Fraction]]:
    """Every written number in `text` (thousands separators, currency, sign, fractions), in order."""
    found = []
    for match in _NUMBER_TOKEN.finditer(text):
        value = _token_value(match)
        if value is not None:
            found.append((match, value))
    return found


def format_number(value: Number | Fraction) -> str:
    """Canonical text of a value: "24", "-3", "0.75", "3.3333333333" (int when integral, else
    a decimal rounded to `DECIMALS` places with trailing zeros trimmed)."""
    exact = Fraction(value)
    if exact.denominator == 1:
        return str(exact.numerator)
    scaled = round(exact * 10**DECIMALS)
    if scaled == 0:
        return repr(float(exact))
    sign = "-" if scaled < 0 else ""
    whole, part = divmod(abs(scaled), 10**DECIMALS)
    digits = f"{part:0{DECIMALS}d}".rstrip("0")
    return f"{sign}{whole}.{digits}" if digits else f"{sign}{whole}"


# --------------------------------------------------------------------------------------------
# The evaluator.

_ALLOWED_CHARS = frozenset("0123456789.,$€£%+-*/() \t×·÷−xX")
_TIMES_X = re.compile(r"(?<=[\d)%])\s*[xX×·]\s*(?=[\d($€£.])")
_THOUSANDS = re.compile(r"(?<![\d.])\d{1,3}(?:,\d{3})+(?![\d.,]|,\d)")
_PERCENT = re.compile(r"(?<![\d.])(?P<number>\d+(?:\.\d*)?|\.\d+)\s*%(?!\s*[\d(.])")


def _normalise(expr: str) -> str:
    text = expr.replace("÷", "/").replace("−", "-")
    text = _TIMES_X.sub("*", text)
    for symbol in _CURRENCY:
        text = text.replace(symbol, "")
    text = _THOUSANDS.sub(lambda m: m.group(0).replace(",", ""), text)
    return _PERCENT.sub(r"(\g<number>/100)", text)


def _check_text(expr: str) -> str:
    if not isinstance(expr, str):
        raise CalculatorError(f"expression must be a string, got {type(expr).__name__}")
    if len(expr) > MAX_EXPR_CHARS:
        raise CalculatorError(f"expression longer than {MAX_EXPR_CHARS} characters ({len(expr)})")
    bad = sorted(set(expr) - _ALLOWED_CHARS)
    if bad:
        raise CalculatorError(f"characters not allowed in arithmetic: {''.join(bad)!r}")
    text = _normalise(expr)
    if "," in text:
        raise CalculatorError(f"comma is not a valid thousands separator here: {expr!r}")
    if any(c.isalpha() for c in text):
        raise CalculatorError(f"'x' is only multiplication between two operands: {expr!r}")
    depth = 0
    for char in text:
        depth += (char == "(") - (char == ")")
        if depth > MAX_DEPTH:
            raise CalculatorError(f"parentheses nested deeper than {MAX_DEPTH}")
        if depth < 0:
            raise CalculatorError(f"unbalanced parentheses in {expr!r}")
    if depth:
        raise CalculatorError(f"unbalanced parentheses in {expr!r}")
    if not text.strip():
        raise CalculatorError("empty expression")
    return text


def _bounded(value: Fraction) -> Fraction:
    if abs(value) > MAX_MAGNITUDE:
        raise CalculatorError(f"value magnitude exceeds {MAX_MAGNITUDE:.0e}")
    if value.numerator.bit_length() + value.denominator.bit_length() > MAX_FRACTION_BITS:
        raise CalculatorError("value needs more precision than the calculator keeps")
    return value


def _log10(value: Fraction) -> float:
    """log10 |value| of a non-zero value, from the exact numerator and denominator (so a value
    below the float range does not become log10(0))."""
    return math.log10(abs(value.numerator)) - math.log10(value.denominator)


def _integer_root(n: int, degree: int) -> int | None:
    """The integer `degree`-th root of `n` >= 0 when `n` is a perfect power, else None."""
    if n < 2 or degree == 1:
        return n
    if n.bit_length() <= degree:  # a root >= 2 needs n >= 2**degree
        return None
    if degree == 2:
        root = math.isqrt(n)
    else:  # Newton from just above the root (a float estimate when it fits: quadratic at once)
        estimate = math.log2(n) / degree
        root = (int(2**estimate * (1 + 2**-30)) + 1 if estimate < 1000
                else 1 << -(-n.bit_length() // degree))
        while (lower := ((degree - 1) * root + n // root ** (degree - 1)) // degree) < root:
            root = lower
    return root if root**degree == n else None


def _exact_power(base: Fraction, exponent: int) -> Fraction:
    bits = (base.numerator.bit_length() + base.denominator.bit_length()) * abs(exponent)
    if bits > MAX_FRACTION_BITS:
        raise CalculatorError("power needs more precision than the calculator keeps")
    return base**exponent


def _power(base: Fraction, exponent: Fraction) -> Fraction:
    if abs(exponent) > MAX_EXPONENT:
        raise CalculatorError(f"exponent {format_number(exponent)} exceeds {MAX_EXPONENT}")
    if base == 0:
        if exponent < 0:
            raise CalculatorError("zero raised to a negative power")
        return Fraction(1) if exponent == 0 else Fraction(0)
    if base < 0 and exponent.denominator != 1:
        raise CalculatorError("fractional power of a negative number")
    magnitude = _log10(base) * float(exponent)
    if magnitude > math.log10(MAX_MAGNITUDE):
        raise CalculatorError(f"power result magnitude exceeds {MAX_MAGNITUDE:.0e}")
    if magnitude < -MAX_FRACTION_BITS * math.log10(2):
        raise CalculatorError("power result is smaller than the calculator keeps")
    degree = exponent.denominator
    roots = (_integer_root(base.numerator, degree), _integer_root(base.denominator, degree))
    if roots[0] is not None and roots[1] is not None:  # a rational root: the power is exact
        return _exact_power(Fraction(*roots), exponent.numerator)
    result = 10.0**magnitude if float(base) < 1e-300 else float(base) ** float(exponent)
    if not 0 < result < math.inf:
        raise CalculatorError("power result is outside the float range")
    return Fraction(result)


def _divide(left: Fraction, right: Fraction, op: Callable[[Fraction, Fraction], Fraction]
            ) -> Fraction:
    if right == 0:
        raise CalculatorError("division by zero")
    return Fraction(op(left, right))


_BINARY: dict[type, Callable[[Fraction, Fraction], Fraction]] = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: _divide(a, b, lambda x, y: x / y),
    ast.FloorDiv: lambda a, b: _divide(a, b, lambda x, y: x // y),
    ast.Mod: lambda a, b: _divide(a, b, lambda x, y: x % y),
    ast.Pow: _power,
}


def _walk(node: ast.AST, source: str) -> Fraction:
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        # the literal as written, exactly: 0.1 is 1/10, not the float nearest to it
        return _bounded(Fraction(node.value) if isinstance(node.value, int)
                        else Fraction(ast.get_source_segment(source, node) or ""))
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left = _walk(node.left, source)
        right = _walk(node.right, source)
        return _bounded(_BINARY[type(node.op)](left, right))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        operand = _walk(node.operand, source)
        return -operand if isinstance(node.op, ast.USub) else operand
    raise CalculatorError(f"not allowed in arithmetic: {type(node).__name__}")


def evaluate_exact(expr: str) -> Fraction:
    """`evaluate`, but the exact rational value."""
    text = _check_text(expr).strip()
    try:
        tree = ast.parse(text, mode="eval")
    except (SyntaxError, ValueError, MemoryError, RecursionError) as error:
        raise CalculatorError(f"not an arithmetic expression: {expr!r}") from error
    if sum(1 for _ in ast.walk(tree)) > MAX_NODES:
        raise CalculatorError(f"expression has more than {MAX_NODES} syntax nodes")
    return _walk(tree.body, text)


def evaluate(expr: str) -> Number:
    """Value of a bounded arithmetic expression ("48/2" -> 24, "$1,000 * 5%" -> 50, "7/2" -> 3.5).

    Raises CalculatorError for anything but plain arithmetic within the module's bounds."""
    value = evaluate_exact(expr)
    return value.numerator if value.denominator == 1 else float(value)


# --------------------------------------------------------------------------------------------
# Comparing a computed value with a written result.

def _written_value(written: str) -> tuple[Fraction | None, bool]:
    """(value, is_percent) of a written result; "40%" is (40, True)."""
    return parse_number(written), written.strip().rstrip(".").endswith("%")


def results_match(computed: Number | Fraction, written: str) -> bool:
    """Whether a written result agrees with the computed value.

    Rule: the written text must read as one number (currency, thousands separators, a trailing
    period, fractions "3/4" and mixed numbers "1 1/2" allowed). It matches when it equals the
    computed value exactly (exact rational arithmetic, so 2.8*700 is 1960, not
    1959.9999999999998), or — when it is written with `d` digits after the decimal point (d = 0
    for a whole number) — when it is the value rounded half away from zero, or truncated, to `d`
    places ("10/3=3.33", "2/3=.67", "2/3=0.66", "13 / 6 = 2 full cycles"). A fraction written
    as "a/b" must be exact. A written percent matches either reading: "8 * 5% = 40%" (40% is 0.4) and
    "100 - 15 = 85%" (the percent sign as a unit)."""
    target, percent = _written_value(written)
    if target is None:
        return False
    number = written.strip().rstrip(".").rstrip("%").strip()
    places = len(number.partition(".")[2]) if "/" not in number else None
    exact = Fraction(computed)
    return any(_agrees(candidate, target, places)
               for candidate in ((exact * 100, exact) if percent else (exact,)))


def _agrees(exact: Fraction, target: Fraction, places: int | None) -> bool:
    if exact == target:
        return True
    if places is None:
        return False
    scale = 10**places
    sign = -1 if exact < 0 else 1
    rounded = sign * Fraction(math.floor(abs(exact) * scale + Fraction(1, 2)), scale)
    truncated = sign * Fraction(math.floor(abs(exact) * scale), scale)
    return target in (rounded, truncated)


def _rewrite_result(written: str, value: Fraction, percent_operands: bool
                    ) -> tuple[Fraction | None, str, str]:
    """(old written value, new number text, new written text) for a wrong result; the new text
    keeps the currency and percent signs and the spacing of the old one. A written percent is
    scaled by 100 when the expression itself has percent operands ("8 * 5% = 40%")."""
    old, percent = _written_value(written)
    digits = format_number(value * (100 if percent and percent_operands else 1))
    match = _NUMBER_TOKEN.search(written)
    if match is None:
        return old, digits, digits
    currency = (match.group("currency") or "").strip()
    new_token = ("-" + currency + digits[1:] if digits.startswith("-") else currency + digits)
    end = match.end() - len(match.group("pct") or "")
    return old, digits, written[:match.start()] + new_token + written[end:]


# --------------------------------------------------------------------------------------------
# GSM8K annotations.

_ANNOTATION = re.compile(r"<<(?P<aexpr>[^<>=]*)=(?P<aresult>[^<>=]*)>>")


@dataclasses.dataclass(frozen=True)
class Annotation:
    """One `<<expr=result>>` calculator annotation: `span` is its (start, end) in the text."""

    span: tuple[int, int]
    expr: str
    result: str


@dataclasses.dataclass(frozen=True)
class Mismatch:
    """An annotation whose written result disagrees with the calculator (`computed` is None when
    the expression could not be evaluated; `error` then says why)."""

    annotation: Annotation
    computed: Number | None
    error: str | None = None


def find_annotations(text: str) -> list[Annotation]:
    """All `<<expr=result>>` annotations of a GSM8K-style rationale, in order."""
    return [Annotation(m.span(), m.group("aexpr"), m.group("aresult"))
            for m in _ANNOTATION.finditer(text)]


def strip_annotations(text: str) -> str:
    """Remove the annotation markup: "<<48/2=24>>24 clips" -> "24 clips"."""
    return _ANNOTATION.sub("", text)


def check_annotation(annotation: Annotation) -> Mismatch | None:
    """None when the annotation's written result agrees with the calculator, else the mismatch."""
    try:
        value = evaluate_exact(annotation.expr)
    except CalculatorError as error:
        return Mismatch(annotation, None, str(error))
    if results_match(value, annotation.result):
        return None
    return Mismatch(annotation, value.numerator if value.denominator == 1 else float(value))


def recompute_annotations(text: str) -> tuple[str, list[Mismatch]]:
    """Recompute every annotation; rewrite each wrong result — inside the markup and the same
    number written right after `>>` — with the calculator's value. Unevaluable annotations are
    kept as written and reported with `computed=None`."""
    pieces: list[str] = []
    mismatches: list[Mismatch] = []
    position = 0
    for annotation in find_annotations(text):
        mismatch = check_annotation(annotation)
        if mismatch is None:
            continue
        mismatches.append(mismatch)
        if mismatch.computed is None:
            continue
        start, end = annotation.span
        value = evaluate_exact(annotation.expr)
        percent_operands = "%" in annotation.expr
        new_result = _rewrite_result(annotation.result, value, percent_operands)[2]
        pieces += [text[position:start], f"<<{annotation.expr}={new_result}>>"]
        position = end
        echoed = _NUMBER_TOKEN.match(text, end)
        if echoed and echoed.group(0).strip() == annotation.result.strip():
            pieces.append(_rewrite_result(echoed.group(0), value, percent_operands)[2])
            position = echoed.end()
    pieces.append(text[position:])
    return "".join(pieces), mismatches


# --------------------------------------------------------------------------------------------
# Post-hoc correction of free text (Wei et al. 2022).

def _carry(text: str, corrections: dict[Fraction, str]) -> str:
    """Rewrite every number token whose value was corrected earlier (string match)."""
    if not corrections:
        return text
    return _PLAIN_TOKEN.sub(
        lambda m: corrections.get(_body_value(m.group("body")), m.group(0)), text)


def _correct_equation(text: str, equation: Equation, corrections: dict[Fraction, str]) -> str:
    (start, end), (expr_start, expr_end), (result_start, result_end) = (
        equation.span, equation.expr, equation.result)
    expr = _carry(text[expr_start:expr_end], corrections)
    written = text[result_start:result_end]
    try:
        value: Fraction | None = evaluate_exact(expr)
    except CalculatorError:
        value = None
    old, _ = _written_value(written)
    if value is not None and old is not None:
        if results_match(value, written):
            corrections.pop(old, None)  # the newest equation defines what this number means
        else:
            old, digits, written = _rewrite_result(written, value, "%" in expr)
            corrections[old] = digits
    return (text[start:expr_start] + expr + _carry(text[expr_end:result_start], corrections)
            + written + text[result_end:end])


def correct_rationale(text: str) -> str:
    """Wei et al.'s post-hoc calculator over a rationale.

    Left to right, every equation — `<<expr=result>>` annotations and plain arithmetic chains
    "a op b = c" / "a op b = c op d = e" (the result is checked against the first expression;
    a written percent stands for a hundredth) — is recomputed and a wrong result is replaced by
    the calculator's value. Corrections are carried forward by string match: later numbers equal
    to a corrected wrong result (in expressions and in the text, the final answer included) are
    rewritten, until an equation that itself yields that number correctly. Equations the
    calculator cannot evaluate, or with words among the operands, are left as written. The
    equations are found in time linear in the text (`t5x_cot.equations`)."""
    corrections: dict[Fraction, str] = {}
    pieces: list[str] = []
    position = 0
    for equation in Scan(text).equations():
        pieces.append(_carry(text[position:equation.span[0]], corrections))
        pieces.append(_correct_equation(text, equation, corrections))
        position = equation.span[1]
    pieces.append(_carry(text[position:], corrections))
    return "".join(pieces)
