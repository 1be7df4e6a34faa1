#!/usr/bin/env bash
# Train on a GPU box: on this machine, or on GPU_HOST over ssh (the repository is copied there).
# Data parallel over all of its GPUs (jax.pmap); the global batch is split between them.
#
#   launch/gpu.sh CONFIG WORKDIR [--config.<field>=value ...]
#   GPU_HOST=me@gpubox SETUP=1 launch/gpu.sh configs/hyperprior.py:q3 /data/runs/hp-q3 \
#       --config.data.dir=/data/clic/train --config.batch_size=32
#
# Environment:
#   GPU_HOST     user@host to run on (default: this machine). The repository is rsync'ed to
#                REMOTE_DIR there (default: ~/jaxcomp).
#   SETUP=1      first create the virtualenv VENV (default: ~/jaxcomp-venv) with JAX for
#                CUDA 12 and jaxcomp (BUILD_NOTES.md).
#   PYTHON       interpreter to run (default: VENV/bin/python).
#   CUDA_VISIBLE_DEVICES  which GPUs to use (default: all).
# The run goes on in the background (nohup; log in WORKDIR/train.log), so the ssh session may
# end. Re-running with the same WORKDIR resumes from its newest checkpoint. Export with
#   python -m jaxcomp export --workdir WORKDIR --out MODEL_DIR
set -euo pipefail
if [[ $# -lt 2 ]]; then
  sed -n '2,21p' "$0" >&2
  exit 2
fi
repo=$(cd "$(dirname "$0")/.." && pwd)
if [[ -n ${GPU_HOST:-} ]]; then dir=${REMOTE_DIR:-'~/jaxcomp'}; else dir=$(printf '%q' "$repo"); fi
venv=${VENV:-'~/jaxcomp-venv'}
python=${PYTHON:-$venv/bin/python}
config=$(printf '%q' "$1")
workdir=$(printf '%q' "$2")
overrides=$(printf '%q ' "${@:3}")

# XLA takes 75% of GPU memory up front by default; training wants most of it.
job="cd $dir && export XLA_PYTHON_CLIENT_MEM_FRACTION=\${XLA_PYTHON_CLIENT_MEM_FRACTION:-0.9}"
if [[ -n ${SETUP:-} ]]; then
  job+=" && python3 -m venv $venv && $venv/bin/pip install -q -U 'jax[cuda12]'"
  job+=" && $venv/bin/pip install -q -e ."
fi
job+=" && mkdir -p $workdir && (nohup $python -m jaxcomp.train --config=$config"
job+=" --workdir=$workdir $overrides > $workdir/train.log 2>&1 &)"
job+=" && echo training in the background: tail -f $workdir/train.log"

if [[ -n ${GPU_HOST:-} ]]; then
  rsync -az --delete --exclude .git --exclude __pycache__ "$repo/" "$GPU_HOST:$dir/"
  ssh "$GPU_HOST" "bash -lc $(printf '%q' "$job")"
else
  bash -c "$job"
fi
