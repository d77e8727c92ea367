"""The one answer grammar of the project: writing targets and judging final answers.

Targets are written `"<rationale> The answer is <answer>."` (`format_target`). A final answer is
read from text (`extract_answer`) as one of three types — `number`, `yesno`, `choice` (an option
letter A-E) — in this order, the first rule that yields an answer wins:

1. Markers; the last one in the text whose X reads as an answer of the requested type wins:
   - the answer phrase "... answer is X", case-insensitive: "the final/correct answer is X",
     "the correct choice is X", "the answer would be X", "the answer is: X", a bracketed hint
     ("the answer (Yes or No) is X", "the answer (arabic numerals) is X"), a lead-in
     ("Therefore, among A through E, the answer is X");
   - a label: "Answer: X", "**Final Answer:** X", "Answer (Yes or No): X", "A: X" opening a line;
   - `#### X` (GSM8K's gold format) and `\\boxed{X}`.
   X runs to the end of its sentence (a period followed by a space or the end, or a line
   break); when the marker ends its line, X is the next line with more than blanks or markup
   ("the answer is:\\n\\nYes", "is _____.\\n\\n$80"). If the answer phrase is present but no
   marker's X reads as an answer, a number or choice is None: the model committed to
   something that is not an answer ("the answer is moot"), and no other number in the text is
   taken instead.
2. Type-specific last resort — number: the last sentence that holds a number gives the number
   after its last "=", else its first ("... 40 + 20 = 60 minutes for the 3-mile walk." is 60);
   yes/no: the last sentence, list item or ", so"-clause that opens with a standalone yes/no
   ("No, because ...", "2. Yes, the land ...", "... Thus, no.", "..., so no."); choice: the
   last sentence that names options ("(E)", "(e)", "E)", or a sentence that is only "E") when
   it names exactly one.

Nothing found -> None; a None prediction is never correct.

What reads as an answer (markup — `**bold**`, quotes, backticks, `$`, `\\boxed{}`, `\\text{}` —
and leading hedges such as "probably", "approximately", "(rounded)" are ignored):
- number (`normalize_number`): text that starts with a number, else the number after its last
  "=", else its first number ("Janet makes $18 every day"). Accepts thousands separators in
  their valid form, `$ € £`, signs, `18.0`, fractions `3/4` and `\\frac{3}{4}`, a percent sign
  (dropped: "25%" is 25), unit words ("3 apples") and number words ("twenty-one"). The
  canonical text is `calculator.format_number`'s: "1080", "-3", "0.75".
- yes/no (`normalize_yesno`): a first word yes/no/true/false ("No, because ..."); "no",
  "true" and "false" followed by a word that cannot open a clause are not answers ("No one
  flipped it", "no evidence"), nor is "yes and no".
- choice (`normalize_choice`): an option letter A-E, written "(C)", "C)", "C", "(c)", "c.",
  "option C", "C. forest"; several options ("(A), (B) or (C)", "D or C") are not an answer.
"""
from __future__ import annotations

import re
from fractions import Fraction

from t5x_cot.calculator import find_numbers, format_number, parse_number

ANSWER_TYPES: dict[str, str] = {"gsm8k": "number", "strategyqa": "yesno", "coinflip": "yesno"}
CHOICE_LETTERS = "ABCDE"
TOLERANCE = 1e-6  # numbers match when |p - g| <= TOLERANCE * max(1, |g|)

