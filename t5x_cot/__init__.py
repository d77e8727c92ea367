"""t5x_cot: teach small T5 models to reason by chain-of-thought distillation, on JAX.

Importing this package is cheap: TensorFlow, seqio, torch and JAX are imported only by
the modules that need them. On a CPU-only glibc host it also tunes malloc to reuse XLA's
per-step host memory (`t5x_cot.host_memory`; opt out with T5X_COT_KEEP_FREED_HOST_MEMORY=0).
"""

from t5x_cot import host_memory as _host_memory

_host_memory.keep_freed_memory()

__version__ = "0.1.0"
