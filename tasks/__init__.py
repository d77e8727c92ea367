"""SeqIO tasks and mixtures of t5x_cot; installed as `t5x_cot.tasks`."""