_SENTENCE_END = r"(?=\.(?:\s|$)|!|\?|\n|$)"
_HINT = r"(?:\s*\([^()\n]{1,60}\))?"  # "(Yes or No)", "(arabic numerals)"
# X starts on the first line that holds more than blanks or markup ("is _____.\n\n$80").
_ANSWER_TEXT = r"(?:[ \t_*:$.]*\n)*[ \t]*(?P<answer>[^\n]*?)" + _SENTENCE_END
_PHRASE = re.compile(
    r"(?:\b(?:so|thus|therefore|hence),?\s+)?(?:\bamong\s+[^,\n]{1,30},\s+)?"
    r"(?:\b(?:the|my|our)\s+)?\b(?:(?:(?:final|correct|right|best)\s+)?answer"
    r"|(?:correct|right)\s+(?:option|choice))" + _HINT
    + r"(?:\s+to\s+(?:the|this|our|your)\s+question)?" + _HINT
    + r"\s+(?:is|would\s+be|will\s+be|should\s+be|must\s+be)\b[ \t]*:?" + _ANSWER_TEXT,
    re.IGNORECASE)
_LABEL = re.compile(
    r"(?:(?<![\w'’])(?:final\s+)?answer" + _HINT + r"|^[ \t]*A)[ \t]*[*_]*[ \t]*:[*_]*"
    + _ANSWER_TEXT, re.IGNORECASE | re.MULTILINE)
_HASHES = re.compile(r"####" + _ANSWER_TEXT)
_BOXED = re.compile(r"\\f?boxed\{(?P<answer>(?:[^{}]|\{[^{}]*\})*)\}")
_MARKERS = (_PHRASE, _LABEL, _HASHES, _BOXED)

_MARKUP = re.compile(r"\\(?:d?frac)\{([^{}]*)\}\{([^{}]*)\}|\\(?:f?boxed|text|mathrm|textbf)\{"
                     r"((?:[^{}]|\{[^{}]*\})*)\}|\\(?=[$%])|[$*_`\"'“”‘’]")
_HEDGE_WORDS = ("probably|likely|most likely|mostly|definitely|certainly|clearly|simply|obviously|"
                "technically|to be|approximately|about|around|roughly|exactly|just|only|nearly|"
                "almost|option|choice").replace(" ", r"\s+")
# Leading hedge words and asides ("(rounded to two places)"), ignored before an answer; an aside
# is split at its first blank, so an unclosed one costs linear time.
_HEDGES = re.compile(rf"^(?:(?:(?:{_HEDGE_WORDS})\b|\([a-z][^()\s]*\s[^()]*\))[\s:,]*)+",
                     re.IGNORECASE)
_YES = {"yes": "yes", "true": "yes", "no": "no", "false": "no"}
# Words that may follow a bare "no"/"true"/"false" answer ("No it is not", "no for most
# people"); any other word makes it a determiner or adjective ("No one", "no evidence").
_CLAUSE_OPENERS = frozenset(
    "it it's its he she they we you i i'm the this that these those there there's because since "
    "as but not so although though however unless if when while he's she's they're neither nor "
    "for in on at with without to from under given depending due based according except".split())
_SENTENCE_SPLIT = re.compile(r"(?<=[.!?])\s+|\n")
_CONNECTIVE = (r"(?:so|thus|therefore|hence|consequently|overall|finally|ultimately|"
               r"in\s+(?:conclusion|short|summary))\s*,?\s+")
_SENTENCE_OPENING = re.compile(  # a sentence or list item, or ", so" within one
    rf"(?:(?:^|[.!?]\s+|\n)[ \t>#*-]*(?:\d+[.)][ \t]*)?[*_\"'“‘]*(?:{_CONNECTIVE})?"
    rf"|,\s*{_CONNECTIVE})(?=(?:yes|no|true|false)\b)", re.IGNORECASE)
_CHOICE = re.compile(
    rf"^\((?P<paren>(?i:[{CHOICE_LETTERS}]))\)|^(?P<bare>[{CHOICE_LETTERS}])(?![\w'’]|-\w)"
    rf"|^(?P<lower>[{CHOICE_LETTERS.lower()}])(?=[ \t]*(?:[.):,]|$))")
_MORE_CHOICES = re.compile(
    rf"^\)?\s*(?:,|/|\bor\b|\band\b)\s*(?:(?i:\([{CHOICE_LETTERS}]\))|[{CHOICE_LETTERS}]\b)")
