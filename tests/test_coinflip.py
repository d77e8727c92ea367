"""Coinflip: Wei et al.'s template, parsing back, symbolic rationales, seeded balanced sets."""
from __future__ import annotations

import json
import re

import pytest

from t5x_cot.data import DataError, coinflip, load_examples


def test_template_is_wei_et_al():
    assert coinflip.make_question(["Ka", "Sherrie"], [True, False]) == (
        "A coin is heads up. Ka flips the coin. Sherrie does not flip the coin. "
        "Is the coin still heads up?")


@pytest.mark.parametrize("flips, answer, rationale", [
    ([("Ka", True), ("Sherrie", True)], "yes",
     "The coin was flipped by Ka and Sherrie. So the coin was flipped 2 times, which is an even "
     "number. The coin started heads up, so after an even number of flips, it will still be "
     "heads up."),
    ([("Ka", False), ("Sherrie", True)], "no",
     "The coin was flipped by Sherrie. So the coin was flipped 1 time, which is an odd number. "
     "The coin started heads up, so after an odd number of flips, it will be tails up."),
    ([("A", False), ("B", False), ("C", False)], "yes",
     "The coin was flipped by no one. So the coin was flipped 0 times, which is an even number. "
     "The coin started heads up, so after an even number of flips, it will still be heads up."),
    ([("A", True), ("B", True), ("C", False), ("D", True)], "no",
     "The coin was flipped by A, B and D. So the coin was flipped 3 times, which is an odd "
     "number. The coin started heads up, so after an odd number of flips, it will be tails up."),
])
def test_answer_and_symbolic_rationale(flips, answer, rationale):
    assert coinflip.answer_for(flips) == answer
    assert coinflip.answer_for([flipped for _, flipped in flips]) == answer
    assert coinflip.symbolic_rationale(flips) == rationale



@pytest.mark.parametrize("flips, rationale", [
    ([("Ka", True), ("Sherrie", False)],
     "The coin starts heads up. Ka flips it, so it is tails up. Sherrie does not flip it, so it "
     "is still tails up."),
    ([("A", True), ("B", True), ("C", False), ("D", True)],
     "The coin starts heads up. A flips it, so it is tails up. B flips it, so it is heads up. "
     "C does not flip it, so it is still heads up. D flips it, so it is tails up."),
])
def test_trace_rationale(flips, rationale):
    assert coinflip.symbolic_rationale(flips, style="trace") == rationale


@pytest.mark.parametrize("people", [1, 2, 3, 4])
def test_trace_rationale_ends_in_the_answer(people):
    """The last side the trace names is the answer, for every question and number of people."""
    for e in coinflip.generate(40, people, seed=5):
        flips = coinflip.parse_question(e.question)
        steps = coinflip.symbolic_rationale(flips, style="trace").split(". ")
        assert len(steps) == people + 1
        assert [step.split(" ")[0] for step in steps[1:]] == [name for name, _ in flips]
        assert steps[-1].endswith("heads up." if e.answer == "yes" else "tails up.")


def test_unknown_rationale_style():
    with pytest.raises(ValueError, match="style"):
        coinflip.symbolic_rationale([("A", True)], style="count")

def test_exemplars_parse_and_match_their_rationales(data_dir):
    """Every few-shot exemplar: parsed flips give its answer, and our rationale is its text."""
    prompt = json.loads((data_dir / "prompts" / "few_shot_cot_prompts.json").read_text())
    blocks = re.findall(r"Q: (.*?)\nA: (.*?) The answer is (yes|no)\.",
                        prompt["coin_flip"]["prompt"])
    assert len(blocks) == 8
    for question, rationale, answer in blocks:
        flips = coinflip.parse_question(question)
        assert len(flips) == 4
        assert coinflip.answer_for(flips) == answer
        # The exemplars write "1 times"; ours says "1 time".
        assert coinflip.symbolic_rationale(flips) == rationale.replace("1 times", "1 time")


def test_parse_round_trip_and_whitespace():
    names = ["Mary Ann", "Jo", "O'Neil"]
    question = coinflip.make_question(names, [False, True, True])
    assert coinflip.parse_question(question) == [("Mary Ann", False), ("Jo", True),
                                                 ("O'Neil", True)]
    messy = "  " + question.replace(". ", ".\n  ") + " " + coinflip.NOTE + "\n"
    assert coinflip.parse_question(messy) == coinflip.parse_question(question)


@pytest.mark.parametrize("text", [
    "",
    "What is 2 + 3?",
    "A coin is heads up. Is the coin still heads up?",
    "A coin is heads up. Ka flips the coin. Is the coin still heads up",
    "A coin is tails up. Ka flips the coin. Is the coin still heads up?",
    "A coin is heads up. Ka spins the coin. Is the coin still heads up?",
    "A coin is heads up. Ka flips the coin. Is the coin still heads up? What else?",
])
def test_parse_rejects_other_text(text):
    with pytest.raises(DataError) as info:
        coinflip.parse_question(text)
    assert info.value.field == "question"
    assert "A coin is heads up." in str(info.value)


def test_make_question_rejects_bad_input():
    with pytest.raises(ValueError, match="one flip per person"):
        coinflip.make_question(["Ka"], [True, False])
    with pytest.raises(ValueError, match="a name must be"):
        coinflip.make_question(["Dr. Ka"], [True])


def test_names_are_package_data():
    names = coinflip.default_names()
    assert len(names) >= 100 and len(set(names)) == len(names)
    assert all(re.fullmatch(r"[A-Z][a-z]+", name) for name in names)


@pytest.mark.parametrize("people", [2, 3, 4])
def test_generate(people):
    examples = coinflip.generate(1000, people, seed=7, split="test")
    assert sum(e.answer == "yes" for e in examples) == 500
    assert len({e.question for e in examples}) == 1000
    assert [e.id for e in examples[:2]] == [f"coinflip-test-p{people}-s7-00000",
                                           f"coinflip-test-p{people}-s7-00001"]
    counts = set()
    for e in examples:
        flips = coinflip.parse_question(e.question)
        assert len(flips) == people and len({name for name, _ in flips}) == people
        assert e.answer == coinflip.answer_for(flips)
        assert e.rationale == coinflip.symbolic_rationale(flips)
        assert e.task == "coinflip" and e.split == "test"
        counts.add(sum(flipped for _, flipped in flips))
    assert counts == set(range(people + 1))  # every number of flips occurs


def test_generate_is_deterministic_and_seeded():
    first = coinflip.generate(50, 2, seed=1)
    assert coinflip.generate(50, 2, seed=1) == first
    assert coinflip.generate(50, 2, seed=2) != first
    other_split = coinflip.generate(50, 2, seed=1, split="test")
    assert [e.question for e in other_split] != [e.question for e in first]
    # Pinned: generation uses only random.random(), whose stream Python guarantees.
    assert first[0].question == ("A coin is heads up. Yasmin does not flip the coin. "
                                 "Tobias does not flip the coin. Is the coin still heads up?")
    assert load_examples("coinflip", "train", num_people=2, num_examples=50, seed=1) == first


def test_generate_balance_with_odd_count_and_limits():
    examples = coinflip.generate(7, 3, seed=0)
    assert sum(e.answer == "yes" for e in examples) == 4
    assert coinflip.generate(0, 2, seed=0) == []
    with pytest.raises(ValueError, match="distinct questions"):
        coinflip.generate(10, 2, seed=0, names=["A", "B"])
    with pytest.raises(ValueError, match="num_people"):
        coinflip.generate(10, 5, seed=0, names=["A", "B", "C"])
