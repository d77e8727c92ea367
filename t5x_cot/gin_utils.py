"""gin flags as T5X users know them: `--gin_file`, `--gin.NAME=value`, `--gin_bindings`,
`--gin_search_paths`, with one-line errors for a typo in a binding or a missing macro.

The shipped configs (the repository's `gin/` folder, which also holds our own
`t5x/configs/runs/*.gin` and `t5x/examples/t5/*/*.gin` at T5X's paths) are always on the
search path, so `gin/models/t5_1_1/tiny.gin`, `models/t5_1_1/tiny.gin` and
`t5x/configs/runs/finetune.gin` resolve from any working directory. `include` statements
resolve against `--gin_search_paths`, the shipped folder and the including files' folders,
never the working directory.
"""
from __future__ import annotations

import argparse
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

from t5x_cot.errors import UserError


class GinConfigError(UserError, ValueError):
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
    """The shipped config folder (the working directory is never searched for includes)."""
    return [str(shipped_config_dir())]


def resolve_gin_file(name: str, search_paths: Sequence[str]) -> str:
    """The path of gin file `name` given on the command line: as given (relative to the cwd, as
    in T5X), under a search path, or shipped (`gin/` optional)."""
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


def _absl_bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "t", "y"):
        return True
    if text.lower() in ("0", "false", "no", "f", "n"):
        return False
    raise argparse.ArgumentTypeError(f"expected a boolean, got {text!r}")


def add_t5x_flags(parser: argparse.ArgumentParser) -> None:
    """The absl flags T5X's train.py, eval.py and infer.py take (besides the gin flags)."""
    flag = parser.add_argument
    flag("--alsologtostderr", "--logtostderr", nargs="?", const=True, default=False, type=_absl_bool,
         help="log (INFO and up) to stderr")
    flag("--tfds_data_dir", default=None, help="TensorFlow Datasets data dir (overrides the tasks' own)")
    flag("--seqio_additional_cache_dirs", action="append", default=[],
         help="comma-separated extra seqio cache dirs (for USE_CACHED_TASKS=True); repeatable")
    flag("--multiprocess_gpu", nargs="?", const=True, default=False, type=_absl_bool,
         help="initialise JAX's multi-process runtime (with --coordinator_address etc.)")
    flag("--coordinator_address", default=None, help="HOST:PORT of process 0 (multi-host)")
    flag("--process_count", "--num_processes", dest="process_count", type=int, default=None)
    flag("--process_index", "--process_id", dest="process_index", type=int, default=None)
    flag("--distributed", action="store_true", help="call jax.distributed.initialize() and let JAX find the cluster")
    flag("--log_level", default="WARNING", help="Python logging level")


def document_gin_flags(parser: argparse.ArgumentParser) -> None:
    """List the gin flags in --help (`gin_utils.split_gin_flags` takes them out of argv before argparse)."""
    group = parser.add_argument_group("gin flags (as T5X's)")
    group.add_argument("--gin_file", action="append", metavar="FILE",
                       help="a gin file to parse, in order (repeatable); shipped files resolve from any directory")
    group.add_argument("--gin.NAME", metavar="VALUE", dest="gin_binding_example",
                       help="bind NAME=VALUE, e.g. --gin.TRAIN_STEPS=1000 or --gin.train.log_every=5 (repeatable)")
    group.add_argument("--gin_bindings", action="append", metavar="'NAME = VALUE'",
                       help="a gin binding statement (repeatable), applied after the gin files")
    group.add_argument("--gin_search_paths", metavar="DIR[,DIR...]",
                       help="comma-separated folders where --gin_file and include statements are looked up")


def apply_t5x_flags(args: argparse.Namespace) -> None:
    """Act on the flags of `add_t5x_flags`: logging, TFDS dir, seqio cache dirs, multi-process JAX."""
    import logging

    level = "INFO" if args.alsologtostderr else args.log_level.upper()
    logging.basicConfig(level=level, format="%(asctime)s %(name)s: %(message)s")
    if args.alsologtostderr:
        logging.getLogger().setLevel(level)
    cache_dirs = [d for value in args.seqio_additional_cache_dirs for d in value.split(",") if d]
    if args.tfds_data_dir or cache_dirs:
        from t5x_cot import data_pipeline

        seqio = data_pipeline.import_seqio()
        if args.tfds_data_dir:
            seqio.set_tfds_data_dir_override(args.tfds_data_dir)
        if cache_dirs:
            seqio.add_global_cache_dirs(cache_dirs)
    if args.multiprocess_gpu or args.coordinator_address or args.distributed:
        import jax

        jax.distributed.initialize(args.coordinator_address, args.process_count, args.process_index)


