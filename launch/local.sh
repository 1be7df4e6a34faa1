#!/usr/bin/env bash
# Train on this machine, on all its local devices (CPU cores count as one device; GPUs each one).
#
#   launch/local.sh CONFIG WORKDIR [--config.<field>=value ...]
#   launch/local.sh configs/hyperprior.py:tiny /tmp/tiny --config.data.dir="$HOME/photos"
#
# Re-running with the same WORKDIR resumes from its newest checkpoint. When training ends, the
# exported model (for jaxcomp compress/decompress) is written to WORKDIR/model.
# PYTHON selects the interpreter (default: python3).
set -euo pipefail
if [[ $# -lt 2 ]]; then
  sed -n '2,10p' "$0" >&2
  exit 2
fi
config=$1 workdir=$2
shift 2
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
"$python" -m jaxcomp.train --config="$config" --workdir="$workdir" "$@"
"$python" -m jaxcomp export --workdir "$workdir" --out "$workdir/model"
