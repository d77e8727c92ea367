"""Compiling runs for TPU topologies from any machine (libtpu's compile-only backend).

`topology` names targets and builds their devices, `run_config` turns a gin run config into
its train step, `step_compile` compiles it (and the decode path) into a report, `search`
tries settings, `cli` is `t5x-cot compile`.
"""
