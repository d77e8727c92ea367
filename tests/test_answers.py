"""The answer grammar on model-output-like text. `CASES` is the table: (text, type, expected)."""
from __future__ import annotations

import time

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
    # Quoted from published model outputs: the zero-shot-CoT second stage (text-davinci-002),
    # few-shot CoT (GPT-4, GPT-3.5), plan-and-solve (text-davinci-003); then chat formats.
    ("Therefore, the answer (Yes or No) is No.", "yesno", "no"),
    ("Therefore, the answer (Yes or No) is:\n\nYes", "yesno", "yes"),
    ("Therefore, the answer (Yes or No) is moot.", "yesno", None),
    ("Therefore, the answer (arabic numerals) is 40.", "number", "40"),
    ("Therefore, the answer (arabic numerals) is: \n\nThe orchard earned $1000 from selling 2000 "
     "apples.", "number", "1000"),
    ("The answer (arabic numerals) is _____.\n\n$80", "number", "80"),
    ("Therefore, the answer (arabic numerals) is 27. \n\nThe answer (words) is \"twenty-seven.\"",
     "number", "27"),
    ("Therefore, the answer (arabic numerals) is .", "number", None),
    ("Therefore, the answer (Yes or No) is likely to be \"Yes.\"", "yesno", "yes"),
    ("The answer (Yes or No) is followed by an explanation.\n\nYes, anatomical and symbolic hearts "
     "look remarkably different.", "yesno", "yes"),
    ("Therefore, the final answer is that the coin is heads up. \nTherefore, the answer "
     "(Yes or No) is Yes.", "yesno", "yes"),
    ("Therefore, among A through E, the answer is C.", "choice", "C"),
    ("Therefore, among A through E, the answer is probably (A), (B), (C), or (D).", "choice",
     None),
    ("Therefore, among A through E, the answer is D or C.", "choice", None),
    ("Among A through E, the answer is D--disturb.", "choice", "D"),
    ("Among A through E, the answer is most likely A, a bird's nest.", "choice", "A"),
    ("No, Hydrogen's atomic number is 1, and 1 squared is still 1.", "yesno", "no"),
    ("So the answer is (e), none of these.", "choice", "E"),
    ("So the answer is yes and no, depending on the context.", "yesno", None),
    ("Thus, the answer is no information given.", "yesno", None),
    ("So the answer is no for most people.", "yesno", "no"),
    ("So the answer is (rounded to two decimal places) (b) 0.4167.", "choice", "B"),
    ("So the answer is not in the choices.", "choice", None),
    ("In total, it takes her 40 + 20 = 60 minutes to complete the entire 3-mile walk.", "number",
     "60"),
    ("So, 20 miles will separate them after 2 hours.", "number", "20"),
    ("Answer:\n Janet makes $18 every day at the farmers' market.", "number", "18"),
    ("The man's rate along the current is 6 kmph. (B)", "choice", "B"),
    ("Answer: A, C, and E. Singers need to warm up.", "choice", None),
    ("The result of applying for a job is (E) being employed.", "choice", "E"),
    ("Answer: \n1. The torso is above.\n2. Yes, the land near beaver dams can suffer.", "yesno",
     "yes"),
    ("Final Answer: The coin is now heads up.", "yesno", None),
    ("Final Answer: The final answer is $18$. I hope it is correct.", "number", "18"),
    ("**Answer:** 18", "number", "18"),
    ("**Final Answer:** **No**", "yesno", "no"),
    ("The answer is \\boxed{\\frac{3}{4}}.", "number", "0.75"),
    ("So she has $\\boxed{42}$ apples left.", "number", "42"),
    ("Answer: C", "choice", "C"),
    ("Answer: (C) forest", "choice", "C"),
    ("The correct answer is **(B)**.", "choice", "B"),
    ("The answer is approximately 3.5 hours.", "number", "3.5"),
    ("The answer is no evidence of it.", "yesno", None),
    ("No idea. It depends on the year.", "yesno", None),
    ("I think the answer is a tough one.", "choice", None),
    ("The answer would be 12 cookies.", "number", "12"),
    ("Answer (Yes or No): Yes", "yesno", "yes"),
    ("The answer is \\$1,080.", "number", "1080"),
    ("### Final Answer\n\n**Yes**", "yesno", "yes"),
    ("The final answer is: $\\boxed{18}$", "number", "18"),
    ("Hence, the correct choice is **E**.", "choice", "E"),
    ("The best option is to drive 3 hours. Total: 18", "number", "18"),
    ("It is not possible, so no.", "yesno", "no"),
    ("In conclusion, no.", "yesno", "no"),
    ("It failed, so no one came.", "yesno", None),
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
    ("No one", "no", "yesno", False),
    ("C", "C", "choice", True), ("(c)", "C", "choice", True), ("C) forest", "(C)", "choice", True),
    ("B", "C", "choice", False), ("A or B", "A", "choice", False), (None, "A", "choice", False),
])
def test_is_correct(predicted: str | None, gold: str, answer_type: str, expected: bool) -> None:
    assert answers.is_correct(predicted, gold, answer_type) is expected


