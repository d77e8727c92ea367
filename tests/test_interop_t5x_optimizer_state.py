"""Adafactor state from T5X checkpoints into our optax state, and native T5X checkpoints out
(`t5x-cot convert --to t5x`): the real fixture, a factored state in T5X's msgpack layout, a
float32 tensorstore checkpoint in T5X's `optimizer/` layout, and ours -> T5X -> ours."""
from __future__ import annotations

import pathlib
import subprocess
import sys

import jax
import numpy as np
import optax
import pytest
import tensorstore as ts
from flax import serialization
from support import subprocess_env, tiny_config

from t5x_cot import checkpoints, optimizers, train_checkpoints
from t5x_cot.interop import convert
from t5x_cot.interop.errors import ConversionError
from t5x_cot.interop.layout import flatten, unflatten
from t5x_cot.interop.t5x_ckpt import T5XCheckpoint
from t5x_cot.interop.t5x_optimizer_state import restore_adafactor_state
from t5x_cot.model.models import EncoderDecoderModel
from t5x_cot.train_state import TrainState

pytestmark = pytest.mark.needs_data
FIXTURE = "t5x_checkpoints/test_t5_tiny.checkpoint_0"
STATE = "optimizer/state/param_states/"


@pytest.fixture(scope="module")
def fixture_path(data_dir: pathlib.Path) -> pathlib.Path:
    return data_dir / FIXTURE


def _factored_part(opt_state):
    return next(p for p in jax.tree.leaves(opt_state, is_leaf=lambda n: isinstance(n, optax.FactoredState))
                if isinstance(p, optax.FactoredState))


def _assert_trees_equal(a, b) -> int:
    leaves_a, leaves_b = jax.tree.leaves(a), jax.tree.leaves(b)
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(leaves_a, leaves_b):
        assert np.asarray(x).dtype == np.asarray(y).dtype
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    return len(leaves_a)


def _fixture_with_trained_state(fixture_path: pathlib.Path, tmp_path: pathlib.Path, step: int) -> pathlib.Path:
    """The fixture (its real Adafactor `param_states` tree, all zeros at step 0) with every state
    array filled with distinct positive values and the step set, as after `step` T5X updates."""
    tree = serialization.msgpack_restore(fixture_path.read_bytes())
    rng = np.random.default_rng(3)
    flat = flatten(tree["optimizer"]["state"]["param_states"])
    tree["optimizer"]["state"]["param_states"] = unflatten(
        {name: rng.uniform(0.1, 1.0, size=value.shape).astype(value.dtype) for name, value in flat.items()})
    tree["optimizer"]["state"]["step"] = np.int32(step)
    path = tmp_path / f"checkpoint_{step}"
    path.write_bytes(serialization.msgpack_serialize(tree))
    return path


@pytest.mark.parametrize("trained", [False, True], ids=["fixture_as_is", "fixture_state_filled"])
def test_fixture_adafactor_state_restores_element_for_element(fixture_path: pathlib.Path, tmp_path: pathlib.Path,
                                                              trained: bool) -> None:
    path = _fixture_with_trained_state(fixture_path, tmp_path, 123) if trained else fixture_path
    params, step = checkpoints.restore_checkpoint(path)
    optimizer = optimizers.adafactor(optimizers.rsqrt_schedule())
    restored = restore_adafactor_state(str(path), optimizer.init(params))
    checkpoint = T5XCheckpoint(path)
    factored = _factored_part(restored)
    compared = 0
    for key in ("v_row", "v_col", "v"):
        for name, value in flatten(getattr(factored, key)).items():
            expected = checkpoint.read(f"{STATE}{name}/{key}")
            assert value.dtype == expected.dtype and value.shape == expected.shape
            np.testing.assert_array_equal(value, expected)
            compared += value.size
    nonzero = sum(int(np.count_nonzero(v)) for v in flatten(factored.v).values())
    counted = (optax.FactoredState, optax.ScaleByScheduleState)
    counts = [int(p.count) for p in jax.tree.leaves(restored, is_leaf=lambda n: isinstance(n, counted))
              if isinstance(p, counted)]
    print(f"step {step}: {compared} Adafactor state elements equal to the checkpoint's "
          f"({nonzero} nonzero in v), counts {counts}")
    assert counts == [step, step]
    if trained:  # every element of v came from the checkpoint (none left at its fresh zero)
        assert nonzero == sum(v.size for v in flatten(factored.v).values()) > 0


def _t5x_factored_dims(shape: tuple[int, ...], min_dim: int) -> tuple[int, int] | None:
    """T5X's heuristic: the two largest dims when the second largest is >= min_dim."""
    if len(shape) < 2:
        return None
    order = np.argsort(shape)
    return (int(order[-2]), int(order[-1])) if shape[order[-2]] >= min_dim else None


