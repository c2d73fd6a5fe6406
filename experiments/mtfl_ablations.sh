#!/usr/bin/env bash
# MTFL ablations beside experiments/mtfl_compare.sh (same config, seeds 0 1 2), one question each:
#   vr_normalized  Soft w/ V.R. with the variance on the coordinate loss's scale: weight 1 / 32^4, i.e.
#                  (Var/32^2 - 4/32^2)^2 on cpu.yaml's 32x32 map instead of (Var - 4)^2 in cell^2 (which
#                  collapses); another map size needs 1 / size^4;
#   gumbel_authors Samp. Tri. with the authors' code's Gumbel step softmax(logits + g/tau) (PAPER.md §3)
#                  instead of the paper's softmax((logits + g)/tau), under the same tau schedule.
# The two run side by side with one thread each (2 cores), 38 minutes measured here; reports in reports/mtfl_cpu_<name>/.
set -euo pipefail
cd "$(dirname "$0")/.."
CONFIG=${CONFIG:-configs/mtfl/cpu.yaml}
read -r -a SEEDS <<< "${SEEDS:-0 1 2}"
export OMP_NUM_THREADS=1
sampling-argmax compare --config "$CONFIG" --seeds "${SEEDS[@]}" --methods soft_vr --num_show 0 \
    --method_args '{"variance_scale": "cell", "regularizer_weight": 9.5367431640625e-07}' --out reports/mtfl_cpu_vr_normalized "$@" &
first=$!
sampling-argmax compare --config "$CONFIG" --seeds "${SEEDS[@]}" --methods samp_tri --num_show 0 \
    --method_args '{"gumbel": "authors"}' --out reports/mtfl_cpu_gumbel_authors "$@" &
wait "$first" "$!"
