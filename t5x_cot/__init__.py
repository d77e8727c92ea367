"""t5x_cot: teach small T5 models to reason by chain-of-thought distillation, on JAX.

Importing this package is cheap: TensorFlow, seqio, torch and JAX are imported only by
the modules that need them.
"""

__version__ = "0.1.0"
