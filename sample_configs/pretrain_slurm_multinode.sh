#!/bin/bash
# Pretrain on several nodes with torchrun, one launcher per node (`sbatch sample_configs/pretrain_slurm_multinode.sh`):
# c10d rendezvous on the first node, one process per GPU; each process caches and reads its own partition of the
# pool (on disk above the size that fits in memory: `cache: auto`, logged). Extra arguments go to the bundle.
# Index the archive first (sample_configs/index_slurm_array.sh) and give its merged datalist.
#SBATCH --job-name=monai-ssl-pretrain
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=4
#SBATCH --cpus-per-task=32
#SBATCH --time=48:00:00
#SBATCH --output=monai-ssl-pretrain_%j.log
set -euo pipefail

DATALIST=${DATALIST:-/scratch/monai-ssl-index/datalist.json}
OUT=${OUT:-/scratch/monai-ssl-pretrain}
BUNDLE=${BUNDLE:-bundles/pretext_pretraining}
# The whole host list is read: `| head -n 1` can end scontrol with SIGPIPE, which pipefail turns into a failed job.
mapfile -t NODES < <(scontrol show hostnames "$SLURM_JOB_NODELIST")
HEAD_NODE=${NODES[0]}

srun torchrun --nnodes="$SLURM_NNODES" --nproc_per_node="${SLURM_GPUS_ON_NODE:-1}" \
    --rdzv_backend=c10d --rdzv_endpoint="${HEAD_NODE}:29500" --rdzv_id="$SLURM_JOB_ID" \
    -m monai.bundle run --config_file "['$BUNDLE/configs/train.json','$BUNDLE/configs/multi_gpu_train.json']" \
    --datalist "$DATALIST" --output_dir "$OUT" --ckpt_dir "$OUT/models" --resume true "$@"
