#!/usr/bin/env bash
# Cold start of `fit` on the default synthetic task: Soft and a sampling method in turn, RUNS times each, every run in
# a fresh folder with EMPTY inductor and kernel caches (what a first run on a new machine pays), default threads.
#   bash benchmarks/cold_start.sh            # RUNS=3 METHOD=samp_tri
# Prints one line per run (method, wall s, user s, sys s, peak MiB, "CUDA" lines in its output) and the medians'
# ratios; docs/performance.md section 1.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
RUNS=${RUNS:-3}
METHOD=${METHOD:-samp_tri}
results=$(mktemp)
for run in $(seq "$RUNS"); do
  for method in soft "$METHOD"; do
    d=$(mktemp -d)
    TORCHINDUCTOR_CACHE_DIR=$d/inductor SAMPLING_ARGMAX_CACHE_DIR=$d/kernels /usr/bin/time -f "%e %U %S %M" -o "$d/time" \
      sampling-argmax fit --config "$ROOT/configs/synthetic.yaml" --method "$method" \
      --trainer.default_root_dir "$d/run" > "$d/log" 2>&1
    read -r wall user sys kib < "$d/time"
    cuda=$(grep -c CUDA "$d/log" || true)
    echo "$method $wall $user $sys $((kib / 1024)) $cuda" | tee -a "$results"
    rm -rf "$d"
  done
done
python - "$results" "$METHOD" <<'PY'
import statistics, sys
rows = [line.split() for line in open(sys.argv[1])]
med = {m: [statistics.median(float(r[1]) for r in rows if r[0] == m),
           statistics.median(float(r[2]) + float(r[3]) for r in rows if r[0] == m)] for m in ("soft", sys.argv[2])}
print(f"median wall: soft {med['soft'][0]:.1f} s, {sys.argv[2]} {med[sys.argv[2]][0]:.1f} s, ratio "
      f"{med[sys.argv[2]][0] / med['soft'][0]:.3f}; CPU: {med['soft'][1]:.1f} s, {med[sys.argv[2]][1]:.1f} s, ratio "
      f"{med[sys.argv[2]][1] / med['soft'][1]:.3f}")
PY
rm -f "$results"
