"""seqio's offline cache for these tasks: Apache Beam (DirectRunner locally, Dataflow at scale).

    python -m seqio.scripts.cache_tasks_main --module_import=t5x_cot.tasks \\
        --tasks=gsm8k_gold_cot --output_cache_dir=gs://bucket/cache -- --runner=DataflowRunner ...

or `cache_tasks([...], cache_dir)` from Python. Readers find the cache through
`T5X_COT_CACHE_DIR` (os.pathsep-separated; added to seqio's global cache dirs when
`t5x_cot.tasks` is imported) or `use_cache_dirs`, and read it with `use_cached=True`
(`USE_CACHED_TASKS = True` in gin). A cache is a snapshot: re-cache a `<task>_cot` task
after its records file changes.
"""
from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

import seqio

ENV_VAR = "T5X_COT_CACHE_DIR"
TASK_MODULE = "t5x_cot.tasks"


def cache_dirs_from_env() -> list[str]:
    """Cache directories named by `T5X_COT_CACHE_DIR`."""
    return [d for d in os.environ.get(ENV_VAR, "").split(os.pathsep) if d]


def use_cache_dirs(cache_dirs: Iterable[str]) -> None:
    """Adds directories to seqio's global cache dirs (where `use_cached=True` looks)."""
    dirs = [d for d in cache_dirs if d not in seqio.get_global_cache_dirs()]
    if dirs:
        seqio.add_global_cache_dirs(dirs)


def cache_tasks(task_names: Sequence[str], cache_dir: str,
                pipeline_args: Sequence[str] = ("--runner=DirectRunner",),
                overwrite: bool = False) -> list[str]:
    """Runs seqio's caching pipeline for `task_names` into `cache_dir`; returns the task dirs.

    Needs apache-beam (`pip install --no-deps -r requirements-beam.txt`).
    """
    try:
        import apache_beam as beam  # pylint: disable=import-outside-toplevel
        from absl import flags  # pylint: disable=import-outside-toplevel
        from seqio.scripts import cache_tasks_main  # pylint: disable=import-outside-toplevel
    except ImportError as e:
        raise ImportError(f"caching tasks needs apache-beam ({e}); "
                          "install it with `pip install --no-deps -r requirements-beam.txt`") from e
    import t5x_cot.tasks  # noqa: F401  pylint: disable=import-outside-toplevel,unused-import

    if not flags.FLAGS.is_parsed():  # run_pipeline reads its flags' defaults
        flags.FLAGS.mark_as_parsed()
    options = beam.options.pipeline_options.PipelineOptions(list(pipeline_args))
    with beam.Pipeline(options=options) as pipeline:
        output_dirs = cache_tasks_main.run_pipeline(
            pipeline, list(task_names), cache_dir, modules_to_import=[TASK_MODULE],
            overwrite=overwrite)
    use_cache_dirs([cache_dir])
    return list(output_dirs)
