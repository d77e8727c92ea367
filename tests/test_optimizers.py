"""Adafactor matches T5X's update rule; schedules match T5X's factor strings."""
from __future__ import annotations

import math

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


def t5x_learning_rate(factors: str, step: int, base_learning_rate: float = 0.5, warmup_steps: int = 1000,
                      decay_factor: float = 0.5, steps_per_decay: int = 20000, steps_per_cycle: int = 100000,
                      step_offset: int = 0, min_learning_rate: float = 1e-8) -> float:
    """T5X's `utils.create_learning_rate_scheduler` formula (its docstring and defaults), in float64."""
    s = max(0, step - step_offset)
    # T5X computes in float32: the position within a cosine cycle keeps float32's resolution
    cycle_fraction = float(np.float32(max(0.0, (s - warmup_steps) / steps_per_cycle)) % np.float32(1.0))
    value = 1.0
    for name in (n.strip() for n in factors.split("*")):
        value *= {
            "constant": lambda: base_learning_rate,
            "linear_warmup": lambda: min(1.0, s / warmup_steps),
            "linear_decay": lambda: base_learning_rate * min(s / warmup_steps,
                                                             1.0 + decay_factor * (warmup_steps - s)),
            "rsqrt_decay": lambda: 1.0 / math.sqrt(max(s, warmup_steps)),
            "rsqrt_normalized_decay": lambda: math.sqrt(warmup_steps) / math.sqrt(max(s, warmup_steps)),
            "decay_every": lambda: decay_factor ** (s // steps_per_decay),
            "cosine_decay": lambda: max(0.0, 0.5 * (1 + math.cos(math.pi * cycle_fraction))),
        }[name]()
    return max(value, min_learning_rate)


SCHEDULE_FACTORS = ["constant", "linear_warmup", "rsqrt_decay", "rsqrt_normalized_decay", "decay_every",
                    "cosine_decay", "linear_decay", "constant * linear_warmup * rsqrt_decay",
                    "constant * rsqrt_decay", "constant * linear_warmup * rsqrt_normalized_decay",
                    "constant * decay_every", "constant * linear_warmup * cosine_decay"]
SCHEDULE_STEPS = [0, 1, 499, 1000, 1001, 25_000, 60_000, 150_123, 1_010_000]
SCHEDULE_SETTINGS = [{}, dict(base_learning_rate=0.01, warmup_steps=500, decay_factor=0.9, steps_per_decay=1000,
                              steps_per_cycle=3000, step_offset=700, min_learning_rate=1e-4)]


@pytest.mark.parametrize("settings", SCHEDULE_SETTINGS, ids=["t5x_defaults", "all_arguments_set"])
def test_every_t5x_factor_matches_t5x_formula(settings: dict) -> None:
    """T5X's `utils.create_learning_rate_scheduler` (compat) vs T5X's formula written out above."""
    from t5x_cot.t5x_compat import utils

    rows, worst = [], 0.0
    for factors in SCHEDULE_FACTORS:
        schedule = jax.jit(utils.create_learning_rate_scheduler(factors, **settings))
        ours = [float(schedule(jnp.asarray(step, jnp.int32))) for step in SCHEDULE_STEPS]
        reference = [t5x_learning_rate(factors, step, **settings) for step in SCHEDULE_STEPS]
        np.testing.assert_allclose(ours, reference, rtol=2e-6, atol=0)
        worst = max(worst, max(abs(a - b) for a, b in zip(ours, reference)))
        rows.append(f"{factors:<50} " + " ".join(f"{value:.4g}" for value in ours))
    print(f"steps {SCHEDULE_STEPS} settings {settings}", *rows, f"max abs difference {worst:.3g}", sep="\n")


def test_finetune_squad1_linear_decay_is_t5xs() -> None:
    """T5X's contrib finetune_squad1.gin schedule: base * min(s / warmup, 1 + decay_factor * (warmup - s))."""
    from t5x_cot.t5x_compat import utils

    schedule = utils.create_learning_rate_scheduler(factors="linear_decay", base_learning_rate=0.001,
                                                    warmup_steps=1001000, min_learning_rate=1e-5,
                                                    decay_factor=3.75e-5)
    values = [float(schedule(step)) for step in (1, 500_000, 1_010_000)]
    print("finetune_squad1 at steps 1 / 500000 / 1010000:", values)
    np.testing.assert_allclose(values, [1e-5, 0.001 * 500_000 / 1001000, 6.625e-4], rtol=1e-6)


def test_schedule_refusals() -> None:
    with pytest.raises(ValueError, match="unknown learning-rate factor"):
        optimizers.create_learning_rate_scheduler("constant * cosine_decayy")
    with pytest.raises(ValueError, match="divide by warmup_steps"):
        optimizers.create_learning_rate_scheduler("constant * linear_warmup", warmup_steps=0)


def test_linear_decay_and_named_schedules() -> None:
    decay = optimizers.linear_decay_schedule(1e-3, decay_steps=100, warmup_steps=10)
    np.testing.assert_allclose([float(decay(s)) for s in (0, 5, 10, 60, 109, 500)],
                               [0, 5e-4, 1e-3, 5e-4, 1e-5, 0], atol=1e-9)
    assert float(optimizers.rsqrt_schedule()(90_000)) == pytest.approx(1 / 300)
    assert float(optimizers.constant_schedule()(7)) == pytest.approx(1e-3)


def test_global_norm_clip_threshold_is_t5xs_global_norm_clipping() -> None:
    """T5X scales every gradient by min(1, threshold / global norm) before the Adafactor
    statistics: over two steps (the first clipped, the second not) the second moments mix the
    clipped gradients, so the update differs from the unclipped optimizer's."""
    from t5x_cot.t5x_compat import adafactor

    rng = np.random.RandomState(1)
    params = {"kernel": rng.randn(128, 130).astype(np.float32) * 0.05, "scale": np.ones(16, np.float32)}
    steps = [{name: rng.randn(*p.shape).astype(np.float32) * scale for name, p in params.items()}
             for scale in (10.0, 0.1)]
    norms = [np.sqrt(sum(np.sum(g.astype(np.float64) ** 2) for g in grads.values())) for grads in steps]
    threshold = float(np.sqrt(norms[0] * norms[1]))  # clips the first step only
    results = {}
    for clip in (threshold, None):
        optimizer = adafactor.Adafactor(global_norm_clip_threshold=clip).to_optax(optimizers.constant_schedule(1e-2))
        state, current = optimizer.init(params), dict(params)
        for grads in steps:
            updates, state = optimizer.update(grads, state, current)
            current = {name: current[name] + np.asarray(updates[name]) for name in params}
        results[clip] = current
    reference = {"kernel": {"v_row": np.zeros(128), "v_col": np.zeros(130)}, "scale": {"v": np.zeros(16)}}
    expected = {name: p.astype(np.float64) for name, p in params.items()}
    for step, (grads, norm) in enumerate(zip(steps, norms)):
        factor = min(1.0, threshold / norm)
        for name in params:
            expected[name], reference[name] = t5x_adafactor_step(
                expected[name], grads[name].astype(np.float64) * factor, reference[name], step, 1e-2)
    for name in params:
        np.testing.assert_allclose(results[threshold][name], expected[name], rtol=2e-5, atol=1e-7)
    difference = max(np.abs(results[threshold][n] - results[None][n]).max() for n in params)
    print(f"global-norm clipping: norms {norms[0]:.1f} / {norms[1]:.2f}, threshold {threshold:.2f}; "
          f"params differ from the unclipped optimizer's by up to {difference:.3g}")
    assert difference > 1e-5
