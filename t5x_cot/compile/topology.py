"""TPU topologies as compile targets: Cloud TPU accelerator names, compile-only devices, HBM.

libtpu's compile-only backend (`jax.experimental.topologies.get_topology_desc`) gives the
devices of any TPU topology on a machine without TPUs; `jit(...).lower(...).compile()`
targets them. Names accepted:

- Cloud TPU accelerator types: `v4-8`, `v4-32`, `v5p-8` (the number counts TensorCores, two
  per chip), `v5litepod-16` / `v5e-16`, `v6e-8` (the number counts chips);
- jax topology names: `v5e:4x4`, `v4:2x2x1`, `v6e:2x4`, `v5p:2x2x2`.

TPU v4 is addressed as its chips (megacore, one device per chip, as a v4 VM shows them).
"""
from __future__ import annotations

import dataclasses
import importlib.util
import math
import os
import re
from typing import Any

from t5x_cot.errors import UserError

INSTALL_HINT = 'install the TPU compiler with: pip install -e ".[tpu]"  (libtpu; no TPU needed to compile)'
GIB = 2**30


class TopologyError(UserError, ValueError):
    """A TPU topology name that cannot be read, or libtpu missing."""


@dataclasses.dataclass(frozen=True)
class Generation:
    """One TPU generation: its jax name, mesh rank, cores named per chip, HBM per chip."""

    jax_name: str
    dims: int
    cores_per_chip_in_name: int
    hbm_bytes: int
    accelerator_prefix: str
    chip_config_name: str | None = None


GENERATIONS = {
    "v4": Generation("v4", 3, 2, 32 * GIB, "v4", "megacore"),
    "v5p": Generation("v5p", 3, 2, 95 * GIB, "v5p"),
    "v5e": Generation("v5e", 2, 1, 16 * GIB, "v5litepod"),
    "v6e": Generation("v6e", 2, 1, 32 * GIB, "v6e"),
}
ALIASES = {"v5litepod": "v5e", "v5lite": "v5e", "v6lite": "v6e", "v6litepod": "v6e"}
# jax `device_kind` of each generation's devices.
DEVICE_KINDS = {"TPU v4": "v4", "TPU v5": "v5p", "TPU v5p": "v5p", "TPU v5 lite": "v5e", "TPU v5e": "v5e",
                "TPU v6 lite": "v6e", "TPU v6e": "v6e"}
_ACCELERATOR = re.compile(r"^(v\d+[a-z]*)-(\d+)$")
_JAX_NAME = re.compile(r"^(v\d+[a-z]*):(\d+(?:x\d+)+)$")


@dataclasses.dataclass(frozen=True)
class Topology:
    """A compile target: `name` as given, the jax topology name, slices."""

    name: str
    generation: Generation
    chip_shape: tuple[int, ...]
    num_slices: int = 1

    @property
    def jax_name(self) -> str:
        return f"{self.generation.jax_name}:{'x'.join(map(str, self.chip_shape))}"

    @property
    def chips(self) -> int:
        return math.prod(self.chip_shape) * self.num_slices

    @property
    def accelerator_type(self) -> str:
        """The Cloud TPU accelerator type of one slice (what TPU_ACCELERATOR_TYPE holds)."""
        per_slice = math.prod(self.chip_shape) * self.generation.cores_per_chip_in_name
        return f"{self.generation.accelerator_prefix}-{per_slice}"


def chip_grid(chips: int, dims: int) -> tuple[int, ...]:
    """Cloud TPU slice shapes: 4 chips of v4 -> 2x2x1, 16 -> 2x2x4; 16 chips of v5e -> 4x4."""
    if chips < 1 or chips & (chips - 1):
        raise TopologyError(f"{chips} chips: TPU slices have a power-of-two number of chips")
    shape = [2, 2, 1] if dims == 3 and chips >= 4 else [1] * dims
    while math.prod(shape) < chips:
        smallest = min(shape)
        index = max(i for i, size in enumerate(shape) if size == smallest)
        shape[index] *= 2
    return tuple(shape)


