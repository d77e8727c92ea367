"""Adafactor matches T5X's update rule; schedules match T5X's factor strings."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from t5x_cot import optimizers


def t5x_adafactor_step(param: np.ndarray, grad: np.ndarray, state: dict, step: int, lr: float) -> tuple:
    """T5X `Adafactor.apply_param_gradient` with its defaults, in numpy (heuristic factoring)."""
    decay = 1.0 - (step + 1.0) ** -0.8
    scale = lr * max(np.sqrt(np.mean(param * param)), 1e-3)
    grad_sqr = grad * grad + 1e-30
    if param.ndim == 2 and sorted(param.shape)[0] >= 128:
        d1, d0 = (int(i) for i in np.argsort(param.shape))  # d0 = largest dim, d1 = second largest
        v_row = decay * state["v_row"] + (1 - decay) * grad_sqr.mean(axis=d0)
        v_col = decay * state["v_col"] + (1 - decay) * grad_sqr.mean(axis=d1)
        row_factor = (v_row / v_row.mean()) ** -0.5
        y = grad * np.expand_dims(row_factor, d0) * np.expand_dims(v_col ** -0.5, d1)
        state = {"v_row": v_row, "v_col": v_col}
    else:
        v = decay * state["v"] + (1 - decay) * grad_sqr
        y = grad * v ** -0.5
        state = {"v": v}
    y = y / max(1.0, np.sqrt(np.mean(y * y)) / 1.0)
    return param - scale * y, state


def test_adafactor_equals_t5x_update_for_factored_and_plain_params() -> None:
    rng = np.random.RandomState(0)
    params = {"kernel": rng.randn(128, 256).astype(np.float32) * 0.05,
              "small": rng.randn(8, 300).astype(np.float32),
              "scale": np.ones(64, np.float32)}
    optimizer = optimizers.adafactor(optimizers.constant_schedule(1e-2))
    opt_state = optimizer.init(params)
    factored = opt_state[0]
    assert factored.v_row["kernel"].shape == (128,) and factored.v_col["kernel"].shape == (256,)
    assert factored.v["small"].shape == (8, 300)
    reference = {"kernel": {"v_row": np.zeros(128), "v_col": np.zeros(256)},
                 "small": {"v": np.zeros((8, 300))}, "scale": {"v": np.zeros(64)}}
    ours = {k: jnp.asarray(v) for k, v in params.items()}
    expected = dict(params)
    update = jax.jit(optimizer.update)
    for step in range(3):
        grads = {k: rng.randn(*v.shape).astype(np.float32) for k, v in params.items()}
        updates, opt_state = update(grads, opt_state, ours)
        ours = jax.tree.map(lambda p, u: p + u, ours, updates)
        for name in params:
            expected[name], reference[name] = t5x_adafactor_step(
                expected[name].astype(np.float64), grads[name].astype(np.float64), reference[name], step, 1e-2)
    for name in params:
        np.testing.assert_allclose(np.asarray(ours[name]), expected[name], rtol=2e-5, atol=1e-6)


@pytest.mark.parametrize("factors, base, steps, expected", [
    ("constant", 1e-3, [0, 10, 10_000], [1e-3, 1e-3, 1e-3]),
    ("constant * rsqrt_decay", 1.0, [0, 10_000, 40_000], [1e-2, 1e-2, 5e-3]),
    ("constant * linear_warmup", 2.0, [0, 5_000, 20_000], [0.0, 1.0, 2.0]),
])
def test_t5x_factor_schedules(factors: str, base: float, steps: list, expected: list) -> None:
    schedule = optimizers.create_learning_rate_scheduler(factors, base, warmup_steps=10_000)
    np.testing.assert_allclose([float(schedule(s)) for s in steps], expected, rtol=1e-6)


def test_linear_decay_and_named_schedules() -> None:
    decay = optimizers.linear_decay_schedule(1e-3, decay_steps=100, warmup_steps=10)
    np.testing.assert_allclose([float(decay(s)) for s in (0, 5, 10, 60, 109)], [0, 5e-4, 1e-3, 5e-4, 1e-5], atol=1e-9)
    assert float(optimizers.rsqrt_schedule()(90_000)) == pytest.approx(1 / 300)
    assert float(optimizers.constant_schedule()(7)) == pytest.approx(1e-3)
    with pytest.raises(ValueError, match="unknown learning-rate factor"):
        optimizers.create_learning_rate_scheduler("constant * cosine_decayy")
