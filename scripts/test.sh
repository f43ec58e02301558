#!/usr/bin/env sh
# The paper's test command (official scripts/test.sh), with the data root and the experiment
# name as arguments or environment variables:
#   sh scripts/test.sh [DATAROOT] [NAME] [extra options...]
set -e
DATAROOT=${1:-${DATAROOT:-./data/test}}
NAME=${2:-${NAME:-realcloud_21}}
[ $# -gt 0 ] && shift
[ $# -gt 0 ] && shift
PYTHON=${PYTHON:-$(if [ -x .venv/bin/python ]; then echo .venv/bin/python; else echo python3; fi)}
exec "$PYTHON" test.py --dataroot "$DATAROOT" --name "$NAME" --model pix2pix_attn --no_dropout \
  --display_id 0 --batchSize 1 --gpu_ids 0 --dataset_mode unaligned_sar --no_flip "$@"
