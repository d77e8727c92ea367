"""orbax checkpoints: params-only ("ours") checkpoints and the training checkpoints of a MODEL_DIR.

Layouts
- params checkpoint ("ours"): `<dir>/config.json` (T5Config fields) + `<dir>/params/` (orbax
  PyTree of the float32 param tree, T5X names). `save_params` / `load_params`.
- training run: `MODEL_DIR/config.json` (T5Config fields of the run) and one
  `MODEL_DIR/checkpoint_<step>/` per saved step holding the items `params/`, `opt_state/` and
  `meta/` (JSON: step, data position). A step dir therefore reads like a params checkpoint.
  `t5x_cot.train_checkpoints` saves and restores them.
"""
from __future__ import annotations

import dataclasses
import json
import pathlib
import re
from collections.abc import Mapping
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

from t5x_cot import paths
from t5x_cot.errors import UserError, one_line

CONFIG_FILE = "config.json"
PARAMS_ITEM = "params"
OPT_STATE_ITEM = "opt_state"
META_ITEM = "meta"
STEP_PREFIX = "checkpoint"
_STEP_DIR = re.compile(rf"^{STEP_PREFIX}_(\d+)$")
# T5Config fields that do not change the param tree; a run may change them on resume.
RUNTIME_FIELDS = frozenset({"dtype", "dropout_rate", "remat_policy", "float32_attention_logits"})
# What reading a damaged checkpoint raises: missing files OSError, tensorstore ValueError, and
# orbax wraps a chunk that fails to decode in a bare Exception (the cause is chained to it).
READ_ERRORS = (Exception,)


RESTORE_MODES = ("specific", "latest", "all")
"""What RestoreCheckpointConfig.mode selects: that checkpoint, the newest in a dir, every one in it."""


class CheckpointError(UserError, ValueError):
    """A checkpoint that is missing, malformed, or does not match the run."""


def describe(error: BaseException) -> str:
    """One line saying what went wrong: the innermost chained cause, with its type unless it is ours."""
    while error.__cause__ is not None:
        error = error.__cause__
    return one_line(error) if isinstance(error, CheckpointError) else f"{type(error).__name__}: {one_line(error)}"


# ---------------------------------------------------------------------------- config.json


def config_to_dict(config: Any) -> dict[str, Any]:
    """T5Config (or a mapping of its fields) as a JSON-ready dict."""
    fields = dataclasses.asdict(config) if dataclasses.is_dataclass(config) else dict(config)
    return {key: list(value) if isinstance(value, tuple) else value for key, value in fields.items()}


def config_from_dict(fields: Mapping[str, Any]) -> Any:
    """A T5Config from stored fields (lists back to tuples; unknown fields are an error)."""
    from t5x_cot.model.network import T5Config  # the model package stays optional here

    known = {field.name for field in dataclasses.fields(T5Config)}
    unknown = sorted(set(fields) - known)
    if unknown:
        raise CheckpointError(f"config.json has fields T5Config does not know: {', '.join(unknown)}")
    return T5Config(**{key: tuple(value) if isinstance(value, list) else value
                       for key, value in fields.items()})


def write_config(directory: str | pathlib.Path, config: Any) -> str:
    """Write `directory/config.json` from a T5Config (local or a URL such as gs://)."""
    path = paths.join(directory, CONFIG_FILE)
    paths.write_text(path, json.dumps(config_to_dict(config), indent=2, sort_keys=True) + "\n")
    return path


def read_config_dict(directory: str | pathlib.Path) -> dict[str, Any] | None:
    """The fields in `directory/config.json`, or None when there is none."""
    path = paths.join(directory, CONFIG_FILE)
    if not paths.exists(path):
        return None
    try:
        fields = json.loads(paths.read_text(path))
    except json.JSONDecodeError as error:
        raise CheckpointError(f"{path}: line {error.lineno}: not valid JSON ({error.msg})") from error
    if not isinstance(fields, dict):
        raise CheckpointError(f"{path}: expected a JSON object of T5Config fields")
    return fields


