#!/usr/bin/env bash
# The accelerator check in one call (issue 20): writes DIR/<device>.json and DIR/device_check.log.
#
#   bash scripts/device_check.sh [--preset smoke|full] --out DIR [--data DIR] [--parts a,b] ...
#
# Every option goes to `python -m jaxcomp bench device` (jaxcomp/bench/device.py says what each
# part measures); --out defaults to $OUT where that is set (the device machine's output folder).
# Runs from a checkout without installing jaxcomp (PYTHONPATH=the checkout). Python packages the
# check needs but the machine lacks are installed from the wheels in .whl/ (carried with the
# checkout; BUILD_NOTES.md, "Accelerator check", has the download commands) into a temporary
# folder, never into the machine's environment. If one is still missing: a one-line error naming
# it, exit status 2.
#
# Environment: PYTHON (default python3), DEVICE_CHECK_WHEELS (default <checkout>/.whl),
# DEVICE_CHECK_SITE (default /tmp/jaxcomp-device-site), DEVICE_CHECK_MODULES (the import names
# checked; default below).
set -uo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-python3}"
wheels="${DEVICE_CHECK_WHEELS:-$repo/.whl}"
site="${DEVICE_CHECK_SITE:-/tmp/jaxcomp-device-site}"
# What the check imports, plus what a training launch on the same machine needs (ml_collections,
# tensorboardX), so that one call also proves `python -m jaxcomp.train` can start there.
modules="${DEVICE_CHECK_MODULES:-jax flax optax orbax.checkpoint numpy PIL scipy safetensors yaml absl constriction ml_collections tensorboardX}"

fail() { echo "error: $*" >&2; exit 2; }

args=("$@")
out=""
for ((i = 0; i < ${#args[@]}; i++)); do
  case "${args[$i]}" in
    --out) out="${args[$((i + 1))]:-}" ;;
    --out=*) out="${args[$i]#--out=}" ;;
  esac
done
if [[ -z "$out" ]]; then
  [[ -n "${OUT:-}" ]] || fail "--out DIR is required (or set OUT)"
  out="$OUT"
  args+=(--out "$out")
fi
mkdir -p "$out" || fail "cannot create the output folder $out"
command -v "$python" >/dev/null || fail "no Python interpreter '$python' (set PYTHON)"

# Prints the import names of $modules that fail to import, space-separated.
missing_modules() {
  PYTHONPATH="${PYTHONPATH:-}" "$python" - $modules <<'EOF'
import importlib, sys
missing = []
for name in sys.argv[1:]:
  try:
    importlib.import_module(name)
  except Exception:  # ImportError, or a broken install
    missing.append(name)
print(" ".join(missing))
EOF
}

# Wheel file-name prefix (distribution name, normalized) of an import name.
wheel_prefix() {
  case "$1" in
    PIL) echo pillow ;;
    yaml) echo pyyaml ;;
    absl) echo absl_py ;;
    skimage) echo scikit_image ;;
    orbax.checkpoint) echo orbax_checkpoint ;;
    tensorboardX) echo tensorboardx ;;
    *) echo "$1" | tr '[:upper:]-' '[:lower:]_' ;;
  esac
}

missing="$(missing_modules)" || fail "cannot run $python"
if [[ -n "$missing" ]]; then
  found=()
  for m in $missing; do
    prefix="$(wheel_prefix "$m")"
    for w in "$wheels"/*.whl; do
      [[ -e "$w" ]] || continue
      base="$(basename "$w" | tr '[:upper:]-' '[:lower:]_')"
      [[ "$base" == "$prefix"_* ]] && found+=("$w")
    done
  done
  if ((${#found[@]})); then
    echo "installing ${#found[@]} wheel(s) from $wheels into $site for: $missing"
    "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target "$site" "${found[@]}" >&2 || fail "pip could not install the wheels in $wheels"
    export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
    missing="$(missing_modules)" || fail "cannot run $python"
  fi
  if [[ -n "$missing" ]]; then
    names=""
    for m in $missing; do names+="${names:+, }$m ($(wheel_prefix "$m" | tr _ -))"; done
    fail "missing Python packages on this machine: $names; no usable wheel in $wheels (download them as BUILD_NOTES.md, 'Accelerator check', says and carry .whl)"
  fi
fi

export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
# Two host devices for the determinism check's CPU device-count case (CPU work only).
if [[ "${XLA_FLAGS:-}" != *xla_force_host_platform_device_count* ]]; then
  export XLA_FLAGS="${XLA_FLAGS:-} --xla_force_host_platform_device_count=2"
fi
"$python" -m jaxcomp bench device "${args[@]}" 2>&1 | tee "$out/device_check.log"
exit "${PIPESTATUS[0]}"
