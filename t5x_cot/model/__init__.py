"""T5 network, losses, model wrapper and FLOP counts (jax / flax / optax only; never TensorFlow)."""
