"""`python -m t5x_cot.teacher ...`: the same as `t5x-cot generate ...`."""
from __future__ import annotations

import argparse
import sys

from t5x_cot.teacher import cli


def main(argv: list[str] | None = None) -> int:
    """Parse `argv` with the generate flags and run."""
    parser = argparse.ArgumentParser(prog="t5x-cot generate", description=cli.HELP)
    cli.add_arguments(parser)
    return cli.run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
