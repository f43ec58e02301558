#!/usr/bin/env bash
# Many scenes on a SLURM cluster: a job array whose tasks share the scene list, one GPU each.
#
#   sbatch --array=0-7 scripts/slurm_predict.sh PAIRS OUT_DIR NAME [predict.py options...]
#
# PAIRS lists one "cloudy sar" per line (GeoTIFFs, .SAFE folders or zips, STAC items; paths relative
# to the list); every task reads the same list and takes scenes task, task + N, task + 2N, ... of it
# (N tasks; SLURM_ARRAY_TASK_ID/_MIN/_STEP/_COUNT tell predict.py its share), writes each output
# atomically into OUT_DIR and skips the scenes whose output is there. So a task that was killed or
# preempted loses only the scene it was writing, and resubmitting the same command (or letting SLURM
# requeue it) finishes the rest. OUT_DIR and the checkpoints must be on a file system every node sees.
# Environment: PYTHON (default .venv/bin/python or python3), CHECKPOINTS_DIR (default ./checkpoints).
# Several GPUs per task: start torchrun inside (torchrun --nproc_per_node=4 predict.py ...): the
# array task's share is shared again among its processes, one GPU each.
#SBATCH --job-name=cloud-removal-predict
#SBATCH --ntasks=1
#SBATCH --gpus-per-task=1
#SBATCH --cpus-per-task=8
#SBATCH --time=12:00:00
#SBATCH --requeue
#SBATCH --output=%x-%A_%a.out
set -euo pipefail
USAGE="usage: sbatch --array=0-N scripts/slurm_predict.sh PAIRS OUT_DIR NAME [predict.py options...]"
PAIRS=${1:?$USAGE}
OUT_DIR=${2:?$USAGE}
NAME=${3:?$USAGE}
shift 3
PYTHON=${PYTHON:-$(if [ -x .venv/bin/python ]; then echo .venv/bin/python; else echo python3; fi)}
CHECKPOINTS_DIR=${CHECKPOINTS_DIR:-./checkpoints}
mkdir -p "$OUT_DIR"
exec "$PYTHON" predict.py --pairs "$PAIRS" --out "$OUT_DIR" --name "$NAME" \
  --checkpoints_dir "$CHECKPOINTS_DIR" --gpu_ids auto "$@"
