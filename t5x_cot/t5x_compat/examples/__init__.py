"""`t5x.examples` of the T5X compatibility layer."""