_OPTION_MENTION = re.compile(  # "(C)", "(c)", "C)", or a sentence that is only "C"
    rf"\((?P<paren>(?i:[{CHOICE_LETTERS}]))\)|(?<![\w(])(?P<bare>[{CHOICE_LETTERS}])\)"
    rf"|^[\s*_]*(?P<alone>[{CHOICE_LETTERS}])[\s*_]*[.!]?[\s*_]*$")

_UNITS = {w: i for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen".split())}
_TENS = {w: 10 * i for i, w in enumerate(
    "twenty thirty forty fifty sixty seventy eighty ninety".split(), start=2)}
_SCALES = {"hundred": 100, "thousand": 1000, "million": 10**6, "billion": 10**9}
_NUMBER_WORDS = re.compile(
    r"^(?P<sign>minus\s+|negative\s+)?(?P<words>(?:(?:{})(?:[\s-]+|\b))+)".format(
        "|".join(list(_UNITS) + list(_TENS) + list(_SCALES) + ["and"])), re.IGNORECASE)


def format_target(rationale: str, answer: str) -> str:
    """The training target: "<rationale> The answer is <answer>." ("The answer is <answer>."
    when the rationale is empty)."""
    answer = answer.strip().rstrip(".")
    rationale = rationale.strip()
    return f"{rationale} The answer is {answer}." if rationale else f"The answer is {answer}."


def split_rationale(text: str) -> tuple[str, str | None]:
    """Split text at its last "The answer is X" into (rationale before it, X); (text, None)
    when the phrase is absent."""
    matches = list(_PHRASE.finditer(text))
    if not matches:
        return text.strip(), None
    last = matches[-1]
    return text[:last.start()].strip(), last.group("answer").strip()


def _unmark(match: re.Match[str]) -> str:
    if match.group(1) is not None:
        return f"{match.group(1)}/{match.group(2)}"
    return match.group(3) or ""


def _clean(text: str) -> str:
    """Text without markup and leading hedges ("**probably** (C)" -> "(C)")."""
    return _HEDGES.sub("", _MARKUP.sub(_unmark, text).strip()).strip()


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


def _leading_number(text: str) -> Fraction | None:
    if "=" in text:
        text = text.rpartition("=")[2].strip()
    exact = parse_number(text)
    if exact is not None:
        return exact
    numbers = find_numbers(text)
    if numbers and numbers[0][0].start() == 0:
        return numbers[0][1]
    return _words_value(text)


def _sentence_number(sentence: str) -> Fraction | None:
    """The number a sentence concludes with: the first one after its last "=" ("... 3 + 4 = 7
    apples in 2 bags" -> 7), else its first one ("Janet makes $18 every day")."""
    head, _, result = sentence.rpartition("=")
    numbers = find_numbers(result) or find_numbers(head)
    return numbers[0][1] if numbers else None


def _number_value(text: str) -> Fraction | None:
    text = _clean(text)
    value = _leading_number(text)
    return value if value is not None else _sentence_number(text)


def normalize_number(text: str) -> str | None:
    """Canonical text of the number a short answer states ("$1,080." -> "1080", "3/4" -> "0.75",
    "3 apples" -> "3", "18.0" -> "18", "five" -> "5", "Janet makes $18." -> "18"); None when it
    holds no number."""
    value = _number_value(text)
    return None if value is None else format_number(value)


def normalize_yesno(text: str) -> str | None:
    """"yes" or "no" for a short answer ("Yes.", "no, because ...", "True", "**No**",
    "probably yes"); None otherwise ("No one knows", "yes and no", "maybe")."""
    words = re.findall(r"[a-z]+(?:'[a-z]+)?|[^\sa-z]", _clean(text).lower())
    if not words or words[0] not in _YES:
        return None
    following = words[1] if len(words) > 1 else ""
    if following in ("and", "or") and len(words) > 2 and words[2] in _YES:
        return None
    if words[0] != "yes" and following.isalpha() and following not in _CLAUSE_OPENERS:
        return None
    return _YES[words[0]]


def normalize_choice(text: str) -> str | None:
    """The option letter ("A"-"E") a short answer names ("(C)", "C) forest", "option c", "**B**.");
    None when it names none or several ("(A), (B) or (C)")."""
    cleaned = _clean(text)
    match = _CHOICE.match(cleaned)
    if match is None or _MORE_CHOICES.match(cleaned[match.end():]):
        return None
    return (match.group("paren") or match.group("bare") or match.group("lower")).upper()


_NORMALIZERS = {"number": normalize_number, "yesno": normalize_yesno, "choice": normalize_choice}
TYPES: tuple[str, ...] = tuple(_NORMALIZERS)  # the answer types `extract_answer` reads


def answer_type_of(gold: str) -> str:
    """The answer type a gold answer is written in: "yesno", "number", else "choice" for an
    option letter ("C", "(B)"); "number" when it is none of these."""
    if normalize_yesno(gold):
        return "yesno"
    if normalize_number(gold) is None and normalize_choice(gold) is not None:
        return "choice"
    return "number"


def _check_type(answer_type: str) -> None:
    if answer_type not in _NORMALIZERS:
        raise ValueError(f"answer_type must be one of {list(TYPES)}, got {answer_type!r}")


def _marked_answer(text: str, answer_type: str) -> str | None:
    """The answer of the last marker whose X reads as one."""
    normalize = _NORMALIZERS[answer_type]
    found = sorted((match.start(), match.group("answer")) for pattern in _MARKERS
                   for match in pattern.finditer(text))
    for _, candidate in reversed(found):
        answer = normalize(candidate)
        if answer is not None:
            return answer
    return None


def _last_resort(text: str, answer_type: str) -> str | None:
    if answer_type == "number":
        for sentence in reversed(_SENTENCE_SPLIT.split(text)):
            value = _sentence_number(_MARKUP.sub(_unmark, sentence))
            if value is not None:
                return format_number(value)
        return None
    if answer_type == "yesno":
        for opening in reversed(list(_SENTENCE_OPENING.finditer(text))):
            answer = normalize_yesno(text[opening.end():])
            if answer is not None:
                return answer
        return None
    for sentence in reversed(_SENTENCE_SPLIT.split(text)):
        letters = {(m.group("paren") or m.group("bare") or m.group("alone")).upper()
                   for m in _OPTION_MENTION.finditer(sentence)}
        if letters:
            return letters.pop() if len(letters) == 1 else None
    return None


def extract_answer(text: str, answer_type: str) -> str | None:
    """The final answer stated in `text`, canonical ("1080", "0.75", "yes", "C"), or None; see
    the module docstring for the rules and their order."""
    _check_type(answer_type)
    answer = _marked_answer(text, answer_type)
    if answer is not None:
        return answer
    if answer_type != "yesno" and _PHRASE.search(text):
        return None  # committed to something that is not an answer ("the answer is moot")
    return _last_resort(text, answer_type)


def is_correct(predicted: str | None, gold: str, answer_type: str) -> bool:
    """Whether a prediction (already extracted, or raw answer text) equals the gold answer.

    Numbers compare by value within TOLERANCE (relative, with an absolute floor at |gold| < 1);
    yes/no and choices compare after normalisation. None, or text that does not read as an
    answer of the type, is never correct."""
    _check_type(answer_type)
    if predicted is None:
        return False
    if answer_type != "number":
        normalize = _NORMALIZERS[answer_type]
        p, g = normalize(predicted), normalize(gold)
        return p is not None and p == g
    p, g = _number_value(predicted), _number_value(gold)
    if p is None or g is None:
        return False
    return abs(p - g) <= Fraction(TOLERANCE) * max(1, abs(g))
