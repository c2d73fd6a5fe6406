#!/usr/bin/env bash
# KeypointNet supervised (the paper's point-set table): one model per category, the four methods defined on
# point sets, configs/keypointnet/paper.yaml (supplementary Appendix A), then the class-averaged PCK@0.01.
# Needs the full dataset in the official layout (annotations/, pcds/, splits/) under $SAMPLING_ARGMAX_DATA/keypointnet
# or DATA=/path/to/keypointnet, and a GPU (100 epochs per category and method).
#   DATA=/data/keypointnet SEEDS="0" experiments/keypointnet_paper.sh [extra --key value for every run]
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-${SAMPLING_ARGMAX_DATA:?set SAMPLING_ARGMAX_DATA or DATA}/keypointnet}
OUT=${OUT:-reports/keypointnet_paper}
read -r -a SEEDS <<< "${SEEDS:-0}"
CATEGORIES=${CATEGORIES:-"airplane bathtub bed bottle cap car chair guitar helmet knife laptop motorcycle mug skateboard table vessel"}
for category in $CATEGORIES; do
  # K = the category's largest semantic id + 1 (read from its annotation file)
  K=$(python -c "from sampling_argmax.data.keypointnet import CATEGORIES, read_annotations; \
print(read_annotations('$DATA/annotations/$category.json', CATEGORIES['$category'])[1])")
  sampling-argmax compare --config configs/keypointnet/paper.yaml --methods soft soft_vr soft_dr samp_gau \
    --seeds "${SEEDS[@]}" --out "$OUT/$category" --resume \
    --data.init_args.category "$category" --data.init_args.data_root "$DATA" \
    --model.model.init_args.num_keypoints "$K" "$@"
done
python experiments/keypointnet_table.py "$OUT"
