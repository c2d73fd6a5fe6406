#!/usr/bin/env bash
# Every table of docs/performance.md in one run (about 25 minutes on the 2-core CI machine; run it on an idle one).
#   SAMPLING_ARGMAX_DATA=../shared/data bash benchmarks/performance_tables.sh OUT_DIR
# OUT_DIR/tables.md gets: 1. the cold start of `fit` (benchmarks/cold_start.sh), 2. the README's `compare` from
# empty caches (per-method train times), 3. the operator (benchmarks/operator.py), 4. every task's training step
# (benchmarks/train_step.py).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${1:?usage: performance_tables.sh OUT_DIR}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
T=$OUT/tables.md
cd "$ROOT"
say() { echo "$*" | tee -a "$T"; }
say "# performance tables, $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
say "machine: $(uname -m), $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), load $(cut -d' ' -f1-3 /proc/loadavg)"
say "## 1. cold start: fit --config configs/synthetic.yaml, Soft and Samp.Tri in turn, empty caches"
RUNS=${RUNS:-3} bash benchmarks/cold_start.sh 2>&1 | tee -a "$T"
say "## 2. compare (the README's first command) from empty caches"
d=$(mktemp -d)
TORCHINDUCTOR_CACHE_DIR=$d/inductor SAMPLING_ARGMAX_CACHE_DIR=$d/kernels /usr/bin/time -f "compare wall %e s, peak %M KiB" \
  -o "$d/time" sampling-argmax compare --out "$d/out" > "$d/log" 2>&1
cat "$d/time" "$d/out/table.md" | tee -a "$T"
say "CUDA lines in compare's output: $(grep -c CUDA "$d/log" || true)"
rm -rf "$d"
say "## 3. operator"
OMP_NUM_THREADS=1 python benchmarks/operator.py --tasks coco mtfl keypointnet --implementations fused chunked \
  --taus 1 0.5 --repeats 3 2>&1 | grep -E '^\||^machine|^load' | tee -a "$T"
say "## 4. training steps"
OMP_NUM_THREADS=1 python benchmarks/train_step.py --tasks synthetic mtfl oct keypointnet skeleton_merger --runs 3 \
  --warm 3 2>&1 | grep -E '^\||^machine|^load' | tee -a "$T"
OMP_NUM_THREADS=1 python benchmarks/train_step.py --tasks coco h36m --runs 1 --warm 2 2>&1 | grep -E '^\||^machine|^load' | tee -a "$T"
say "done $(date -u '+%H:%M UTC'), load $(cut -d' ' -f1-3 /proc/loadavg)"
