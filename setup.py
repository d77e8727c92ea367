"""Packaging for t5x_cot: chain-of-thought distillation into T5 on JAX."""
import pathlib

import setuptools

HERE = pathlib.Path(__file__).parent

# Lower bounds are the versions the test suite was run with; `constraints.txt`
# pins one exact set that resolves together and is what the quickstart and CI use.
CORE = [
    "numpy>=1.26",
    "jax>=0.10.0",
    "flax>=0.12.0",
    "optax>=0.2.6",
    "orbax-checkpoint>=0.11.0",
    "tensorstore>=0.1.70",
    "msgpack>=1.0",
    "seqio==0.0.20",
    "tensorflow-cpu>=2.21.0",
    "tensorflow-text>=2.20.0",
    "tensorflow-datasets>=4.9.9",
    "gin-config>=0.5.0",
    "sentencepiece>=0.2.0",
    "httpx>=0.28",
    "sniffio>=1.3",  # httpcore looks it up on every lock; missing, each lookup walks sys.path
    "tqdm>=4.67",
    "matplotlib>=3.9",
    "tensorboard>=2.21",  # seqio.TensorBoardLogger (T5X's eval.gin) writes through tf.summary
    "starlette>=1.10",  # `t5x-cot serve`: the ASGI app
    "uvicorn>=0.55",  # `t5x-cot serve`: the ASGI server
    "pydantic>=2.0",  # `t5x-cot serve`: request validation
]
EXTRAS = {
    # libtpu: the TPU runtime and compiler (the version jax 0.10's `tpu` extra pins); on a machine
    # without TPUs its compile-only backend compiles for any TPU topology (`t5x-cot compile`).
    "tpu": ["libtpu==0.0.42.*"],
    "gpu": ["jax[cuda12]>=0.10.0"],
    "hf": ["torch>=2.13.0", "transformers>=5.0", "safetensors>=0.6"],
    "test": ["pytest>=8.0", "pytest-timeout>=2.3", "safetensors>=0.6", "hypothesis>=6.100", "openai>=3.57",
             "ruff>=0.17"],
}

setuptools.setup(
    name="t5x_cot",
    version="0.1.0",
    description="Teach small T5 models to reason by chain-of-thought distillation, on JAX.",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=setuptools.find_packages(include=["t5x_cot", "t5x_cot.*"]) + ["t5x_cot.tasks", "t5x_cot.gin_configs"],
    package_dir={"t5x_cot.tasks": "tasks", "t5x_cot.gin_configs": "gin"},
    package_data={"t5x_cot.gin_configs": ["*/*.gin", "*/*/*.gin", "*/*/*/*.gin", "*/*/*/*/*.gin"], "t5x_cot.data": ["*.txt"]},
    include_package_data=True,
    install_requires=CORE,
    extras_require=EXTRAS,
    entry_points={"console_scripts": ["t5x-cot=t5x_cot.cli:main"]},
)
