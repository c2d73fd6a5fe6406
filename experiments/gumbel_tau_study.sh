#!/usr/bin/env bash
# Issue 12, part 2: which Gumbel form and temperature schedule should Samp. Tri default to?
# Samp. Tri with {paper: softmax((log pi + g)/tau), authors: softmax(log pi + g/tau)} x
# {the paper's schedule tau = max(0.5, 2 - 3 epoch/50), constant tau = 1, constant tau = 0.5}, 3 seeds,
# on the synthetic 2D task and on configs/mtfl/cpu.yaml. Resumable: run it again after an interruption.
# Seeds are the outer loop, so an interrupted study still has every cell at seed 0.
# Then: python experiments/gumbel_tau_table.py $OUT  (metrics and map statistics per cell).
#   TASKS="synthetic mtfl" OUT=reports/gumbel_tau experiments/gumbel_tau_study.sh
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-reports/gumbel_tau}
read -r -a TASKS <<< "${TASKS:-synthetic mtfl}"
read -r -a SEEDS <<< "${SEEDS:-0 1 2}"
read -r -a SCHEDULES <<< "${SCHEDULES:-linear const1 const05}"   # a subset runs the informative cells first
declare -A SCHEDULE=(
  [linear]='{"class_path": "sampling_argmax.LinearTemperature", "init_args": {"start": 2.0, "end": 0.5, "slope": 0.06}}'
  [const1]='{"class_path": "sampling_argmax.ConstantTemperature", "init_args": {"tau": 1.0}}'
  [const05]='{"class_path": "sampling_argmax.ConstantTemperature", "init_args": {"tau": 0.5}}'
)
for task in "${TASKS[@]}"; do
  config=()
  [[ $task == mtfl ]] && config=(--config configs/mtfl/cpu.yaml)
  for seed in "${SEEDS[@]}"; do
    for form in paper authors; do
      for schedule in "${SCHEDULES[@]}"; do
        # at tau = 1 the two forms are one formula (measured identical on the synthetic task): run it once
        [[ $form == authors && $schedule == const1 ]] && continue
        sampling-argmax compare "${config[@]}" --methods samp_tri --seeds "$seed" --num_show 0 --resume \
          --method_args "{\"gumbel\": \"$form\", \"schedule\": ${SCHEDULE[$schedule]}}" \
          --out "$OUT/$task/${form}_$schedule" "$@"
      done
    done
  done
done
