"""Checkpoint interop: T5X and HuggingFace T5 checkpoints in, HuggingFace and "ours" out.

Submodules, each with one job (imported on use, so `import t5x_cot.interop` stays cheap):
`safetensors_io` (streaming safetensors reader/writer), `t5x_ckpt` (T5X msgpack and
tensorstore checkpoints), `layout` (our param tree: names, shapes, config inference),
`hf_mapping` (HuggingFace names, layouts and config), `hf_files` (HF weight files:
safetensors, shards, torch .bin), `hf_import`, `hf_export`,
`sources` (one read-a-tensor view over every checkpoint kind), `ours_io` (our orbax
checkpoints, param by param) and `convert` (the `t5x-cot convert` subcommand).
"""
from t5x_cot.interop.errors import ConversionError

__all__ = ["ConversionError"]
