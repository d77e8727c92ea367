"""The one answer grammar of the project: writing targets and judging final answers.

Targets are written `"<rationale> The answer is <answer>."` (`format_target`). A final answer is
read from text (`extract_answer`) in this order, the first rule that yields an answer wins:

1. Primary: "The answer is X" — case-insensitive, also "So the answer is X", "The final answer
   is X" and "The answer is: X"; X runs to the end of its sentence (a period followed by a space
   or the end, or a line break). When the text has several, the last one whose X reads as an
   answer of the requested type wins. If the phrase is present but no X reads as an answer,
   the result is None: the model committed to something that is not an answer, and no other
   number in the text is taken instead.
2. `#### X` (GSM8K's gold format), last occurrence.
3. "Answer: X" / "A: X", last occurrence.
4. Type-specific last resort — number: the last number in the text; yes/no: the text starts
   with a standalone yes/no ("Yes.", "No, because ..."), or its last sentence is only a yes/no
   with an optional "so"/"thus"/"therefore"/"hence" ("... Thus, no.").

Nothing found -> None; a None prediction is never correct.

Numbers (`normalize_number`) accept thousands separators in their valid form, `$ € £`, signs,
a trailing period, `18.0`, fractions `3/4`, a percent sign (dropped: "25%" is 25), unit words
after the number ("3 apples"), an arithmetic lead-in ("5 + 3 = 8" is 8), and number words
("five", "twenty-one", "one hundred"). The canonical text is `calculator.format_number`'s:
"1080", "-3", "0.75". Yes/no (`normalize_yesno`) accepts case, quotes, markup, True/False and
anything after the first word ("yes, because ...").
"""
from __future__ import annotations

import re
from fractions import Fraction

from t5x_cot.calculator import find_numbers, format_number, parse_number

ANSWER_TYPES: dict[str, str] = {"gsm8k": "number", "strategyqa": "yesno", "coinflip": "yesno"}
TOLERANCE = 1e-6  # numbers match when |p - g| <= TOLERANCE * max(1, |g|)

_SENTENCE_END = r"(?=\.(?:\s|$)|!|\?|\n|$)"
_PRIMARY = re.compile(
    r"(?:\bso,?\s+)?\bthe\s+(?:final\s+)?answer\s+is\s*:?\s*(?P<answer>[^\n]*?)" + _SENTENCE_END,
    re.IGNORECASE)
_HASHES = re.compile(r"####\s*(?P<answer>[^\n]*?)" + _SENTENCE_END)
_LABELLED = re.compile(r"(?:^|\b)(?:answer|a)\s*:\s*(?P<answer>[^\n]*?)" + _SENTENCE_END,
                       re.IGNORECASE | re.MULTILINE)
_MARKUP = re.compile(r"\\boxed\{([^{}]*)\}|[*_`\"'“”‘’]")
_YES = {"yes": "yes", "true": "yes", "no": "no", "false": "no"}
_LEADING_YESNO = re.compile(r"^\W*(?P<word>yes|no|true|false)\b(?!\s+\w)", re.IGNORECASE)
_FINAL_YESNO = re.compile(
    r"(?:^|[.!?]\s+)(?:(?:so|thus|therefore|hence)\s*,?\s+)?(?P<word>yes|no)\s*[.!]?\s*$",
    re.IGNORECASE)