class _FlagParser(argparse.ArgumentParser):
    """argparse whose errors are GinConfigErrors (one line) instead of exits."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise GinConfigError(f"unknown or bad arguments: {message}")


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
    set_include_paths([*paths, *dict.fromkeys(os.path.dirname(path) for path in resolved)])
    if module_macros:
        _import_module_macros(resolved, bindings, module_macros)
    _parse_all(resolved, bindings)
    check_macros(_macro_names(bindings), require=require_macros)


def set_include_paths(paths: Sequence[str]) -> None:
    """Where gin looks for `include`d files, in order (replacing gin's default, the cwd)."""
    gin.config._LOCATION_PREFIXES[:] = [str(path) for path in paths]  # noqa: SLF001


def _import_module_macros(files: Sequence[str], bindings: Sequence[str], names: Sequence[str]) -> None:
    """Import the modules named by `names` (MIXTURE_OR_TASK_MODULE) before the real parse.

    A lenient first pass reads their values; when even that pass fails, the values come from
    the command-line bindings alone and the real parse reports the actual error.
    """
    try:
        _parse_all(files, bindings, skip_unknown=True)
        values = {name: macro_value(name) for name in names}
    except GinConfigError:
        values = {name: _binding_value(bindings, name) for name in names}
    for name, module in values.items():
        if isinstance(module, str) and module:
            try:
                importlib.import_module(module)
            except ImportError as error:
                raise GinConfigError(f"{name}={module!r} cannot be imported: {error}") from error


def _binding_value(bindings: Sequence[str], name: str) -> Any:
    """The literal value of `name=...` among the bindings (the last wins), or None."""
    import ast

    value = None
    for binding in bindings:
        key, _, text = binding.partition("=")
        if key.strip() == name:
            try:
                value = ast.literal_eval(text.strip())
            except (ValueError, SyntaxError):
                value = None
    return value


def _parse_all(files: Sequence[str], bindings: Sequence[str], skip_unknown: bool = False) -> None:
    """Clear the config, then parse each file and then the bindings, naming the source on error."""
    gin.clear_config()
    for path in files:
        with clean_errors(path):
            gin.parse_config_file(path, skip_unknown=skip_unknown)
    for binding in bindings:
        with clean_errors("binding"):
            gin.parse_config(_disambiguate(binding), skip_unknown=skip_unknown)


_BINDING_KEY = re.compile(r"^\s*(?P<scope>(?:[\w.]+/)*)(?P<selector>[\w.]+)\.(?P<param>\w+)\s*=")


def _configured_selectors() -> set[str]:
    """Selectors the parsed config binds or references (`@name`)."""
    found = {selector for (_, selector) in gin.config._CONFIG}  # noqa: SLF001

    def walk(value: Any) -> None:
        if isinstance(value, gin.config.ConfigurableReference):
            found.add(value.configurable.selector)
        elif isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, (list, tuple, set)):
            for item in value:
                walk(item)

    for params in gin.config._CONFIG.values():  # noqa: SLF001
        walk(list(params.values()))
    return found


def _disambiguate(binding: str) -> str:
    """`train.x = 1` names the `train` the config files configure when several are registered
    (ours and T5X's `__main__.train`); other bindings are returned unchanged."""
    match = _BINDING_KEY.match(binding)
    if not match:
        return binding
    selector = match.group("selector")
    candidates = [name for name, _ in gin.config._REGISTRY.items()  # noqa: SLF001
                  if name == selector or name.endswith("." + selector)]
    if len(candidates) < 2:
        return binding
    configured = _configured_selectors()
    used = [candidate for candidate in candidates if candidate in configured]
    if len(used) != 1:
        return binding
    return binding[:match.start("selector")] + used[0] + binding[match.end("selector"):]


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
                f"unknown gin macro {name} (no config uses it){hint_for(name) or _did_you_mean(name, used)}")
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
        raise GinConfigError(f"gin: {where}{first}{name_hint(text)}") from error


# Names from other configs (T5X's) that are not configurable here, and what to use instead.
NAME_HINTS: dict[str, str] = {}
_UNKNOWN_NAME = re.compile(r"No configurable matching '([^']+)'|'([^']+)' was not provided by an import|"
                           r"Configurable '([^']+)' doesn't have a parameter named '([^']+)'")


def add_name_hints(hints: dict[str, str]) -> None:
    """Register `{unknown name: what to use instead}` for gin errors (selector or selector.param)."""
    NAME_HINTS.update(hints)


def name_hint(message: str) -> str:
    """` (hint)` for the unknown configurable, import or parameter named in a gin error, else ''."""
    match = _UNKNOWN_NAME.search(message)
    if not match:
        return ""
    if match.group(3):
        selector = match.group(3).rsplit(".", 1)[-1] if "." in match.group(3) else match.group(3)
        keys = [f"{match.group(3)}.{match.group(4)}", f"{selector}.{match.group(4)}"]
    else:
        keys = [match.group(1) or match.group(2)]
    return next((hint for key in keys if (hint := hint_for(key))), "")


