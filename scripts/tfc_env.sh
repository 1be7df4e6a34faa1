#!/usr/bin/env bash
# Builds the tensorflow-compression environment and runs the tfc backend tests in it.
#
#   scripts/tfc_env.sh                 # build (or reuse) .venv-tfc, run tests/test_coding_tfc.py
#   scripts/tfc_env.sh tests/...       # run other tests in that environment instead
#
# tensorflow-compression 2.14.1 pins TensorFlow 2.14, hence numpy<2, ml-dtypes 0.2, jax<=0.4.34,
# flax 0.10 and Python<=3.11 (BUILD_NOTES.md). jaxcomp is installed editable into that older stack
# with the `tfc` and `dev` extras; the constraints below keep pip on it.
# Environment: PYTHON (an interpreter <= 3.11, default python3.11), TFC_VENV (default .venv-tfc).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${TFC_VENV:-$ROOT/.venv-tfc}"
PYTHON="${PYTHON:-python3.11}"

if ! "$VENV/bin/python" -c "import tensorflow_compression, jaxcomp" 2>/dev/null; then
  "$PYTHON" -m venv "$VENV"
  CONSTRAINTS="$(mktemp)"
  trap 'rm -f "$CONSTRAINTS"' EXIT
  printf '%s\n' "tensorflow-compression==2.14.1" "tensorflow==2.14.1" "numpy==1.26.4" \
    "jax==0.4.34" "jaxlib==0.4.34" "flax==0.10.4" > "$CONSTRAINTS"
  "$VENV/bin/python" -m pip install --quiet --upgrade pip
  "$VENV/bin/python" -m pip install --quiet -c "$CONSTRAINTS" -e "$ROOT[tfc,dev]"
fi

"$VENV/bin/python" - <<'PY'
from importlib import metadata
names = ("tensorflow", "tensorflow-compression", "jax", "flax", "numpy", "constriction")
print("tfc env: " + ", ".join(f"{n} {metadata.version(n)}" for n in names))
PY

cd "$ROOT"
if [ "$#" -eq 0 ]; then
  set -- tests/test_coding_tfc.py
fi
"$VENV/bin/python" -m pytest "$@"
