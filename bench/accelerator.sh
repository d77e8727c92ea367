#!/usr/bin/env bash
# One-shot accelerator report (see bench/accelerator.py): run from anywhere, on a machine that
# has JAX (CUDA), flax, optax, torch and transformers but perhaps not gin-config.
#
#   bench/accelerator.sh [OUT_DIR]        # default: $OUT, else ./accelerator_report
#   bench/accelerator.sh --fetch-wheels   # on a networked machine first: gin-config into .whl/
#
# Wheels found in .whl/ are installed into /tmp/site before the run. The run is cut off after
# ACCELERATOR_TIMEOUT seconds (default 470); every finished section is already in the report.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ "${1:-}" == "--fetch-wheels" ]]; then
  python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 -d .whl gin-config==0.5.0
  exit 0
fi
if compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
out="${1:-${OUT:-accelerator_report}}"
exec timeout "${ACCELERATOR_TIMEOUT:-470}" "${PYTHON:-python3}" bench/accelerator.py --out "$out" "${@:2}"
