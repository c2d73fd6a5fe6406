#!/usr/bin/env bash
# Issue 12, part 1: Soft w/ V.R. with the library default (variance term on the coordinate loss's scale,
# the paper's weight 1) beside Soft, 3 seeds, on the synthetic 2D task and on configs/mtfl/cpu.yaml
# (Soft's MTFL row is the six-method comparison's, experiments/mtfl_compare.sh: same config and seeds).
# Resumable: run it again after an interruption.   OUT=reports/vr_default experiments/vr_default.sh
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-reports/vr_default}
read -r -a SEEDS <<< "${SEEDS:-0 1 2}"
sampling-argmax compare --methods soft soft_vr --seeds "${SEEDS[@]}" --num_show 0 --resume --out "$OUT/synthetic2d" "$@"
sampling-argmax compare --config configs/mtfl/cpu.yaml --methods soft_vr --seeds "${SEEDS[@]}" --num_show 0 --resume \
    --out "$OUT/mtfl_cpu" "$@"
