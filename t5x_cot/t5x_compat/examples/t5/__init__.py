"""`t5x.examples.t5` of the T5X compatibility layer."""