def test_format_and_split_round_trip() -> None:
    target = answers.format_target("Tom has 3 + 4 = 7 apples.", "7")
    assert target == "Tom has 3 + 4 = 7 apples. The answer is 7."
    assert answers.format_target("", "yes") == "The answer is yes."
    assert answers.split_rationale(target) == ("Tom has 3 + 4 = 7 apples.", "7")
    assert answers.split_rationale("no marker here") == ("no marker here", None)
    hinted = "Heads, then tails.\nTherefore, the answer (Yes or No) is No."
    assert answers.split_rationale(hinted) == ("Heads, then tails.", "No")
    assert answers.extract_answer(target, "number") == "7"


def test_normalizers_and_types() -> None:
    assert answers.normalize_number("$1,080.") == "1080"
    assert answers.normalize_number("apples") is None
    assert answers.normalize_yesno("**No**") == "no"
    assert answers.normalize_yesno("perhaps") is None
    assert answers.normalize_number("Janet makes $18 every day.") == "18"
    assert answers.normalize_number("4960 chairs in 2 months") == "4960"
    assert answers.normalize_yesno("probably yes") == "yes"
    assert answers.normalize_yesno("no evidence") is None
    assert answers.normalize_choice("option (d)") == "D"
    assert answers.normalize_choice("E)None of these") == "E"
    assert answers.normalize_choice("a bit unclear") is None
    assert answers.normalize_choice("(A), (B), or (C)") is None
    assert answers.ANSWER_TYPES == {"gsm8k": "number", "strategyqa": "yesno", "coinflip": "yesno"}
    assert answers.TYPES == ("number", "yesno", "choice")
    with pytest.raises(ValueError, match="answer_type must be one of"):
        answers.extract_answer("The answer is 3.", "text")
    with pytest.raises(ValueError, match="answer_type must be one of"):
        answers.is_correct("3", "3", "text")


@pytest.mark.parametrize("answer_type", answers.TYPES)
def test_adversarial_text_is_fast(answer_type: str) -> None:
    """Model output is untrusted: long repetitive text must not make the patterns backtrack."""
    for text in ("the answer (x) is " * 3000, "the answer is" + " _\n" * 5000,
                 "(" * 10000 + "answer is", "A) " * 10000, "No. " * 10000,
                 "answer" + " " * 20000 + ":", "the answer is " + "probably " * 5000 + "yes"):
        start = time.perf_counter()
        answers.extract_answer(text, answer_type)
        assert time.perf_counter() - start < 1.0, (text[:30], answer_type)


@pytest.mark.parametrize("gold, expected", [("yes", "yesno"), ("No", "yesno"), ("18", "number"),
                                            ("1,080", "number"), ("C", "choice"), ("(B)", "choice"),
                                            ("unknown", "number")])
def test_answer_type_of_gold(gold: str, expected: str) -> None:
    assert answers.answer_type_of(gold) == expected
