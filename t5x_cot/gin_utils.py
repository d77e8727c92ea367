"""gin flags as T5X users know them: `--gin_file`, `--gin.NAME=value`, `--gin_bindings`,
`--gin_search_paths`, with one-line errors for a typo in a binding or a missing macro.

The shipped configs (the repository's `gin/` folder) are always on the
search path, so `gin/models/t5_1_1/tiny.gin` and `models/t5_1_1/tiny.gin` resolve from any
working directory.
"""
from __future__ import annotations

import difflib
import importlib
import importlib.resources
import os
import pathlib
import re
import tokenize
from collections.abc import Iterator, Sequence
from typing import Any


import gin


class GinConfigError(ValueError):
    """A gin file or binding that cannot be used; the message is one line naming it."""

RUN_MACROS = ("MODEL_DIR", "MIXTURE_OR_TASK_NAME", "MIXTURE_OR_TASK_MODULE", "TASK_FEATURE_LENGTHS",
              "TRAIN_STEPS", "INITIAL_CHECKPOINT_PATH", "BATCH_SIZE", "DROPOUT_RATE", "EVAL_PERIOD",
              "RANDOM_SEED", "USE_CACHED_TASKS")
_FLAG = re.compile(r"^--(gin_file|gin_bindings|gin_search_paths|gin\.[^=]+)(?:=(.*))?$", re.S)
_LOCATION = re.compile(r'In (?:file "(?P<file>[^"]+)", line (?P<line>\d+)|bindings string line (?P<bline>\d+))')


def shipped_config_dir() -> pathlib.Path:
    """The folder of the gin files shipped with t5x_cot.

    In a source checkout (and an editable install) that is the repository's `gin/`; an
    installed wheel carries the same files as package data under `t5x_cot/gin_configs/`.
    """
    checkout = pathlib.Path(__file__).resolve().parent.parent / "gin"
    if (checkout / "runs").is_dir():
        return checkout
    return pathlib.Path(str(importlib.resources.files("t5x_cot") / "gin_configs"))


def default_search_paths() -> list[str]:
    """The working directory and the shipped config folder."""
    return [os.getcwd(), str(shipped_config_dir())]


def resolve_gin_file(name: str, search_paths: Sequence[str]) -> str:
    """The path of gin file `name`: as given, under a search path, or shipped (`gin/` optional)."""
    candidates = [pathlib.Path(name)]
    candidates += [pathlib.Path(root) / name for root in search_paths]
    if name.startswith("gin/"):
        candidates.append(shipped_config_dir() / name[len("gin/"):])
    for path in candidates:
        if path.is_file():
            return str(path.resolve())
    raise GinConfigError(
        f"gin file {name!r} not found (looked in the working directory and {', '.join(search_paths)})")


def split_gin_flags(argv: Sequence[str]) -> tuple[list[str], list[str], list[str], list[str]]:
    """Split argv into (gin files, bindings, search paths, remaining argv).

    Accepts `--flag=value` and `--flag value`; `--gin.NAME=value` becomes binding `NAME=value`;
    `--gin_search_paths` takes a comma-separated list and is repeatable.
    """
    files: list[str] = []
    bindings: list[str] = []
    paths: list[str] = []
    rest: list[str] = []
    args = list(argv)
    i = 0
    while i < len(args):
        match = _FLAG.match(args[i])
        if not match:
            rest.append(args[i])
            i += 1
            continue
        flag, value = match.group(1), match.group(2)
        if value is None:
            if i + 1 >= len(args):
                raise GinConfigError(f"flag --{flag} needs a value")
            value = args[i + 1]
            i += 1
        i += 1
        if flag == "gin_file":
            files.append(value)
        elif flag == "gin_bindings":
            bindings.append(value)
        elif flag == "gin_search_paths":
            paths.extend(p for p in value.split(",") if p)
        else:
            bindings.append(f"{flag[len('gin.'):]}={value}")
    return files, bindings, paths, rest


def parse_gin_flags(argv: Sequence[str], *, search_paths: Sequence[str] = (),
                    module_macros: Sequence[str] = ("MIXTURE_OR_TASK_MODULE",)) -> list[str]:
    """Parse the gin flags in `argv` into the global gin config; return the other arguments.

    Raises GinConfigError (one line) for a missing file, a syntax error, an unknown
    configurable or parameter, a macro set on the command line that no config uses, a macro
    used but never set, or a required macro (`%gin.REQUIRED`) left unset.
    """
    files, bindings, paths, rest = split_gin_flags(argv)
    parse_gin(files, bindings, [*paths, *search_paths], module_macros=module_macros)
    return rest


