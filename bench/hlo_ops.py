"""Op counts of the compiled train step: what XLA runs per step, and what it should not.

    python bench/hlo_ops.py [--gin_file gin/models/t5_1_1/small.gin] [--batch_size 8]
                            [--inputs_length 512] [--targets_length 256] [--dtype bfloat16]

Compiles (does not run) the partitioned train step for the default device and prints the
number of HLO instructions by opcode, the dtype conversions (`convert`), anything that talks
to the host (send/recv, infeed/outfeed, host callbacks) and XLA's memory analysis.
"""
from __future__ import annotations

import argparse
import collections
import dataclasses
import re

HOST_OPS = ("send", "recv", "infeed", "outfeed", "send-done", "recv-done")
_INSTRUCTION = re.compile(r"^\s*(?:ROOT\s+)?%?[\w.\-]+\s*=\s*(?:\([^)]*\)|\S+)\s+([a-z][\w\-]*)\(", re.M)


def opcode_counts(hlo_text: str) -> collections.Counter:
    """HLO instructions by opcode in an HLO module's text (all computations)."""
    return collections.Counter(_INSTRUCTION.findall(hlo_text))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--gin_file", default="gin/models/t5_1_1/small.gin")
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--inputs_length", type=int, default=512)
    parser.add_argument("--targets_length", type=int, default=256)
    parser.add_argument("--dtype", default="bfloat16")
    args = parser.parse_args()

    from t5x_cot import gin_utils, optimizers
    from t5x_cot.partitioning import Partitioner
    from t5x_cot.trainer import Trainer

    model = gin_utils.model_from_gin([args.gin_file])
    model = type(model)(dataclasses.replace(model.config, dtype=args.dtype))
    shapes = {"encoder_input_tokens": (args.batch_size, args.inputs_length),
              "decoder_input_tokens": (args.batch_size, args.targets_length),
              "decoder_target_tokens": (args.batch_size, args.targets_length),
              "decoder_loss_weights": (args.batch_size, args.targets_length)}
    trainer = Trainer(model, optimizers.adafactor(optimizers.constant_schedule(1e-3)), Partitioner(), shapes)
    compiled = trainer.lower_train_step().compile()
    counts = opcode_counts(compiled.as_text())
    host = {op: counts[op] for op in HOST_OPS if counts[op]}
    callbacks = compiled.as_text().count("callback")
    print(f"{args.gin_file} batch {args.batch_size} x {args.inputs_length}/{args.targets_length} {args.dtype}")
    print(f"instructions {sum(counts.values())}; dot {counts['dot']}; convert {counts['convert']}; "
          f"fusion {counts['fusion']}; while {counts['while']}; host transfers {host or 0}; callbacks {callbacks}")
    print("top opcodes:", ", ".join(f"{op} {n}" for op, n in counts.most_common(12)))
    memory = compiled.memory_analysis()
    print(f"memory: arguments {memory.argument_size_in_bytes / 2**20:.1f} MiB, temporaries "
          f"{memory.temp_size_in_bytes / 2**20:.1f} MiB, outputs {memory.output_size_in_bytes / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
