"""Prompt formats (hint and plain), exemplar files and exemplars drawn from train."""
from __future__ import annotations

import json

import pytest

from t5x_cot.data import coinflip, load_examples
from t5x_cot.data.example import DataError, Example
from t5x_cot.teacher import prompts

EX = [prompts.Exemplar("Is 2 even?", "2 is divisible by 2.", "yes")]
ITEM = Example("i1", "strategyqa", "train", "Is 3 even?", "no")


def test_hint_format_is_exact():
    assert prompts.build_prompt(ITEM, EX, "hint") == (
        "Q: Is 2 even?\nHint: the correct answer is yes.\n"
        "A: 2 is divisible by 2. The answer is yes.\n\n"
        "Q: Is 3 even?\nHint: the correct answer is no.\nA:")


def test_plain_format_is_exact():
    assert prompts.build_prompt(ITEM, EX, "plain") == (
        "Q: Is 2 even?\nA: 2 is divisible by 2. The answer is yes.\n\nQ: Is 3 even?\nA:")


@pytest.mark.parametrize("task", ["gsm8k", "strategyqa", "coinflip"])
def test_default_exemplars_parse_and_are_correct(task):
    from t5x_cot import answers
    exemplars = prompts.load_exemplars(task)
    assert len(exemplars) >= 4
    for ex in exemplars:
        text = answers.format_target(ex.rationale, ex.answer)
        assert answers.extract_answer(text, answers.ANSWER_TYPES[task]) == ex.answer
        if task == "coinflip":
            assert coinflip.answer_for(coinflip.parse_question(ex.question)) == ex.answer


def test_shared_exemplar_file(data_dir):
    path = data_dir / "prompts" / "few_shot_cot_prompts.json"
    gsm = prompts.load_exemplars("gsm8k", path)
    assert len(gsm) == 8 and gsm[0].answer == "6" and gsm[0].rationale.endswith("21 - 15 = 6.")
    assert prompts.load_exemplars("strategyqa", path)[-1].answer == "no"
    assert all(e.answer in ("yes", "no") for e in prompts.load_exemplars("coinflip", path))


def test_exemplar_file_errors(tmp_path):
    path = tmp_path / "ex.json"
    path.write_text(json.dumps({"gsm8k": {"prompt": "Q: a?\nA: no answer here", "comment": ""}}))
    with pytest.raises(DataError, match="The answer is X"):
        prompts.load_exemplars("gsm8k", path)
    with pytest.raises(DataError, match="strategy_qa"):
        prompts.load_exemplars("strategyqa", path)


def test_pool_is_seeded_and_never_contains_the_item():
    train = load_examples("coinflip", "train", num_examples=6, seed=3)
    pool = prompts.ExemplarPool(train, k=5, seed=5)
    for item in train:
        drawn = pool.draw(item)
        assert len(drawn) == 5 and item.question not in [e.question for e in drawn]
        assert drawn == pool.draw(item)
    big = load_examples("coinflip", "train", num_examples=50, seed=3)
    assert prompts.ExemplarPool(big, 4, 1).draw(big[0]) != prompts.ExemplarPool(big, 4, 2).draw(big[0])


@pytest.mark.parametrize("task", ["gsm8k", "strategyqa", "coinflip"])
@pytest.mark.parametrize("mode", ["hint", "plain"])
def test_final_question_inverts_build_prompt(task, mode):
    item = Example("q", task, "train", "Line one of the question.\nIs line two the end?", "yes")
    prompt = prompts.build_prompt(item, prompts.load_exemplars(task), mode)
    assert prompts.final_question(prompt) == item.question


@pytest.mark.parametrize("text", ["Is 3 even?", "Q: Is 3 even?\nA: yes", "", "A:"])
def test_final_question_is_none_for_other_prompts(text):
    assert prompts.final_question(text) is None


def test_final_question_is_linear_on_untrusted_prompts():
    # a backtracking pattern would take minutes on these (the server reads client prompts)
    assert prompts.final_question("Q: " + " " * 200_000 + "x") is None
    assert prompts.final_question("Q: " + "a " * 200_000 + "\nA:") == ("a " * 200_000).strip()