def test_factored_state_and_momentum_in_t5x_msgpack_layout(tmp_path: pathlib.Path) -> None:
    """A checkpoint written here as T5X saves Adafactor(min_dim_size_to_factor=4, beta1=0.9)."""
    rng = np.random.default_rng(0)
    shapes = {"encoder/layers_0/mlp/wi_0/kernel": (6, 10), "encoder/layers_0/mlp/wo/kernel": (10, 6),
              "decoder/decoder_norm/scale": (6,), "token_embedder/embedding": (3, 20)}
    params = {name: rng.normal(size=shape).astype(np.float32) for name, shape in shapes.items()}
    states = {}
    for name, shape in shapes.items():
        dims = _t5x_factored_dims(shape, 4)
        one = np.zeros((1,), np.float32)
        states[name] = {"v_row": one, "v_col": one, "v": one, "m": rng.normal(size=shape).astype(np.float32)}
        if dims is None:
            states[name]["v"] = rng.uniform(size=shape).astype(np.float32)
        else:
            states[name]["v_row"] = rng.uniform(size=np.delete(shape, dims[1])).astype(np.float32)
            states[name]["v_col"] = rng.uniform(size=np.delete(shape, dims[0])).astype(np.float32)
    tree = {"version": 3, "optimizer": {"target": unflatten(params), "state": {
        "step": np.int32(42), "param_states": unflatten({f"{n}/{k}": v for n, s in states.items()
                                                         for k, v in s.items()})}}}
    path = tmp_path / "checkpoint_42"
    path.write_bytes(serialization.msgpack_serialize(tree))

    optimizer = optimizers.adafactor(optimizers.rsqrt_schedule(), min_dim_size_to_factor=4, beta1=0.9)
    restored = restore_adafactor_state(str(path), optimizer.init(unflatten(params)))
    factored = _factored_part(restored)
    ema = next(p for p in restored if isinstance(p, optax.EmaState))
    for name in shapes:
        for key in ("v_row", "v_col", "v"):
            np.testing.assert_array_equal(flatten(getattr(factored, key))[name], states[name][key])
        np.testing.assert_array_equal(flatten(ema.ema)[name], states[name]["m"])
    assert flatten(factored.v_row)["encoder/layers_0/mlp/wi_0/kernel"].shape == (6,)
    schedule = next(p for p in restored if isinstance(p, optax.ScaleByScheduleState))
    assert int(factored.count) == int(ema.count) == int(schedule.count) == 42  # the schedule resumes at 42

    with pytest.raises(ConversionError, match=r"restore_optimizer_state = False"):
        restore_adafactor_state(str(path), optimizers.adafactor(1e-3, beta1=0.9).init(unflatten(params)))
    with pytest.raises(ConversionError, match=r"momentum \(beta1\)"):
        restore_adafactor_state(str(path), optimizers.adafactor(1e-3, min_dim_size_to_factor=4)
                                .init(unflatten(params)))


def test_other_factoring_is_refused_naming_the_array(fixture_path: pathlib.Path) -> None:
    params, _ = checkpoints.restore_checkpoint(fixture_path)
    with pytest.raises(ConversionError, match=r"v_row.*shape \(1,\) where this optimizer has"):
        restore_adafactor_state(str(fixture_path), optimizers.adafactor(1e-3, min_dim_size_to_factor=4).init(params))


def test_float32_tensorstore_checkpoint_in_t5xs_optimizer_layout(fixture_path: pathlib.Path,
                                                                   tmp_path: pathlib.Path) -> None:
    """T5X's checkpointer layout: `{"version": 3, "optimizer": {"target", "state"}}`, one
    `target.<dotted name>` zarr folder per array, `state/step` inline; read as INITIAL_CHECKPOINT_PATH."""
    fixture = T5XCheckpoint(fixture_path)
    directory = tmp_path / "checkpoint_9"
    specs = {}
    for name in fixture.names():
        if name == "optimizer/state/step":
            continue
        array = fixture.read(name)
        relative = name[len("optimizer/"):].replace("/", ".")
        spec = {"driver": "zarr", "dtype": "float32", "kvstore": {"driver": "file", "path": relative},
                "metadata": {"shape": list(array.shape), "chunks": list(array.shape), "compressor": {"id": "gzip"}}}
        ts.open(spec | {"kvstore": {"driver": "file", "path": str(directory / relative)}},
                create=True).result().write(array).result()
        specs[name[len("optimizer/"):]] = ts.Spec(spec).to_json()
    tree = unflatten(specs)
    tree["state"]["step"] = np.int32(9)
    (directory / "checkpoint").write_bytes(serialization.msgpack_serialize({"version": 3, "optimizer": tree}))

    params, step = checkpoints.restore_checkpoint(directory)
    expected, _ = checkpoints.restore_checkpoint(fixture_path)
    assert step == 9
    assert _assert_trees_equal(params, expected) == len(fixture.param_names())
    template = optimizers.adafactor(1e-3).init(params)
    from_directory = _factored_part(restore_adafactor_state(str(directory), template))
    from_fixture = _factored_part(restore_adafactor_state(str(fixture_path), template))
    assert int(from_directory.count) == 9
    _assert_trees_equal(from_directory._replace(count=0), from_fixture._replace(count=0))


