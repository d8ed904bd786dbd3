#!/bin/bash
# Index a DICOMweb service (a PACS, Orthanc) as a Slurm job array split by study date, one month per task, then
# join the months:
#
#   jobid=$(sbatch --parsable sample_configs/index_dicomweb_slurm_array.sh)
#   sbatch --dependency=afterok:$jobid --wrap "monai-ssl merge $OUT/month_*.json --out $OUT/datalist.json"
#
# Months do not overlap, so no study is fetched twice; a series found twice would be kept once by the merge.
# Credentials: $MONAI_SSL_DICOMWEB_USER and $MONAI_SSL_DICOMWEB_PASSWORD (or a token, or ~/.netrc), never the URL.
#SBATCH --job-name=monai-ssl-index-web
#SBATCH --array=0-11
#SBATCH --cpus-per-task=2
#SBATCH --mem=8G
#SBATCH --time=12:00:00
#SBATCH --output=monai-ssl-index-web_%A_%a.log
set -euo pipefail

DICOMWEB=${DICOMWEB:-dicomweb+http://pacs.example.org:8042/dicom-web}
YEAR=${YEAR:-2025}
OUT=${OUT:-/scratch/monai-ssl-index-web}

MONTH=$(printf "%02d" $((SLURM_ARRAY_TASK_ID + 1)))
LAST_DAY=$(date -d "${YEAR}-${MONTH}-01 +1 month -1 day" +%Y%m%d)

monai-ssl index "$DICOMWEB" --out "$OUT/month_${MONTH}.json" --cache-dir "$OUT/cache" \
    --study-date-from "${YEAR}${MONTH}01" --study-date-to "$LAST_DAY" --modality CT MR
