#!/usr/bin/env bash
# Issue 12, part 3: does the sampling methods' gap to Soft on MTFL come from the 32x32 maps?
# configs/mtfl/cpu.yaml + configs/mtfl/map64.yaml (64x64 maps, all else equal), Soft, Soft w/ D.R., Samp. Tri, Samp. Gau,
# seeds as the outer loop (an interrupted study has every method at seed 0). Resumable: run it again.
# Then: python experiments/mtfl_table.py reports/mtfl_map64 and python experiments/map_statistics.py reports/mtfl_map64
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-reports/mtfl_map64}
read -r -a SEEDS <<< "${SEEDS:-0 1 2}"
for seed in "${SEEDS[@]}"; do
  sampling-argmax compare --config configs/mtfl/cpu.yaml --config configs/mtfl/map64.yaml \
    --methods soft soft_dr samp_tri samp_gau --seeds "$seed" --num_show 4 --resume --out "$OUT" "$@"
done