def config_differences(stored: Mapping[str, Any], current: Mapping[str, Any],
                       ignore: frozenset[str] = RUNTIME_FIELDS) -> list[str]:
    """Human-readable `field: stored -> current` for each param-shaping field that differs."""
    return [f"{key}: {stored.get(key)!r} -> {current.get(key)!r}"
            for key in sorted(set(stored) | set(current))
            if key not in ignore and stored.get(key) != current.get(key)]


# ---------------------------------------------------------------------------- paths


def step_dirs(model_dir: str | pathlib.Path) -> dict[int, pathlib.Path]:
    """Finished `checkpoint_<step>` dirs of a MODEL_DIR, by step."""
    root = pathlib.Path(model_dir)
    if not root.is_dir():
        return {}
    found = {}
    for child in root.iterdir():
        match = _STEP_DIR.match(child.name)
        if match and (child / PARAMS_ITEM).is_dir():
            found[int(match.group(1))] = child
    return dict(sorted(found.items()))


def resolve_params_dir(path: str | pathlib.Path) -> tuple[pathlib.Path, pathlib.Path]:
    """(params item dir, dir holding config.json) for a params checkpoint, step dir or MODEL_DIR."""
    root = pathlib.Path(path)
    if (root / PARAMS_ITEM).is_dir():
        config_dir = root if (root / CONFIG_FILE).is_file() else root.parent
        return root / PARAMS_ITEM, config_dir
    steps = step_dirs(root)
    if steps:
        return steps[max(steps)] / PARAMS_ITEM, root
    raise CheckpointError(
        f"{root}: no checkpoint here (expected {PARAMS_ITEM}/ and {CONFIG_FILE}, "
        f"or {STEP_PREFIX}_<step>/ dirs)")


# ---------------------------------------------------------------------------- params checkpoints


def save_params(path: str | pathlib.Path, params: Any, config: Any) -> pathlib.Path:
    """Write a params-only checkpoint: `path/config.json` and `path/params/` (orbax PyTree).

    `params` is the float32 param tree (numpy or jax arrays); `config` a T5Config (or None to
    write no config.json). Overwrites an existing checkpoint at `path`.
    """
    root = pathlib.Path(path).absolute()
    root.mkdir(parents=True, exist_ok=True)
    ocp.PyTreeCheckpointer().save(root / PARAMS_ITEM, params, force=True)
    if config is not None and jax.process_index() == 0:
        write_config(root, config)
    return root


def params_metadata(params_dir: pathlib.Path) -> Any:
    try:
        metadata = ocp.PyTreeCheckpointer().metadata(params_dir)
    except (FileNotFoundError, ValueError) as error:
        raise CheckpointError(f"{params_dir}: not an orbax PyTree checkpoint ({error})") from error
    item = getattr(metadata, "item_metadata", metadata)
    return getattr(item, "tree", item)


def restore_params(path: str | pathlib.Path, abstract_params: Any = None) -> Any:
    """Params from a params checkpoint, a training step dir or a MODEL_DIR (latest step).

    With `abstract_params` (a tree of jax.ShapeDtypeStruct carrying shardings), the arrays are
    read straight into those shardings and the stored tree must match it exactly (names and
    shapes); otherwise host numpy arrays are returned.
    """
    params_dir, _ = resolve_params_dir(path)
    metadata = params_metadata(params_dir)
    checkpointer = ocp.PyTreeCheckpointer()
    if abstract_params is None:
        restore_args = jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), metadata)
        args = ocp.args.PyTreeRestore(restore_args=restore_args)
    else:
        check_tree_matches(metadata, abstract_params, str(params_dir))
        restore_args = jax.tree.map(
            lambda x: ocp.ArrayRestoreArgs(sharding=x.sharding, global_shape=x.shape, dtype=x.dtype),
            abstract_params)
        args = ocp.args.PyTreeRestore(item=abstract_params, restore_args=restore_args)
    try:
        return checkpointer.restore(params_dir, args=args)
    except READ_ERRORS as error:
        raise CheckpointError(f"{params_dir}: cannot be read ({describe(error)})") from error


