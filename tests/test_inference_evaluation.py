"""`InferenceEvaluator`: a task's own metrics through seqio.Evaluator, built once and reused."""
from __future__ import annotations

import functools
import json

import jax
import numpy as np
import pytest
from decoding_helpers import BATCH_SIZE, INPUT_LENGTH, MAX_DECODE_LENGTH, tiny_model  # noqa: E402

from t5x_cot.data_pipeline import DatasetConfig
from t5x_cot.decoding import predict
from t5x_cot.decoding.generate import Generation
from t5x_cot.decoding.predict import DecodeConfig, Predictor
from t5x_cot.decoding.sampling import trim
from t5x_cot.decoding.state import EOS_ID
from t5x_cot.inference_evaluation import InferenceEvaluator, padded_prediction, prediction_fields, score_function

NUM_EXAMPLES = 6
LENGTHS = {"inputs": INPUT_LENGTH, "targets": MAX_DECODE_LENGTH}


@pytest.fixture(scope="module")
def model_and_params():
    model = tiny_model()
    shapes = {"encoder_input_tokens": (1, 4), "decoder_input_tokens": (1, 4), "decoder_target_tokens": (1, 4)}
    return model, [model.init_params(jax.random.PRNGKey(seed), shapes) for seed in (0, 1)]


def _evaluator_cls():
    import seqio  # pylint: disable=import-outside-toplevel
    return functools.partial(seqio.Evaluator, num_examples=NUM_EXAMPLES, logger_cls=(seqio.JSONLogger,))


def test_cot_task_answer_accuracy_at_every_call_with_one_compile(data_dir, model_and_params, tmp_path):
    del data_dir
    model, (params_a, params_b) = model_and_params
    cfg = DatasetConfig("coinflip_gold_cot", LENGTHS, split="test", batch_size=BATCH_SIZE, shuffle=False)
    evaluator = InferenceEvaluator(model.config, cfg, output_dir=str(tmp_path), evaluator_cls=_evaluator_cls())
    first = evaluator.evaluate(params_a, step=3)
    records = evaluator.predictions()
    sample_fn = predict.compiled_function(model.config, evaluator.decode_configs[0], "sample")
    compiles = sample_fn._cache_size()  # pylint: disable=protected-access
    second = evaluator.evaluate(params_b, step=5)

    assert set(first) == {"coinflip_gold_cot"}
    metrics = first["coinflip_gold_cot"]
    assert {"accuracy", "answer_found", "mean_generated_length"} <= set(metrics)
    # the seqio metric and the per-record check (answers.is_correct) agree
    assert len(records) == NUM_EXAMPLES
    assert metrics["accuracy"] == pytest.approx(100.0 * np.mean([r["correct"] for r in records]))
    assert all(r["gold"] in ("yes", "no") and r["inputs"].startswith("A coin is heads up.") for r in records)
    assert sample_fn._cache_size() == compiles == 1  # pylint: disable=protected-access
    assert "accuracy" in second["coinflip_gold_cot"]
    logged = [json.loads(line) for line in (tmp_path / "coinflip_gold_cot-metrics.jsonl").read_text().splitlines()]
    assert [line["step"] for line in logged] == [3, 5]
    assert logged[0]["accuracy"] == metrics["accuracy"]
    assert (tmp_path / "coinflip_gold_cot-000005.jsonl").is_file()


def test_self_consistency_adds_accuracy_at_k_on_several_tasks(data_dir, model_and_params, tmp_path):
    del data_dir
    model, (params, _) = model_and_params
    cfg = DatasetConfig("coinflip_gold_cot, gsm8k_gold_cot", LENGTHS, split="test", batch_size=BATCH_SIZE,
                        shuffle=False)
    decode = DecodeConfig(strategy="sample", num_samples=5, temperature=0.7, topk=40)
    evaluator = InferenceEvaluator(model.config, cfg, output_dir=str(tmp_path), evaluator_cls=_evaluator_cls(),
                                   decode_config=decode)
    metrics = evaluator.evaluate(params, step=0)
    assert set(metrics) == {"coinflip_gold_cot", "gsm8k_gold_cot"}
    assert "calculator_accuracy" in metrics["gsm8k_gold_cot"]  # GSM8K's calculator-corrected accuracy
    assert "calculator_accuracy" not in metrics["coinflip_gold_cot"]
    for task, values in metrics.items():
        assert {"accuracy@1", "accuracy@5"} <= set(values)
        records = [r for r in evaluator.predictions() if r["task"] == task]
        assert len(records) == NUM_EXAMPLES and all(len(r["samples"]) == 5 for r in records)
        assert values["accuracy@5"] == pytest.approx(100.0 * np.mean([r["correct"] for r in records]))


