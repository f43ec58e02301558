#!/usr/bin/env bash
# The paper's training on a SLURM cluster: one task per node, each starting torchrun with one
# process per GPU of its node; the nodes meet through a c10d rendezvous on the first node.
#
#   sbatch --nodes=2 --gpus-per-node=4 scripts/slurm_train.sh DATAROOT NAME [train.py options...]
#
# --batch_size is per process: the global batch is nodes x GPUs per node x --batch_size.
# --checkpoints_dir must be on a file system every node sees (rank 0 writes, every rank reads on
# resume). The same command starts or resumes (--continue_train auto), so a requeued, resubmitted
# or torchrun-restarted job goes on from checkpoints/NAME/latest_train_state.pth.
# 120 s before the time limit SLURM sends SIGUSR1 to this shell (--signal=B:USR1@120): it asks SLURM
# to requeue the job and sends SIGTERM to the training processes, which finish their iteration,
# save the training state and exit (see docs/cluster.md). A preempted job gets SIGTERM directly.
# Environment: PYTHON (default .venv/bin/python or python3), GPUS_PER_NODE (default: SLURM's
# count, else nvidia-smi's), MASTER_PORT (default 29500), CHECKPOINTS_DIR (default ./checkpoints),
# MAX_RESTARTS (torchrun's restarts of the whole group after a process dies; default 1).
#SBATCH --job-name=cloud-removal
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=4
#SBATCH --cpus-per-task=16
#SBATCH --time=48:00:00
#SBATCH --requeue
#SBATCH --signal=B:USR1@120
#SBATCH --output=%x-%j.out
set -euo pipefail
DATAROOT=${1:?usage: sbatch scripts/slurm_train.sh DATAROOT NAME [train.py options...]}
NAME=${2:?usage: sbatch scripts/slurm_train.sh DATAROOT NAME [train.py options...]}
shift 2
PYTHON=${PYTHON:-$(if [ -x .venv/bin/python ]; then echo .venv/bin/python; else echo python3; fi)}
GPUS_PER_NODE=${GPUS_PER_NODE:-${SLURM_GPUS_ON_NODE:-$(nvidia-smi -L | wc -l)}}
CHECKPOINTS_DIR=${CHECKPOINTS_DIR:-./checkpoints}
MASTER_ADDR=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
MASTER_PORT=${MASTER_PORT:-29500}
MAX_RESTARTS=${MAX_RESTARTS:-1}

requeue() {
  scontrol requeue "$SLURM_JOB_ID" || true
  kill -TERM "$TRAIN_PID" 2>/dev/null || true
}
trap requeue USR1

srun --ntasks-per-node=1 "$PYTHON" -m torch.distributed.run \
  --nnodes="$SLURM_JOB_NUM_NODES" --nproc_per_node="$GPUS_PER_NODE" --max-restarts="$MAX_RESTARTS" \
  --rdzv_id="$SLURM_JOB_ID" --rdzv_backend=c10d --rdzv_endpoint="$MASTER_ADDR:$MASTER_PORT" \
  train.py --dataroot "$DATAROOT" --name "$NAME" --checkpoints_dir "$CHECKPOINTS_DIR" \
  --model pix2pix_attn --niter 210 --lr_policy step --pool_size 50 --no_dropout --display_id 0 \
  --batchSize 1 --dataset_mode unaligned_sar --no_flip --display_freq 500 --save_epoch_freq 40 \
  --continue_train auto "$@" &
TRAIN_PID=$!
# A trapped signal interrupts `wait`; the second wait lets the training save and exit.
wait "$TRAIN_PID" || wait "$TRAIN_PID"