def is_t5x_checkpoint(path: str | pathlib.Path) -> bool:
    """True for a native T5X checkpoint: a msgpack file, or a dir with a `checkpoint` index file."""
    text = str(path)
    if paths.is_url(text):
        return paths.exists(paths.join(text, "checkpoint")) or (
            paths.exists(text) and not paths.is_dir(text))
    root = pathlib.Path(text)
    if root.is_file():
        return True
    return (root / "checkpoint").is_file() and not (root / PARAMS_ITEM).is_dir()


def restore_checkpoint(path: str | pathlib.Path, abstract_params_or_config: Any = None,
                       dtype: str | None = None) -> tuple[Any, int]:
    """(params, step) from any checkpoint a run can start from or evaluate.

    `path`: a native T5X checkpoint (msgpack `checkpoint_N` file or tensorstore `checkpoint_N/`
    dir, local or gs://, read one array at a time), one of our training step dirs, a MODEL_DIR
    (its latest step) or a params checkpoint (step 0). `abstract_params_or_config`: a tree of
    `jax.ShapeDtypeStruct` with shardings (params are placed straight into them), a T5Config
    (host numpy params, checked against its shapes), or None (host params, unchecked).
    `dtype` (RestoreCheckpointConfig.dtype): params are rounded to it; with abstract params
    they come back in the abstract dtype, else in `dtype`.
    """
    abstract = _abstract_params(abstract_params_or_config)
    if is_t5x_checkpoint(path):
        params, step = _read_t5x(path, abstract_params_or_config)
    else:
        step = _step_of(path)
        if abstract is not None and dtype is None and _has_shardings(abstract):
            return restore_params(path, abstract), step
        params = restore_params(path)
    if abstract is not None:
        check_tree_matches(params, abstract, str(path))
    if dtype is not None:
        params = jax.tree.map(lambda x: np.asarray(x).astype(jnp_dtype(dtype)), params)
    if abstract is None or not _has_shardings(abstract):
        return params, step
    return jax.tree.map(lambda x, a: jax.device_put(np.asarray(x).astype(a.dtype), a.sharding), params, abstract), step


def jnp_dtype(name: str) -> Any:
    """A dtype from its T5X spelling ('float32', 'bfloat16', ...)."""
    import jax.numpy as jnp

    try:
        return jnp.dtype(name)
    except TypeError as error:
        raise CheckpointError(f"unknown checkpoint dtype {name!r}; expected e.g. 'float32' or 'bfloat16'") from error


def _abstract_params(spec: Any) -> Any:
    if spec is None or not dataclasses.is_dataclass(spec):
        return spec
    from t5x_cot.interop.layout import param_shapes, unflatten
    from t5x_cot.model.network import stack_layers

    unscanned = dataclasses.replace(spec, scan_layers=False)
    tree = unflatten({name: jax.ShapeDtypeStruct(shape, np.float32)
                      for name, shape in param_shapes(unscanned).items()})
    return stack_layers(tree, spec) if spec.scan_layers else tree


def _has_shardings(abstract: Any) -> bool:
    return all(getattr(leaf, "sharding", None) is not None for leaf in jax.tree.leaves(abstract))


