#!/usr/bin/env sh
# The paper's training command (official scripts/train.sh), with the data root and the
# experiment name as arguments or environment variables:
#   sh scripts/train.sh [DATAROOT] [NAME] [extra options...]
#   DATAROOT=data/train NAME=realcloud_21 sh scripts/train.sh --gpu_ids -1
set -e
DATAROOT=${1:-${DATAROOT:-./data/train}}
NAME=${2:-${NAME:-realcloud_21}}
[ $# -gt 0 ] && shift
[ $# -gt 0 ] && shift
PYTHON=${PYTHON:-$(if [ -x .venv/bin/python ]; then echo .venv/bin/python; else echo python3; fi)}
exec "$PYTHON" train.py --dataroot "$DATAROOT" --name "$NAME" --model pix2pix_attn --niter 210 \
  --lr_policy step --pool_size 50 --display_freq 2000 --no_dropout --display_id 0 --batchSize 1 \
  --gpu_ids 0 --dataset_mode unaligned_sar --no_flip --display_freq 500 --save_epoch_freq 40 "$@"
