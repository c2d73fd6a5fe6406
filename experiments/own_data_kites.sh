#!/usr/bin/env bash
# Your own data, end to end with the shipped configs and no code: a made-up "kite" category (5 keypoints, two
# left/right pairs, tests/writers.py) as a COCO-format json and as a landmark CSV -> fit -> test -> predict.
# Checks that the chain learns (AP / NME), not a benchmark: the kites are coloured 3x3 patches on noise.
#   bash experiments/own_data_kites.sh [OUT]        # default OUT=reports/own_data_kites; 64 steps a format
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-reports/own_data_kites}
export PYTHONPATH=$PWD/src:$PWD/tests${PYTHONPATH:+:$PYTHONPATH} OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
mkdir -p "$OUT"
python -c "
from writers import write_coco_kites, write_landmark_csv
write_coco_kites('$OUT/data/train', 128, size=64, seed=0); write_coco_kites('$OUT/data/val', 32, size=64, seed=1)
write_landmark_csv('$OUT/data/csv_train', 128, size=64, seed=0); write_landmark_csv('$OUT/data/csv_val', 32, size=64, seed=1)"
SMALL=(--data.input_size '[64, 64]' --data.heatmap_size '[16, 16]' --data.batch_size 16 --data.num_workers 0
       --trainer.max_epochs 8 --model.milestones '[6]' --trainer.check_val_every_n_epoch 8
       --trainer.enable_progress_bar false)
D=$OUT/data
sampling() { python -m sampling_argmax.cli "$@"; }
sampling fit --config configs/coco_format.yaml --data.train_ann_file $D/train/kites.json \
  --data.train_image_dir $D/train/images --data.val_ann_file $D/val/kites.json --data.val_image_dir $D/val/images \
  --trainer.default_root_dir $OUT/coco_run "${SMALL[@]}"
sampling test --config configs/coco_format.yaml --data.test_ann_file $D/val/kites.json \
  --data.test_image_dir $D/val/images --trainer.default_root_dir $OUT/coco_run \
  --ckpt_path $OUT/coco_run/checkpoints/last.ckpt "${SMALL[@]}" | tee $OUT/coco_test.txt
sampling predict --ckpt_path $OUT/coco_run/checkpoints/last.ckpt --input $D/val/images --out $OUT/coco_predictions \
  --draw --no_progress
sampling fit --config configs/csv_landmarks.yaml --data.train_csv $D/csv_train/landmarks.csv \
  --data.train_image_dir $D/csv_train/images --data.val_csv $D/csv_val/landmarks.csv \
  --data.val_image_dir $D/csv_val/images --data.normalize '[left_wing, right_wing]' \
  --trainer.default_root_dir $OUT/csv_run "${SMALL[@]}"
sampling test --config configs/csv_landmarks.yaml --data.test_csv $D/csv_val/landmarks.csv \
  --data.test_image_dir $D/csv_val/images --data.normalize '[left_wing, right_wing]' \
  --trainer.default_root_dir $OUT/csv_run --ckpt_path $OUT/csv_run/checkpoints/last.ckpt "${SMALL[@]}" \
  | tee $OUT/csv_test.txt