def _convert(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "t5x_cot.cli", "convert", *args], env=subprocess_env(),
                          capture_output=True, text=True, timeout=300)


def test_ours_to_t5x_to_ours_is_bit_exact_with_optimizer_state(tmp_path: pathlib.Path) -> None:
    config = tiny_config(vocab_size=160, emb_dim=8, mlp_dim=130)  # wi/wo (8, 130): factored at min_dim 4
    model = EncoderDecoderModel(config)
    params = model.init_params(jax.random.PRNGKey(1), {"encoder_input_tokens": (2, 8), "decoder_target_tokens": (2, 8)})
    optimizer = optimizers.adafactor(optimizers.constant_schedule(1e-2), min_dim_size_to_factor=4, beta1=0.9)
    state = TrainState.create(params, optimizer)
    update = jax.jit(lambda s, g: s.apply_gradients(g, optimizer))
    for seed in range(3):  # nonzero moments, momentum and counts
        keys = jax.random.split(jax.random.PRNGKey(seed), len(jax.tree.leaves(params)))
        grads = jax.tree.unflatten(jax.tree.structure(params),
                                   [jax.random.normal(k, p.shape) for k, p in zip(keys, jax.tree.leaves(params))])
        state = update(state, grads)
    model_dir = tmp_path / "ours"
    saver = train_checkpoints.TrainCheckpointer(model_dir, use_async=False)
    saver.save(3, state)
    saver.close()
    checkpoints.write_config(model_dir, config)

    out = _convert("--from", "ours", str(model_dir / "checkpoint_3"), "--to", "t5x", str(tmp_path / "t5x"))
    assert out.returncode == 0, out.stderr[-2000:]
    written = tmp_path / "t5x" / "checkpoint_3"
    index = serialization.msgpack_restore((written / "checkpoint").read_bytes())
    assert index["version"] == 3 and set(index["optimizer"]) == {"target", "state"}
    assert int(index["optimizer"]["state"]["step"]) == 3  # inline, as T5X writes it
    kernel = index["optimizer"]["target"]["encoder"]["layers_0"]["mlp"]["wo"]["kernel"]
    assert kernel["kvstore"]["path"].rstrip("/") == "target.encoder.layers_0.mlp.wo.kernel"
    assert (written / "state.param_states.encoder.layers_0.mlp.wo.kernel.v_row" / ".zarray").is_file()

    restored_params, step = checkpoints.restore_checkpoint(written)  # what INITIAL_CHECKPOINT_PATH reads
    assert step == 3
    count = _assert_trees_equal(restored_params, jax.device_get(state.params))
    restored_state = restore_adafactor_state(str(written), jax.device_get(optimizer.init(params)))
    count += _assert_trees_equal(restored_state, jax.device_get(state.opt_state))

    convert.convert("t5x", str(written), "ours", str(tmp_path / "back"))
    reloaded, _ = checkpoints.load_params(tmp_path / "back")
    count += _assert_trees_equal(reloaded, jax.device_get(state.params))
    convert.convert("t5x", str(written), "t5x", str(tmp_path / "again"))
    twice = restore_adafactor_state(str(tmp_path / "again" / "checkpoint_3"), jax.device_get(optimizer.init(params)))
    count += _assert_trees_equal(twice, jax.device_get(state.opt_state))
    print(f"ours -> T5X -> ours: {count} arrays bit-exact (params, v_row/v_col/v, momentum, counts)")