def hint_for(name: str) -> str:
    """` (what to use instead)` for a name registered with `add_name_hints`, else ''."""
    for known, hint in NAME_HINTS.items():
        if name == known or name.endswith("." + known) or name.endswith("/" + known):
            return f" ({hint})"
    return ""


def macro_value(name: str, default: Any = None) -> Any:
    """The value bound to macro `name` (following `%OTHER` references), or `default`."""
    params = gin.config._CONFIG.get((name, "gin.macro"))  # noqa: SLF001
    if params is None:
        return default
    value = params.get("value")
    reference = _macro_reference(value)
    return value if reference is None else macro_value(reference, default)


def write_operative_config(model_dir: str, filename: str = "config.gin") -> str:
    """Write the operative gin config (bindings used so far) to `model_dir/filename` (local or URL)."""
    from t5x_cot import paths

    path = paths.join(model_dir, filename)
    paths.write_text(path, gin.operative_config_str())
    return path


def is_configured(fn: Any) -> bool:
    """Whether `fn` is registered with gin and the parsed config binds any of its parameters."""
    configurable = gin.config._inverse_lookup(fn)  # noqa: SLF001
    return configurable is not None and any(
        selector == configurable.selector for (_, selector) in gin.config._CONFIG)  # noqa: SLF001


def call_configurable(selector: Any, **kwargs: Any) -> Any:
    """Call the configurable `selector` (a gin name, a registered function, or its Python path
    such as `t5x_cot.train.train`) with its gin bindings; a missing argument is a GinConfigError."""
    if isinstance(selector, str) and not is_registered(selector) and "." in selector:
        module, _, name = selector.rpartition(".")
        selector = getattr(importlib.import_module(module), name)
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

    The shared body of the gin entry points (`python -m t5x_cot.eval`, `... .infer`): the
    other arguments are T5X's absl flags (`add_t5x_flags`; anything else is a GinConfigError).
    T5X run files reach `fn` as `import __main__ as <x>_script` + `<x>_script.<name>`.
    """
    from t5x_cot import t5x_compat

    files, bindings, paths, rest = split_gin_flags(argv)
    parser = _FlagParser(prog=f"python -m {module}", description=f"{module}: gin flags and T5X's absl flags")
    add_t5x_flags(parser)
    document_gin_flags(parser)
    apply_t5x_flags(parser.parse_args(rest))
    t5x_compat.install()
    t5x_compat.bind_script(fn.__name__, fn)
    register_configurables()
    if f"{module}.{fn.__name__}" not in gin.config._REGISTRY:  # noqa: SLF001
        gin.external_configurable(fn, name=fn.__name__, module=module)
    parse_gin(files, bindings, paths)
    return call_configurable(f"{module}.{fn.__name__}")


def register_configurables() -> None:
    """Make the training core's functions and classes gin-configurable (idempotent).

    Names as used in `gin/runs/*.gin`: `train`, `CheckpointConfig`, `DatasetConfig`,
    `partitioning.Partitioner`, `partitioning.standard_logical_axis_rules`,
    `partitioning.fsdp_logical_axis_rules`, `optimizers.adafactor`,
    `optimizers.create_learning_rate_scheduler` (and the other schedules). The first three are
    registered under exactly those names, so they stay unambiguous next to T5X's
    `train_script.train` and `t5x.utils.*Config` (gin prefers an exact match).
    """
    from t5x_cot import data_pipeline, optimizers, partitioning
    from t5x_cot import train as train_lib

    targets = [
        (train_lib, ("train", "CheckpointConfig"), None),
        (data_pipeline, ("DatasetConfig",), None),
        (partitioning, ("Partitioner", "standard_logical_axis_rules", "fsdp_logical_axis_rules"), partitioning.__name__),
        (optimizers, ("adafactor", "create_learning_rate_scheduler", "constant_schedule",
                      "rsqrt_schedule", "linear_decay_schedule"), optimizers.__name__),
    ]
    for module, names, gin_module in targets:
        for name in names:
            key = f"{module.__name__}.{name}"
            if key in _REGISTERED:
                continue
            if gin_module is None:
                register_exact(getattr(module, name), name)
            else:
                gin.external_configurable(getattr(module, name), name=name, module=gin_module)
            _REGISTERED.add(key)


def register_exact(obj: Any, name: str) -> None:
    """Register `obj` under exactly `name` (gin otherwise prefixes the object's `__module__`)."""
    original = obj.__module__
    obj.__module__ = None
    try:
        gin.external_configurable(obj, name=name)
    finally:
        obj.__module__ = original


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