def parse_gin(gin_files: Sequence[str], bindings: Sequence[str], search_paths: Sequence[str] = (), *,
              module_macros: Sequence[str] = ("MIXTURE_OR_TASK_MODULE",), require_macros: bool = True) -> None:
    """Clear the gin config, then parse `gin_files` and `bindings` (in order) and validate macros.

    The modules named by `module_macros` (T5X's MIXTURE_OR_TASK_MODULE) are imported first,
    so bindings of the configurables they register resolve. `require_macros=False` lets
    `%gin.REQUIRED` macros stay unset (for tools that only read part of a run config).
    """
    paths = [*search_paths, *default_search_paths()]
    resolved = [resolve_gin_file(name, paths) for name in gin_files]
    for path in reversed(paths):
        gin.add_config_file_search_path(path)
    if module_macros:
        _parse_all(resolved, bindings, skip_unknown=True)
        for name in module_macros:
            module = macro_value(name)
            if isinstance(module, str) and module:
                try:
                    importlib.import_module(module)
                except ImportError as error:
                    raise GinConfigError(f"{name}={module!r} cannot be imported: {error}") from error
    _parse_all(resolved, bindings)
    check_macros(_macro_names(bindings), require=require_macros)


def _parse_all(files: Sequence[str], bindings: Sequence[str], skip_unknown: bool = False) -> None:
    """Clear the config, then parse each file and then the bindings, naming the source on error."""
    gin.clear_config()
    for path in files:
        with clean_errors(path):
            gin.parse_config_file(path, skip_unknown=skip_unknown)
    for binding in bindings:
        with clean_errors("binding"):
            gin.parse_config(binding, skip_unknown=skip_unknown)


def check_macros(cli_macros: Sequence[str] = (), require: bool = True) -> None:
    """Validate macros: each used one is set, none is still REQUIRED, each CLI one is used."""
    defined = {name: value for (name, kind), params in gin.config._CONFIG.items()  # noqa: SLF001
               if kind == "gin.macro" for value in [params.get("value")]}
    used: set[str] = set()
    for params in gin.config._CONFIG.values():  # noqa: SLF001
        for value in params.values():
            used.update(_references(value))
    for name in cli_macros:
        if name not in used:
            raise GinConfigError(
                f"unknown gin macro {name} (no config uses it){_did_you_mean(name, used)}")
    for name in sorted(used):
        if name not in defined:
            raise GinConfigError(f"gin macro %{name} is used but never set{_did_you_mean(name, defined)}")
    missing = [name for name, value in sorted(defined.items()) if _is_required(value) and name in used]
    if missing and require:
        raise GinConfigError(f"missing required gin macro{'s' if len(missing) > 1 else ''} "
                             f"{', '.join(missing)}: set with --gin.NAME=VALUE")


def _is_required(value: Any) -> bool:
    return (isinstance(value, gin.config.ConfigurableReference)
            and value.scoped_selector.split("/")[0] == "gin.REQUIRED")


def _macro_reference(value: Any) -> str | None:
    """The macro name when `value` is a `%NAME` reference, else None."""
    if isinstance(value, gin.config.ConfigurableReference) and value.configurable.selector == "gin.macro":
        return value.scoped_selector.rsplit("/", 1)[0]
    return None


def _references(value: Any) -> Iterator[str]:
    """Macro names referenced (as `%NAME`) anywhere inside a bound value."""
    name = _macro_reference(value)
    if name is not None:
        yield name
    elif isinstance(value, dict):
        for item in value.values():
            yield from _references(item)
    elif isinstance(value, (list, tuple, set)):
        for item in value:
            yield from _references(item)


def _macro_names(bindings: Sequence[str]) -> list[str]:
    names = []
    for binding in bindings:
        key = binding.split("=", 1)[0].strip()
        if key and "." not in key and "/" not in key and "\n" not in binding.strip():
            names.append(key)
    return names


def _did_you_mean(name: str, known: Any) -> str:
    close = difflib.get_close_matches(name, sorted(known), n=1)
    return f" (did you mean {close[0]}?)" if close else ""


class clean_errors:
    """Context manager turning gin's multi-line errors into one-line GinConfigErrors (file, line)."""

    def __init__(self, source: str = "") -> None:
        self.source = source

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type | None, error: BaseException | None, _tb: Any) -> bool:
        if error is None or isinstance(error, GinConfigError) or not isinstance(error, Exception):
            return False
        text = str(error)
        first = text.strip().splitlines()[0] if text.strip() else type(error).__name__
        where = f"{self.source}: " if self.source else ""
        match = _LOCATION.search(text)
        if match and match.group("file"):
            where = f"{match.group('file')}:{match.group('line')}: "
        elif match:
            statement = text[match.end():].strip().splitlines()
            where = f"binding {statement[0].strip()!r}: " if statement else "binding: "
        elif isinstance(error, SyntaxError) and error.lineno:
            where = f"{error.filename or self.source}:{error.lineno}: "
            first = error.msg or first
        elif isinstance(error, tokenize.TokenError) and len(error.args) > 1:
            first = f"line {error.args[1][0]}: {error.args[0]}"
        raise GinConfigError(f"gin: {where}{first}") from error