def test_restored_state_continues_as_t5x_adafactor_would(tmp_path: pathlib.Path) -> None:
    """The next update from a restored state is T5X's update from the checkpoint's v_row/v_col/v
    at the checkpoint's step (T5X's rule written out in numpy in test_optimizers)."""
    from test_optimizers import t5x_adafactor_step

    rng = np.random.default_rng(5)
    params = {"encoder": {"wide": {"kernel": rng.normal(0, 0.05, (128, 130)).astype(np.float32)},
                          "small": {"kernel": rng.normal(0, 0.05, (8, 20)).astype(np.float32)}}}
    one = np.zeros((1,), np.float32)
    states = {"encoder/wide/kernel": {"v_row": rng.uniform(0.1, 1, 128).astype(np.float32),
                                      "v_col": rng.uniform(0.1, 1, 130).astype(np.float32), "v": one, "m": one},
              "encoder/small/kernel": {"v_row": one, "v_col": one, "m": one,
                                       "v": rng.uniform(0.1, 1, (8, 20)).astype(np.float32)}}
    tree = {"version": 3, "optimizer": {"target": params, "state": {
        "step": np.int32(5), "param_states": unflatten({f"{n}/{k}": v for n, s in states.items() for k, v in s.items()})}}}
    path = tmp_path / "checkpoint_5"
    path.write_bytes(serialization.msgpack_serialize(tree))
    optimizer = optimizers.adafactor(optimizers.constant_schedule(1e-2))
    restored = restore_adafactor_state(str(path), jax.eval_shape(optimizer.init, params))
    grads = jax.tree.map(lambda p: rng.normal(size=p.shape).astype(np.float32), params)
    updates, _ = optimizer.update(grads, restored, params)
    for name, update in flatten(updates).items():
        state = {k: v.astype(np.float64) for k, v in states[name].items() if v.shape != (1,)}
        param = flatten(params)[name].astype(np.float64)
        expected, _ = t5x_adafactor_step(param, flatten(grads)[name].astype(np.float64), state, 5, 1e-2)
        np.testing.assert_allclose(param + np.asarray(update), expected, rtol=2e-5, atol=1e-7)


def test_other_optimizers_are_refused_and_with_step_sets_every_count(fixture_path: pathlib.Path) -> None:
    from t5x_cot.interop.t5x_optimizer_state import with_step

    params, _ = checkpoints.restore_checkpoint(fixture_path)
    with pytest.raises(ConversionError, match="not one Adafactor"):
        restore_adafactor_state(str(fixture_path), optax.adamw(1e-3).init(params))
    moved = with_step(optimizers.adafactor(optimizers.rsqrt_schedule(), beta1=0.9).init(params), 77)
    counted = (optax.FactoredState, optax.EmaState, optax.ScaleByScheduleState)
    counts = [int(p.count) for p in jax.tree.leaves(moved, is_leaf=lambda n: isinstance(n, counted))
              if isinstance(p, counted)]
    assert counts == [77, 77, 77]


def test_initial_opt_state_restores_t5x_state_or_starts_fresh_at_the_step(fixture_path: pathlib.Path,
                                                                          tmp_path: pathlib.Path) -> None:
    from t5x_cot.interop.t5x_optimizer_state import initial_opt_state

    path = _fixture_with_trained_state(fixture_path, tmp_path, 50)
    params, step = checkpoints.restore_checkpoint(path)
    optimizer = optimizers.adafactor(optimizers.rsqrt_schedule())
    fresh = optimizer.init(params)
    restored, from_checkpoint = initial_opt_state(str(path), jax.eval_shape(optimizer.init, params), fresh, step)
    assert from_checkpoint and int(_factored_part(restored).count) == 50
    np.testing.assert_array_equal(flatten(_factored_part(restored).v)["token_embedder/embedding"],
                                  T5XCheckpoint(path).read(STATE + "token_embedder/embedding/v"))
    started, from_checkpoint = initial_opt_state(str(path), None, fresh, step, restore=False)
    assert not from_checkpoint and int(_factored_part(started).count) == 50
    assert all(not np.any(v) for v in flatten(_factored_part(started).v).values())
    checkpoints.save_params(tmp_path / "ours", params, None)  # not a T5X checkpoint: fresh, at its step
    _, from_checkpoint = initial_opt_state(str(tmp_path / "ours"), None, fresh, 0)
    assert not from_checkpoint


def test_a_params_only_t5x_checkpoint_starts_a_fresh_state_at_its_step(fixture_path: pathlib.Path,
                                                                        tmp_path: pathlib.Path) -> None:
    """An exported T5X checkpoint without `param_states` (params and step only) is not an error."""
    from train_helpers import write_t5x_checkpoint

    from t5x_cot.interop.t5x_optimizer_state import has_param_states, initial_opt_state

    params, _ = checkpoints.restore_checkpoint(fixture_path)
    path = tmp_path / "checkpoint_7"
    write_t5x_checkpoint(path, jax.device_get(params), step=7)
    assert not has_param_states(T5XCheckpoint(path)) and has_param_states(T5XCheckpoint(fixture_path))
    fresh = optimizers.adafactor(optimizers.rsqrt_schedule()).init(params)
    started, from_checkpoint = initial_opt_state(str(path), None, fresh, 7)
    assert not from_checkpoint and int(_factored_part(started).count) == 7