def _read_t5x(path: str | pathlib.Path, spec: Any) -> tuple[Any, int]:
    """(float32 numpy params in our tree, step) of a native T5X checkpoint."""
    from t5x_cot.interop.errors import ConversionError
    from t5x_cot.interop.sources import T5XSource, read_tree
    from t5x_cot.model.network import stack_layers

    try:
        source = T5XSource(str(path))
        params = read_tree(source)
        names = source.checkpoint.names()
        step_name = next((n for n in ("optimizer/state/step", "state/step", "step") if n in names), None)
        step = int(source.checkpoint.read(step_name)) if step_name else 0
    except ConversionError as error:
        raise CheckpointError(f"T5X checkpoint: {error}") from error
    scanned = getattr(spec, "scan_layers", False) or (
        spec is not None and not dataclasses.is_dataclass(spec)
        and "layers" in dict(spec).get("encoder", {}))
    if scanned:
        params = stack_layers(params, dataclasses.replace(source.config, scan_layers=True))
    return params, step


def _step_of(path: str | pathlib.Path) -> int:
    """The step of one of our checkpoints: a step dir's or MODEL_DIR's latest step; 0 for params."""
    root = pathlib.Path(path)
    match = _STEP_DIR.match(root.name)
    if match and (root / PARAMS_ITEM).is_dir():
        return int(match.group(1))
    steps = step_dirs(root)
    return max(steps) if steps and not (root / PARAMS_ITEM).is_dir() else 0


def load_params(path: str | pathlib.Path) -> tuple[Any, Any]:
    """(params as numpy arrays, T5Config or None) from a params checkpoint, step dir or MODEL_DIR."""
    _, config_dir = resolve_params_dir(path)
    fields = read_config_dict(config_dir)
    return restore_params(path), (None if fields is None else config_from_dict(fields))


def check_tree_matches(stored: Any, expected: Any, where: str) -> None:
    """Raise CheckpointError listing names/shapes that differ between two param trees."""
    stored_shapes, expected_shapes = tree_shapes(stored), tree_shapes(expected)
    problems = [f"{name}: missing in checkpoint" for name in sorted(set(expected_shapes) - set(stored_shapes))]
    problems += [f"{name}: in checkpoint but not in model" for name in sorted(set(stored_shapes) - set(expected_shapes))]
    problems += [f"{name}: checkpoint {stored_shapes[name]} vs model {shape}"
                 for name, shape in sorted(expected_shapes.items())
                 if name in stored_shapes and stored_shapes[name] != shape]
    if problems:
        shown = "; ".join(problems[:6]) + (f"; ... {len(problems) - 6} more" if len(problems) > 6 else "")
        raise CheckpointError(f"{where}: param tree does not match the model: {shown}")


def tree_shapes(tree: Any) -> dict[str, tuple[int, ...]]:
    """{`encoder/layers_0/.../kernel`: shape} of every array in a param tree (or its metadata)."""
    return {_key_name(k): tuple(v.shape) for k, v in jax.tree_util.tree_flatten_with_path(tree)[0]}


def _key_name(path: tuple) -> str:
    return "/".join(str(getattr(k, "key", getattr(k, "name", getattr(k, "idx", k)))) for k in path)


# ---------------------------------------------------------------------------- training checkpoints


def check_model_dir(model_dir: str | pathlib.Path, config: Any) -> None:
    """Refuse a MODEL_DIR whose checkpoints belong to another model; record the config otherwise.

    Compares `MODEL_DIR/config.json` with `config` (fields that shape the params; dtype,
    dropout and remat may change) and raises CheckpointError naming each difference.
    """
    root = model_dir if paths.is_url(model_dir) else pathlib.Path(model_dir)
    stored = read_config_dict(root)
    current = config_to_dict(config)
    if stored is not None:
        differences = config_differences(stored, current)
        if differences and step_dirs(root):
            raise CheckpointError(
                f"MODEL_DIR {root} holds checkpoints of another model ({'; '.join(differences)}); "
                "use a new MODEL_DIR, or INITIAL_CHECKPOINT_PATH to start from its params")
        if not differences:
            return
    elif step_dirs(root):
        raise CheckpointError(f"MODEL_DIR {root} holds checkpoints but no {CONFIG_FILE}; "
                              "cannot tell which model they belong to")
    if jax.process_index() == 0:
        write_config(root, config)