_UNITS = {w: i for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen".split())}
_TENS = {w: 10 * i for i, w in enumerate(
    "twenty thirty forty fifty sixty seventy eighty ninety".split(), start=2)}
_SCALES = {"hundred": 100, "thousand": 1000, "million": 10**6, "billion": 10**9}
_NUMBER_WORDS = re.compile(
    r"^(?P<sign>minus\s+|negative\s+)?(?P<words>(?:(?:%s)(?:[\s-]+|$))+)" %
    "|".join(list(_UNITS) + list(_TENS) + list(_SCALES) + ["and"]), re.IGNORECASE)


def format_target(rationale: str, answer: str) -> str:
    """The training target: "<rationale> The answer is <answer>." ("The answer is <answer>."
    when the rationale is empty)."""
    answer = answer.strip().rstrip(".")
    rationale = rationale.strip()
    return f"{rationale} The answer is {answer}." if rationale else f"The answer is {answer}."


def split_rationale(text: str) -> tuple[str, str | None]:
    """Split text at its last "The answer is X" into (rationale before it, X); (text, None)
    when the phrase is absent."""
    matches = list(_PRIMARY.finditer(text))
    if not matches:
        return text.strip(), None
    last = matches[-1]
    return text[:last.start()].strip(), last.group("answer").strip()


def _clean(text: str) -> str:
    return _MARKUP.sub(lambda m: m.group(1) or "", text).strip()


def _words_value(text: str) -> Fraction | None:
    match = _NUMBER_WORDS.match(text)
    if match is None:
        return None
    total, current = 0, 0
    for word in re.split(r"[\s-]+", match.group("words").lower().strip()):
        if word in _UNITS:
            current += _UNITS[word]
        elif word in _TENS:
            current += _TENS[word]
        elif word == "hundred":
            current = max(current, 1) * 100
        elif word in _SCALES:
            total += max(current, 1) * _SCALES[word]
            current = 0
    value = Fraction(total + current)
    return -value if match.group("sign") else value


def _number_value(text: str) -> Fraction | None:
    text = _clean(text)
    if "=" in text:
        text = text.rpartition("=")[2].strip()
    exact = parse_number(text)
    if exact is not None:
        return exact
    numbers = find_numbers(text)
    if numbers and numbers[0][0].start() == 0:
        return numbers[0][1]
    return _words_value(text)


def normalize_number(text: str) -> str | None:
    """Canonical text of the number a short answer states ("$1,080." -> "1080", "3/4" -> "0.75",
    "3 apples" -> "3", "18.0" -> "18", "five" -> "5"); None when it does not start with one."""
    value = _number_value(text)
    return None if value is None else format_number(value)


def normalize_yesno(text: str) -> str | None:
    """"yes" or "no" for a short answer ("Yes.", "no, because ...", "True", "**No**"); None
    otherwise."""
    words = re.findall(r"[a-z]+", _clean(text).lower())
    return _YES.get(words[0]) if words else None


def _normalize(text: str, answer_type: str) -> str | None:
    if answer_type == "number":
        return normalize_number(text)
    if answer_type == "yesno":
        return normalize_yesno(text)
    raise ValueError(f"answer_type must be 'number' or 'yesno', got {answer_type!r}")


def _last_readable(pattern: re.Pattern[str], text: str, answer_type: str
                   ) -> tuple[bool, str | None]:
    """(phrase present, last readable answer) for one marker pattern."""
    matches = list(pattern.finditer(text))
    for match in reversed(matches):
        answer = _normalize(match.group("answer"), answer_type)
        if answer is not None:
            return True, answer
    return bool(matches), None


def extract_answer(text: str, answer_type: str) -> str | None:
    """The final answer stated in `text`, canonical ("1080", "0.75", "yes"), or None; see the
    module docstring for the rules and their order."""
    _normalize("0", answer_type)  # validates answer_type
    for pattern in (_PRIMARY, _HASHES, _LABELLED):
        present, answer = _last_readable(pattern, text, answer_type)
        if answer is not None or (present and pattern is _PRIMARY):
            return answer
    if answer_type == "number":
        numbers = find_numbers(text)
        return format_number(numbers[-1][1]) if numbers else None
    cleaned = _clean(text)
    match = _LEADING_YESNO.match(cleaned) or _FINAL_YESNO.search(cleaned)
    return _YES[match.group("word").lower()] if match else None


def is_correct(predicted: str | None, gold: str, answer_type: str) -> bool:
    """Whether a prediction (already extracted, or raw answer text) equals the gold answer.

    Numbers compare by value within TOLERANCE (relative, with an absolute floor at |gold| < 1);
    yes/no compare after normalisation. None, or text that does not read as an answer of the
    type, is never correct."""
    if predicted is None:
        return False
    if answer_type == "yesno":
        p, g = normalize_yesno(predicted), normalize_yesno(gold)
        return p is not None and p == g
    if answer_type != "number":
        raise ValueError(f"answer_type must be 'number' or 'yesno', got {answer_type!r}")
    p, g = _number_value(predicted), _number_value(gold)
    if p is None or g is None:
        return False
    return abs(p - g) <= Fraction(TOLERANCE) * max(1, abs(g))