def test_user_task_gets_its_own_predict_and_score_metrics_with_lengths_from_data(data_dir, model_and_params,
                                                                                 tmp_path):
    del data_dir
    model, (params, _) = model_and_params
    cfg = DatasetConfig("user_echo_task", None, split="test", batch_size=BATCH_SIZE, shuffle=False,
                        module="user_task")
    evaluator = InferenceEvaluator(model.config, cfg, output_dir=str(tmp_path))
    import user_task  # pylint: disable=import-outside-toplevel
    metrics = evaluator.evaluate(params, step=1)["user_echo_task"]
    assert metrics["num_predictions"] == len(user_task.INPUTS)
    records = evaluator.predictions()
    assert metrics["mean_target_score"] == pytest.approx(np.mean([r["score"] for r in records]), rel=1e-6)
    assert metrics["mean_target_score"] < 0
    assert "answer" not in records[0] and {"prediction", "inputs", "targets"} <= set(records[0])
    # TASK_FEATURE_LENGTHS=None: the longest example (with EOS), not a default of 256
    vocab = evaluator.vocabulary
    longest_input = max(len(vocab.encode(t)) for t in user_task.INPUTS) + 1
    longest_target = max(len(vocab.encode(t.upper())) for t in user_task.INPUTS) + 1
    assert evaluator.feature_lengths[0]["encoder_input_tokens"] == longest_input
    assert evaluator.feature_lengths[0]["decoder_target_tokens"] == longest_target
    assert evaluator.decode_configs[0].max_decode_length == longest_target


def test_score_of_the_greedy_output_is_its_decoding_log_probability(model_and_params):
    model, (params, _) = model_and_params
    rng = np.random.RandomState(0)
    inputs = rng.randint(2, 100, size=(2, 8)).astype(np.int32)
    inputs[:, -1] = EOS_ID
    predictor = Predictor(model.config, params, DecodeConfig(max_decode_length=6))
    output = predictor.predict_batch(inputs)
    targets = np.zeros((2, 6), np.int32)
    for row, tokens in enumerate(output.tokens):
        ids = trim(tokens, EOS_ID) + [EOS_ID]
        targets[row, :len(ids[:6])] = ids[:6]
    decoder_inputs = np.zeros_like(targets)
    decoder_inputs[:, 1:] = targets[:, :-1]
    batch = {"encoder_input_tokens": inputs, "decoder_input_tokens": decoder_inputs,
             "decoder_target_tokens": targets, "decoder_loss_weights": (targets > 0).astype(np.int32)}
    scores = np.asarray(jax.jit(score_function(model.config))(params, batch))
    np.testing.assert_allclose(scores, output.scores, rtol=1e-4, atol=1e-4)


def test_prediction_fields_vote_the_samples_and_check_the_gold_answer():
    samples = [Generation("So no. The answer is no.", 7, -1.0), Generation("The answer is yes.", 5, -2.0),
               Generation("It is yes. The answer is yes.", 8, -3.0)]
    fields = prediction_fields(samples, {"id": b"q1", "answer": b"yes"}, "yesno")
    assert fields["prediction"] == "So no. The answer is no." and fields["num_tokens"] == 7
    assert fields["answer"] == "yes" and fields["correct"] is True and fields["id"] == "q1"
    assert len(fields["samples"]) == 3
    # unknown answer type ('auto'): a number, graded as a number against the gold
    fields = prediction_fields([Generation("3+4=7. The answer is 7.", 9, 0.0)], {"answer": "7.0"}, "auto")
    assert fields["answer"] == "7" and fields["correct"] is True and fields["id"] is None
    # not an answer-extracting task: only the text fields
    assert set(prediction_fields(samples[:1], {"answer": "yes"}, None)) == {"prediction", "num_tokens"}


def test_predictions_are_padded_to_one_length_as_t5x_returns_them():
    rows = [padded_prediction([5, 6, 7], 5), padded_prediction([8], 5), padded_prediction([1, 2, 3, 4, 9, 9], 5)]
    assert np.stack(rows).tolist() == [[5, 6, 7, EOS_ID, 0], [8, EOS_ID, 0, 0, 0], [1, 2, 3, 4, 9]]
