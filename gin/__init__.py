"""gin configuration files shipped with t5x_cot (models/, runs/), importable as `t5x_cot.configs`."""
