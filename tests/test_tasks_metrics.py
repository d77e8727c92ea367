"""Answer metrics through seqio.Evaluator: gold GSM8K rationales scored as predictions."""
from __future__ import annotations

import pytest

seqio = pytest.importorskip("seqio")

import t5x_cot.tasks  # noqa: E402,F401  (registers the tasks)
from t5x_cot import calculator  # noqa: E402
from t5x_cot.tasks import metrics  # noqa: E402

pytestmark = pytest.mark.needs_data


def _targets_as_predictions(ds):
    return [(int(i), ex["decoder_target_tokens"]) for i, ex in ds.as_numpy_iterator()]


def _evaluate(task_name: str):
    evaluator = seqio.Evaluator(
        mixture_or_task_name=task_name, feature_converter=seqio.EncDecFeatureConverter(pack=False),
        eval_split="test", sequence_length=None, async_compute_metrics=False)
    scores, _ = evaluator.evaluate(compute_metrics=True, predict_fn=_targets_as_predictions)
    return scores.result()[task_name]


@pytest.mark.slow
def test_gsm8k_gold_rationales_score_100_and_calculator_misses_are_explained(data_dir, capsys):
    result = _evaluate("gsm8k_gold_cot")
    assert result["accuracy"] == 100.0
    assert result["answer_found"] == 100.0
    assert 20 < result["mean_generated_length"] < 200
    assert result["calculator_accuracy"] >= 99.5
    rows = seqio.get_mixture_or_task("gsm8k_gold_cot").source.rows("test")
    misses = [r for r in rows if metrics.corrected_answer(r["targets"]) != r["answer"]]
    assert len(misses) == round((100 - result["calculator_accuracy"]) / 100 * len(rows))
    with capsys.disabled():
        print(f"\ngsm8k_gold_cot test: {result}; {len(misses)} calculator misses:")
        for r in misses:
            print(f"  {r['id']} gold {r['answer']}: {r['targets']}\n"
                  f"    corrected: {calculator.correct_rationale(r['targets'])}")
    for r in misses:  # each miss is a gold solution whose own arithmetic the calculator fixed
        assert calculator.correct_rationale(r["targets"]) != r["targets"]


def test_strategyqa_gold_rationales_score_100_without_calculator_metric(data_dir):
    result = _evaluate("strategyqa_gold_cot")
    assert result["accuracy"] == 100.0 and result["answer_found"] == 100.0
    assert "calculator_accuracy" not in result


def test_metric_functions_on_hand_made_predictions():
    post = [metrics.postprocess(text, answer_type="number") for text in (
        "3 + 4 = 7. The answer is 7.", "3 + 4 = 8. The answer is 8.", "I do not know.")]
    gold = [metrics.postprocess("x", {"answer": b"7"}, is_target=True, answer_type="number")] * 3
    assert gold[0]["answer"] == "7"
    assert metrics.accuracy(gold, post)["accuracy"] == pytest.approx(100 / 3)
    assert metrics.answer_found(gold, post)["answer_found"] == pytest.approx(200 / 3)
    assert metrics.calculator_accuracy(gold, post)["calculator_accuracy"] == pytest.approx(200 / 3)
    assert metrics.mean_length(gold, post)["mean_generated_length"] == pytest.approx(
        (9 + 9 + 4) / 3)
