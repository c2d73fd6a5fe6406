"""Command-line arguments of the tiny synthetic runs the reliability tests train (seconds each)."""

#: A tiny synthetic 2D run: 32 x 32 images, 2 landmarks, a 4-channel SmallHeatmapNet, 2 samples a keypoint.
TINY = [
    "--data.init_args.num_keypoints", "2", "--model.model.init_args.num_keypoints", "2",
    "--data.init_args.size", "32", "--data.init_args.train_size", "64", "--data.init_args.val_size", "8",
    "--data.init_args.test_size", "8", "--data.init_args.batch_size", "8",
    "--model.model.init_args.width", "4", "--method_args", '{"num_samples": 2}',
    "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
]
