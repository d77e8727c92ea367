"""The answer grammar on model-output-like text. `CASES` is the table: (text, type, expected)."""
from __future__ import annotations

import pytest

from t5x_cot import answers

CASES: list[tuple[str, str, str | None]] = [
    ("Natalia sold 48/2 = 24 clips in May. 48+24 = 72. The answer is 72.", "number", "72"),
    ("The answer is $1,080.", "number", "1080"),
    ("The answer is 3 apples.", "number", "3"),
    ("So the answer is 18.", "number", "18"),
    ("the answer is 18", "number", "18"),
    ("THE ANSWER IS 18.", "number", "18"),
    ("The answer is: 42.", "number", "42"),
    ("The final answer is 7.", "number", "7"),
    ("He had 5, then 10. The answer is 15. I hope this helps! 99 is wrong.", "number", "15"),
    ("The answer is 10. Wait, recount: the answer is 12.", "number", "12"),
    ("The answer is -3.", "number", "-3"),
    ("The answer is −3.", "number", "-3"),
    ("The answer is -$5.", "number", "-5"),
    ("The answer is 25%.", "number", "25"),
    ("The answer is 3/4.", "number", "0.75"),
    ("The answer is 1 1/2 cups.", "number", "1.5"),
    ("The answer is 18.0.", "number", "18"),
    ("The answer is 3.50.", "number", "3.5"),
    ("The answer is .5.", "number", "0.5"),
    ("The answer is 1,000,000.", "number", "1000000"),
    ("The answer is €20.", "number", "20"),
    ("The answer is £7.25.", "number", "7.25"),
    ("The answer is **42**.", "number", "42"),
    ("The answer is \\boxed{42}.", "number", "42"),
    ("The answer is 5 + 3 = 8.", "number", "8"),
    ("The answer is five.", "number", "5"),
    ("The answer is twenty-one.", "number", "21"),
    ("The answer is one hundred and five.", "number", "105"),
    ("The answer is unknown. He had 3 apples.", "number", None),
    ("Janet has 16 eggs.\n#### 18", "number", "18"),
    ("Answer: 64", "number", "64"),
    ("She pays 2 * 4 = 8 dollars, then 8 + 2 = 10 dollars", "number", "10"),
    ("I am not sure how to solve this.", "number", None),
    ("", "number", None),
    ("The answer is 12.5 miles per hour.", "number", "12.5"),
    ("The answer is 1,2.", "number", "1"),
    ("The answer is: yes", "yesno", "yes"),
    ("So the answer is no.", "yesno", "no"),
    ("The answer is Yes.", "yesno", "yes"),
    ("The answer is True.", "yesno", "yes"),
    ("The answer is false.", "yesno", "no"),
    ("The answer is no, because hamsters are prey.", "yesno", "no"),
    ("The answer is yes. No further comment.", "yesno", "yes"),
    ("The answer is that nobody knows.", "yesno", None),
    ("No.", "yesno", "no"),
    ("Yes, because the coin was flipped twice.", "yesno", "yes"),
    ("yes", "yesno", "yes"),
    ("No one flipped the coin, so it is heads up.", "yesno", None),
    ("The coin was flipped twice. Thus, yes.", "yesno", "yes"),
    ("Hamsters are prey animals. So no.", "yesno", "no"),
    ("There is no evidence either way.", "yesno", None),
    ("Answer: no", "yesno", "no"),
    ("", "yesno", None),
]


@pytest.mark.parametrize("text,answer_type,expected", CASES)
def test_extract_answer(text: str, answer_type: str, expected: str | None) -> None:
    assert answers.extract_answer(text, answer_type) == expected


@pytest.mark.parametrize("predicted,gold,answer_type,expected", [
    ("18", "18", "number", True), ("18.0", "18", "number", True), ("$1,080", "1080", "number", True),
    ("0.75", "3/4", "number", True), ("0.3333", "1/3", "number", False),
    ("0.333333334", "1/3", "number", True), ("17", "18", "number", False),
    (None, "18", "number", False), ("abc", "18", "number", False),
    ("yes", "yes", "yesno", True), ("Yes.", "yes", "yesno", True), ("True", "yes", "yesno", True),
    ("no", "yes", "yesno", False), (None, "no", "yesno", False), ("maybe", "no", "yesno", False),
])
def test_is_correct(predicted: str | None, gold: str, answer_type: str, expected: bool) -> None:
    assert answers.is_correct(predicted, gold, answer_type) is expected


def test_format_and_split_round_trip() -> None:
    target = answers.format_target("Tom has 3 + 4 = 7 apples.", "7")
    assert target == "Tom has 3 + 4 = 7 apples. The answer is 7."
    assert answers.format_target("", "yes") == "The answer is yes."
    assert answers.split_rationale(target) == ("Tom has 3 + 4 = 7 apples.", "7")
    assert answers.split_rationale("no marker here") == ("no marker here", None)
    assert answers.extract_answer(target, "number") == "7"


def test_normalizers_and_types() -> None:
    assert answers.normalize_number("$1,080.") == "1080"
    assert answers.normalize_number("apples") is None
    assert answers.normalize_yesno("**No**") == "no"
    assert answers.normalize_yesno("perhaps") is None
    assert answers.ANSWER_TYPES == {"gsm8k": "number", "strategyqa": "yesno", "coinflip": "yesno"}
    with pytest.raises(ValueError, match="answer_type"):
        answers.extract_answer("The answer is 3.", "text")
