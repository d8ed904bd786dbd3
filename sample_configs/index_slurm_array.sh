#!/bin/bash
# Index a folder archive as a Slurm job array, one shard per task, then join the shards:
#
#   jobid=$(sbatch --parsable sample_configs/index_slurm_array.sh)
#   sbatch --dependency=afterok:$jobid --wrap "monai-ssl merge $OUT/shard_*.json --out $OUT/datalist.json"
#
# Each task examines every file far enough to read its Series Instance UID and indexes only the series of its
# shard, so a series spread over folders is never split. All tasks must hash identifiers with one salt: the
# per-user salt in a shared home directory, or MONAI_SSL_SALT_FILE pointing at one file (merge refuses a mix).
#SBATCH --job-name=monai-ssl-index
#SBATCH --array=0-15
#SBATCH --cpus-per-task=8
#SBATCH --mem=16G
#SBATCH --time=12:00:00
#SBATCH --output=monai-ssl-index_%A_%a.log
set -euo pipefail

ARCHIVE=${ARCHIVE:-/data/pacs_export}
OUT=${OUT:-/scratch/monai-ssl-index}

monai-ssl index "$ARCHIVE" --out "$OUT/shard_${SLURM_ARRAY_TASK_ID}.json" --cache-dir "$OUT/cache" \
    --shard "${SLURM_ARRAY_TASK_ID}/${SLURM_ARRAY_TASK_COUNT}" --workers "${SLURM_CPUS_PER_TASK}" --modality CT MR
