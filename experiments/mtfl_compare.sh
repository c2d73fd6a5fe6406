#!/usr/bin/env bash
# MTFL: the six methods x 3 seeds with configs/mtfl/cpu.yaml (2-core CPU, under 2 hours), then
# supplementary Table 1's layout next to the paper's numbers (reports/mtfl_cpu/table1.md).
# Extra arguments go to every run, e.g. --trainer.max_epochs 2 for a smoke test.
# On a 2-core machine shared with other jobs, OMP_NUM_THREADS=1 can be several times faster than torch's
# default of one thread per core; on an idle machine the default is the faster one.
# GPU users: CONFIG=configs/mtfl/paper.yaml OUT=reports/mtfl_paper experiments/mtfl_compare.sh
set -euo pipefail
cd "$(dirname "$0")/.."
CONFIG=${CONFIG:-configs/mtfl/cpu.yaml}
OUT=${OUT:-reports/mtfl_cpu}
read -r -a SEEDS <<< "${SEEDS:-0 1 2}"
sampling-argmax compare --config "$CONFIG" --seeds "${SEEDS[@]}" --out "$OUT" "$@"
python experiments/mtfl_table.py "$OUT"
