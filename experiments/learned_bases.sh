#!/usr/bin/env bash
# Issue 18: learned per-cell laws vs the fixed bases vs Soft where the read-out bias shows, the synthetic 2D task on
# 12x12 maps (configs/learned_bases/). Three compare invocations a seed (the learned bases' models output the laws'
# parameters too, so each has its own model overlay), all into one report; seeds are the outer loop.
# Resumable: run it again. Then: python experiments/collect_runs.py $OUT; python experiments/map_statistics.py $OUT
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-reports/learned_bases}
read -r -a SEEDS <<< "${SEEDS:-0 1 2}"
base=(--config configs/synthetic.yaml --config configs/learned_bases/synthetic_coarse.yaml)
for seed in "${SEEDS[@]}"; do
  sampling-argmax compare "${base[@]}" --methods soft samp_tri samp_gau --seeds "$seed" --resume --out "$OUT" "$@"
  for family in lgau lspline; do
    sampling-argmax compare "${base[@]}" --config "configs/learned_bases/synthetic_coarse_$family.yaml" \
      --methods "samp_$family" --seeds "$seed" --resume --out "$OUT" "$@"
  done
done
python experiments/collect_runs.py "$OUT"
