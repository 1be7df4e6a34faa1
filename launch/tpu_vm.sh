#!/usr/bin/env bash
# Train on a Cloud TPU VM or a TPU pod slice: every worker runs the same command, and
# jax.distributed.initialize() joins them into one data-parallel job (--distributed).
#
#   launch/tpu_vm.sh create                      # gcloud compute tpus tpu-vm create
#   launch/tpu_vm.sh copy                        # the repository to ~/jaxcomp on all workers
#   launch/tpu_vm.sh setup                       # JAX for TPU + jaxcomp on all workers
#   launch/tpu_vm.sh run CONFIG WORKDIR [--config.<field>=value ...]
#   launch/tpu_vm.sh export WORKDIR MODEL_DIR    # on worker 0
#   launch/tpu_vm.sh delete
#
# Environment (defaults in brackets):
#   TPU_NAME [jaxcomp]   ZONE [us-central2-b]   ACCELERATOR [v4-8; e.g. v4-32 for a pod slice]
#   VERSION [tpu-ubuntu2204-base]   PROJECT [gcloud's default project]
#
# Data and workdir: every worker reads its own share of each batch, so config.data.dir must exist
# on every worker (copy it there, or mount a bucket with gcsfuse), or use a prepared TFDS dataset
# (--config.data.tfds_name=clic --config.data.tfds_data_dir=gs://bucket/tfds). WORKDIR must be
# one directory that all workers share and that outlives the VM (a bucket mounted with gcsfuse at
# the same path on every worker, or a Filestore share): worker 0 writes the checkpoints, and every
# worker reads them to resume. A preempted run resumes when the same `run` command is given again.
#
#   TPU_NAME=hp ACCELERATOR=v4-32 launch/tpu_vm.sh create
#   TPU_NAME=hp launch/tpu_vm.sh copy && TPU_NAME=hp launch/tpu_vm.sh setup
#   TPU_NAME=hp launch/tpu_vm.sh run configs/hyperprior.py:q3 /mnt/runs/hp-q3 \
#       --config.data.dir=/mnt/clic/train --config.batch_size=64
set -euo pipefail
tpu=${TPU_NAME:-jaxcomp}
zone=${ZONE:-us-central2-b}
accelerator=${ACCELERATOR:-v4-8}
version=${VERSION:-tpu-ubuntu2204-base}
project=()
if [[ -n ${PROJECT:-} ]]; then project=(--project="$PROJECT"); fi
repo=$(cd "$(dirname "$0")/.." && pwd)

on_workers() {  # on_workers WORKERS COMMAND: run COMMAND on the given workers (all | 0 | ...)
  gcloud compute tpus tpu-vm ssh "$tpu" --zone="$zone" "${project[@]}" --worker="$1" \
      --command="$2"
}

case ${1:-} in
  create)
    gcloud compute tpus tpu-vm create "$tpu" --zone="$zone" "${project[@]}" \
        --accelerator-type="$accelerator" --version="$version" ;;
  copy)
    tarball=$(mktemp --suffix=.tar.gz)
    tar -C "$repo" --exclude=.git --exclude=__pycache__ -czf "$tarball" .
    gcloud compute tpus tpu-vm scp "$tarball" "$tpu:~/jaxcomp.tar.gz" --zone="$zone" \
        "${project[@]}" --worker=all
    rm -f "$tarball"
    on_workers all "rm -rf ~/jaxcomp && mkdir -p ~/jaxcomp && tar -C ~/jaxcomp -xzf ~/jaxcomp.tar.gz" ;;
  setup)
    on_workers all "python3 -m pip install -q -U 'jax[tpu]' && python3 -m pip install -q -e ~/jaxcomp" ;;
  run)
    [[ $# -ge 3 ]] || { echo "usage: $0 run CONFIG WORKDIR [--config.x=v ...]" >&2; exit 2; }
    on_workers all "cd ~/jaxcomp && python3 -m jaxcomp.train --distributed \
        --config=$(printf '%q' "$2") --workdir=$(printf '%q' "$3") $(printf '%q ' "${@:4}")" ;;
  export)
    [[ $# -eq 3 ]] || { echo "usage: $0 export WORKDIR MODEL_DIR" >&2; exit 2; }
    on_workers 0 "cd ~/jaxcomp && python3 -m jaxcomp export --workdir $(printf '%q' "$2") \
        --out $(printf '%q' "$3")" ;;
  delete)
    gcloud compute tpus tpu-vm delete "$tpu" --zone="$zone" "${project[@]}" --quiet ;;
  *)
    sed -n '2,27p' "$0" >&2
    exit 2 ;;
esac
