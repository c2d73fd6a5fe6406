#!/usr/bin/env bash
# Issue 29, part 2: the MTFL budget trend. Soft, Soft w/ D.R., Samp. Tri and Samp. Gau with configs/mtfl/cpu.yaml
# at 3x the CPU budget: the same 30-epoch schedule (tau, learning-rate drops) with three times the faces per epoch
# (train_samples_per_epoch 1,440 -> 4,320: 4,050 steps), seeds 0 and 1, beside the 1x numbers of docs/mtfl.md.
# Two streams, one thread each, fit the 2 cores (STREAM=a runs soft + samp_tri, STREAM=b soft_dr + samp_gau; no
# STREAM runs all four in one process). Resumable: run the same command again after an interruption.
# Then: python experiments/collect_runs.py reports/mtfl_budget3x
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-reports/mtfl_budget3x}
read -r -a SEEDS <<< "${SEEDS:-0 1}"
case "${STREAM:-}" in
  a) METHODS=(soft samp_tri) ;;
  b) METHODS=(soft_dr samp_gau) ;;
  *) METHODS=(soft soft_dr samp_tri samp_gau) ;;
esac
for seed in "${SEEDS[@]}"; do
  sampling-argmax compare --config configs/mtfl/cpu.yaml --data.init_args.train_samples_per_epoch 4320 \
    --methods "${METHODS[@]}" --seeds "$seed" --num_show 4 --resume --out "$OUT" "$@"
done
