#!/usr/bin/env bash
# MTFL: the six methods x 3 seeds with configs/mtfl/cpu.yaml (2-core CPU, about an hour), then
# supplementary Table 1's layout next to the paper's numbers (reports/mtfl_cpu/table1.md).
# Extra arguments go to every run, e.g. --trainer.max_epochs 2 for a smoke test.
# GPU users: CONFIG=configs/mtfl/paper.yaml OUT=reports/mtfl_paper benchmarks/mtfl_compare.sh
set -euo pipefail
cd "$(dirname "$0")/.."
CONFIG=${CONFIG:-configs/mtfl/cpu.yaml}
OUT=${OUT:-reports/mtfl_cpu}
read -r -a SEEDS <<< "${SEEDS:-0 1 2}"
# one thread per process: on a loaded 2-core machine two OpenMP threads per process run several times slower
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
sampling-argmax compare --config "$CONFIG" --seeds "${SEEDS[@]}" --out "$OUT" "$@"
python benchmarks/mtfl_table.py "$OUT"
