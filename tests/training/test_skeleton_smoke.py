"""One epoch of unsupervised keypoints (Skeleton Merger) on the repository's KeypointNet airplane sample through
the CLI: its objective trains (no label: every target weight is 0), then test scores DAS on the 2 official-test
clouds with the annotation kept for evaluation."""

import csv
from pathlib import Path

import numpy as np
import pytest

from sampling_argmax.cli import main
from sampling_argmax.training.lightning_cli import SamplingArgmaxCLI

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "skeleton_merger" / "cpu.yaml"
BACKBONE = "--model.model.init_args.backbone.init_args."
TINY = [BACKBONE + "sa_npoints", "[32, 8]", BACKBONE + "sa_radii", "[[0.1, 0.2], [0.4]]",
        BACKBONE + "sa_nsamples", "[[4, 8], [8]]", BACKBONE + "sa_mlps", "[[[8], [8]], [[16]]]",
        BACKBONE + "global_mlp", "[16]", BACKBONE + "fp_mlps", "[[16], [16], [16]]", BACKBONE + "head_width", "16",
        "--model.model.init_args.num_keypoints", "5", "--data.init_args.num_keypoints", "5"]


@pytest.mark.slow
@pytest.mark.parametrize("method", ["samp_gau", "soft_dr"])
def test_one_epoch_on_the_airplane_sample_trains_and_scores_das(method, airplane_sample_args, tmp_path, one_thread,
                                                                 capsys):
    args = ["--config", str(CONFIG), *TINY, *airplane_sample_args]
    main(["fit", *args, "--trainer.max_epochs", "1", "--trainer.log_every_n_steps", "1", "--method", method,
          "--method_args", '{"num_samples": 2}' if method == "samp_gau" else "{}"])
    with open(next(tmp_path.glob("logs/version_0/**/metrics.csv"))) as handle:
        losses = [float(row["train/loss"]) for row in csv.DictReader(handle) if row.get("train/loss")]
    assert losses and all(loss > 0 for loss in losses)  # the Chamfer objective: a supervised loss would be 0 here
    cli = SamplingArgmaxCLI(args=["test", *args, "--ckpt_path", "last"])
    assert f"method {method}" in capsys.readouterr().out
    metrics = cli.trainer.callback_metrics
    assert int(metrics["test/num_samples"]) == 2
    for key in ("das", "das_forward", "das_backward"):
        assert 0.0 <= float(metrics[f"test/{key}"]) <= 1.0, key
    assert float(metrics["test/das"]) == pytest.approx(
        (float(metrics["test/das_forward"]) + float(metrics["test/das_backward"])) / 2)
    assert np.isfinite(cli.model.last_outputs["pred"]).all() and cli.model.last_outputs["gt_keypoints"].shape == (2, 19, 3)


SYNTHETIC = Path(__file__).resolve().parents[2] / "configs" / "synthetic_skeleton.yaml"


@pytest.mark.slow
def test_compare_on_the_synthetic_unsupervised_task_reports_das(tmp_path, one_thread, quiet):
    """compare runs a label-free task to the end: its table holds DAS; no calibration figure (no label, no error)."""
    out = tmp_path / "report"
    main(["compare", "--config", str(SYNTHETIC), "--methods", "soft", "--seeds", "0", "--out", str(out),
          "--num_show", "0", *TINY[:-4], "--model.model.init_args.num_keypoints", "4",
          "--data.init_args.num_keypoints", "4", "--data.init_args.num_points", "128",
          "--data.init_args.train_size", "24", "--data.init_args.val_size", "6", "--data.init_args.test_size", "9",
          "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2", "--trainer.check_val_every_n_epoch", "1"])
    table = (out / "table.md").read_text()
    assert "| das |" in table and "| das_forward |" in table and "(3 airplane objects)" in table
    assert not (out / "calibration.png").exists()
