#!/usr/bin/env bash
# Pretrain the brain-MRI pool runs of the label-efficiency benchmark in parallel on one GPU, resumably:
# all four tasks and relative position alone, seeds 0-2 (seed 0 of "all" is the encoder shipped in
# bundles/pretext_pretraining/models/). Each run stops after SECONDS_BUDGET seconds; running the script again
# continues every run from its last periodic checkpoint (resume: true in the sample config).
#
#   bash benchmarks/pool_pretraining.sh [SECONDS_BUDGET]      (ARMS="all" to run only the all-four arm)
#
# Outputs: outputs/gpu_pool/<arm>_seed<k>/ (models/checkpoint_epoch=*.pt, pretext_scores.json, logs) and a log each.
set -u
cd "$(dirname "$0")/.."
SECONDS_BUDGET=${1:-480}
DATALIST=${DATALIST:-sample_configs/brain_mri_pool_datalist.json}
mkdir -p outputs/gpu_pool
for seed in 0 1 2; do
  for arm in ${ARMS:-all relative_position}; do
    if [ "$arm" = all ]; then tasks="['jigsaw','rotation','colorization','relative_position']"; else tasks="['$arm']"; fi
    timeout "$SECONDS_BUDGET" python3 -m monai.bundle run --config_file \
      "['bundles/pretext_pretraining/configs/train.json','sample_configs/brain_mri_pool_pretraining.json']" \
      --datalist "$DATALIST" --output_dir "outputs/gpu_pool/${arm}_seed${seed}" --ckpt_dir "outputs/gpu_pool/${arm}_seed${seed}/models" \
      --seed "$seed" --tasks "$tasks" --batch_size 4 --amp true --num_workers 2 --max_epochs 200 \
      > "outputs/gpu_pool/${arm}_seed${seed}.log" 2>&1 &
  done
done
wait