def macro_value(name: str, default: Any = None) -> Any:
    """The value bound to macro `name` (following `%OTHER` references), or `default`."""
    params = gin.config._CONFIG.get((name, "gin.macro"))  # noqa: SLF001
    if params is None:
        return default
    value = params.get("value")
    reference = _macro_reference(value)
    return value if reference is None else macro_value(reference, default)


def write_operative_config(model_dir: str, filename: str = "config.gin") -> pathlib.Path:
    """Write the operative gin config (bindings used so far) to `model_dir/filename`."""
    path = pathlib.Path(model_dir) / filename
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(gin.operative_config_str(), encoding="utf-8")
    return path


def call_configurable(selector: str, **kwargs: Any) -> Any:
    """Call the configurable `selector` with its gin bindings; a missing argument is a GinConfigError."""
    configured = gin.get_configurable(selector)
    try:
        return configured(**kwargs)
    except TypeError as error:
        if "In call to configurable" not in str(error):
            raise
        text = str(error).strip().splitlines()
        missing = next((line.strip() for line in text if "No values supplied" in line), text[0])
        raise GinConfigError(f"gin: {selector}: {missing}") from error


_REGISTERED: set[str] = set()


def run_configured(argv: Sequence[str], fn: Any, module: str) -> Any:
    """Parse the gin flags in `argv`, make `fn` configurable as `module.<name>`, and call it.

    The shared body of the gin entry points (`python -m t5x_cot.eval`, `... .infer`): any
    argument that is not a gin flag is a GinConfigError.
    """
    files, bindings, paths, rest = split_gin_flags(argv)
    if rest:
        raise GinConfigError(f"unknown arguments: {' '.join(rest)}")
    register_configurables()
    if f"{module}.{fn.__name__}" not in gin.config._REGISTRY:  # noqa: SLF001
        gin.external_configurable(fn, name=fn.__name__, module=module, denylist=["progress"])
    parse_gin(files, bindings, paths)
    return call_configurable(f"{module}.{fn.__name__}")


def register_configurables() -> None:
    """Make the training core's functions and classes gin-configurable (idempotent).

    Names as used in `gin/runs/*.gin`: `train`, `CheckpointConfig`, `DatasetConfig`,
    `partitioning.Partitioner`, `partitioning.standard_logical_axis_rules`,
    `partitioning.fsdp_logical_axis_rules`, `optimizers.adafactor`,
    `optimizers.create_learning_rate_scheduler` (and the other schedules).
    """
    from t5x_cot import data_pipeline, optimizers, partitioning
    from t5x_cot import train as train_lib

    targets = [
        (train_lib, ("train", "CheckpointConfig")),
        (data_pipeline, ("DatasetConfig",)),
        (partitioning, ("Partitioner", "standard_logical_axis_rules", "fsdp_logical_axis_rules")),
        (optimizers, ("adafactor", "create_learning_rate_scheduler", "constant_schedule",
                      "rsqrt_schedule", "linear_decay_schedule")),
    ]
    for module, names in targets:
        for name in names:
            key = f"{module.__name__}.{name}"
            if key not in _REGISTERED:
                gin.external_configurable(getattr(module, name), name=name, module=module.__name__)
                _REGISTERED.add(key)


def is_registered(selector: str) -> bool:
    """Whether a gin configurable matches `selector`."""
    try:
        gin.get_configurable(selector)
    except ValueError:
        return False
    return True


def model_of_config(model: Any) -> Any:
    """What the config binds to %MODEL (gin calls this with `model=%MODEL`)."""
    return model


def model_from_gin(gin_files: Sequence[str], bindings: Sequence[str] = (),
                   search_paths: Sequence[str] = ()) -> Any:
    """Parse gin files and bindings and build the model they bind to the MODEL macro."""
    register_configurables()
    if not is_registered("t5x_cot.gin_utils.model_of_config"):
        gin.external_configurable(model_of_config, module="t5x_cot.gin_utils")
    parse_gin(gin_files, [*bindings, "t5x_cot.gin_utils.model_of_config.model = %MODEL"], search_paths,
              module_macros=(), require_macros=False)
    return call_configurable("t5x_cot.gin_utils.model_of_config")
