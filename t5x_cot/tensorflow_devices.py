"""TensorFlow's device probe, without its false alarm on machines that have no GPU.

TensorFlow enumerates its physical devices once per process (at its first op or `tf.config`
call). A TensorFlow built with CUDA calls `cuInit` then; on a machine without the NVIDIA
driver that fails and TensorFlow logs `E... cuda_platform.cc] failed call to cuInit: ...
(303)` to the console: an "error" that only means there is no GPU, printed by every CPU run.
`probe_devices_quietly` runs that enumeration once with the console captured and passes every
line on except that one, and only when no driver is installed (where `cuInit` cannot succeed);
with a driver nothing is captured, so a real CUDA failure still shows. TensorFlow's own
logging level is left alone, and so is JAX (it probes its own devices).
"""
from __future__ import annotations

import ctypes
import os
import sys
import tempfile

CUDA_DRIVER = "libcuda.so.1"
CUINIT_FAILURE = "failed call to cuInit"


def has_cuda_driver() -> bool:
    """Whether the NVIDIA driver library (what `cuInit` lives in) can be loaded."""
    try:
        ctypes.CDLL(CUDA_DRIVER)
    except OSError:
        return False
    return True


def _without_cuinit_failure(text: str) -> str:
    return "".join(line for line in text.splitlines(keepends=True) if CUINIT_FAILURE not in line)


def probe_devices_quietly() -> None:
    """Have TensorFlow enumerate its devices now; without a CUDA driver, drop the `cuInit`
    failure it logs (every other line it writes meanwhile is passed on to stderr)."""
    import tensorflow as tf

    if has_cuda_driver():
        tf.config.list_physical_devices()
        return
    sys.stderr.flush()
    console = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            tf.config.list_physical_devices()
        finally:
            os.dup2(console, 2)
            os.close(console)
        captured.seek(0)
        text = captured.read().decode("utf-8", "replace")
    sys.stderr.write(_without_cuinit_failure(text))
    sys.stderr.flush()