def parse_topology(name: str, num_slices: int = 1) -> Topology:
    """A Cloud TPU accelerator type (`v4-8`, `v5litepod-16`) or jax name (`v5e:4x4`) as a Topology."""
    text = name.strip().lower()
    if num_slices < 1:
        raise TopologyError(f"--num_slices {num_slices}: expected 1 or more")
    for pattern, kind in ((_ACCELERATOR, "accelerator"), (_JAX_NAME, "jax")):
        match = pattern.match(text)
        if not match:
            continue
        family = ALIASES.get(match.group(1), match.group(1))
        if family not in GENERATIONS:
            raise TopologyError(f"TPU topology {name!r}: unknown generation {match.group(1)!r}; "
                                f"expected one of {', '.join(sorted(GENERATIONS))} (or v5litepod)")
        generation = GENERATIONS[family]
        if kind == "jax":
            shape = tuple(int(n) for n in match.group(2).split("x"))
            if len(shape) != generation.dims:
                raise TopologyError(f"TPU topology {name!r}: {family} slices have {generation.dims} dimensions")
            return Topology(name, generation, shape, num_slices)
        count = int(match.group(2))
        if count % generation.cores_per_chip_in_name:
            raise TopologyError(f"TPU topology {name!r}: {family} sizes count TensorCores, "
                                f"{generation.cores_per_chip_in_name} per chip")
        return Topology(name, generation, chip_grid(count // generation.cores_per_chip_in_name, generation.dims),
                        num_slices)
    raise TopologyError(f"TPU topology {name!r}: expected a Cloud TPU accelerator type (v4-8, v5litepod-16, "
                        "v5p-8, v6e-8) or a jax topology name (v5e:4x4, v4:2x2x1)")


def require_libtpu() -> None:
    """Raise TopologyError naming the install command when libtpu is not installed."""
    if importlib.util.find_spec("libtpu") is None:
        raise TopologyError(f"compiling for TPUs needs libtpu, which is not installed: {INSTALL_HINT}")


_DEFAULTED: dict[str, str] = {}  # the settings quiet_libtpu made (not the user's)


def quiet_libtpu(accelerator_type: str) -> None:
    """Settings that keep libtpu from probing for TPU hosts (and warning) on a machine without TPUs."""
    for name, value in (("TPU_SKIP_MDS_QUERY", "1"), ("ALLOW_MULTIPLE_LIBTPU_LOAD", "1"),
                        ("TPU_ACCELERATOR_TYPE", accelerator_type), ("TPU_WORKER_HOSTNAMES", "localhost")):
        if name not in os.environ:
            os.environ[name] = _DEFAULTED[name] = value


_RESTARTED = "T5X_COT_STACK_RAISED"


def run_with_large_stack() -> None:
    """Restart this program (same interpreter and arguments) with the stack limit at its maximum.

    The TPU compiler recurses deeply on large convolution fusions (T5 Large and up on v4-32 and
    v6e); under a shell's usual `ulimit -s 8192` its threads overflow their stacks and the
    process dies with SIGSEGV. The limit only takes effect for a new process, so a program
    entry point calls this before compiling; it does nothing when the limit is already at its
    maximum (the hard limit) or the program was already restarted.
    """
    import resource
    import sys

    soft, hard = resource.getrlimit(resource.RLIMIT_STACK)
    if soft == hard or soft == resource.RLIM_INFINITY or os.environ.get(_RESTARTED):
        return
    resource.setrlimit(resource.RLIMIT_STACK, (hard, hard))
    os.environ[_RESTARTED] = "1"
    sys.stdout.flush()
    os.execv(sys.executable, [sys.executable, *sys.orig_argv[1:]])


def user_setting(name: str) -> str | None:
    """The environment variable `name` as the user set it (None if unset or set by quiet_libtpu)."""
    value = os.environ.get(name)
    return None if value is None or _DEFAULTED.get(name) == value else value


def topology_devices(topology: Topology) -> list[Any]:
    """The compile-only devices of `topology` (one per chip), all slices."""
    require_libtpu()
    quiet_libtpu(topology.accelerator_type)
    from jax.experimental import topologies

    kwargs = {"chip_config_name": topology.generation.chip_config_name} if topology.generation.chip_config_name else {}
    try:
        description = topologies.get_topology_desc(topology_name=topology.jax_name, platform="tpu",
                                                   num_slices=topology.num_slices, **kwargs)
    except Exception as error:  # libtpu reports unknown shapes as a generic runtime error
        raise TopologyError(f"TPU topology {topology.name!r} ({topology.jax_name}): libtpu cannot build it: "
                            f"{str(error).strip().splitlines()[0]}") from error
    return list(description.devices)


def hbm_per_chip(device_kind: str) -> int | None:
    """HBM bytes of one chip of `device_kind` (public spec sheets), None when unknown."""
    family = DEVICE_KINDS.get(device_kind)
    return GENERATIONS[family].hbm_bytes if family else None
