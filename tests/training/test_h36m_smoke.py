"""One-epoch fit of the Human3.6M CPU config on the real-layout fixtures (4 Human3.6M frames + 5 MPII people)
through the CLI, then its test with the flip test: the whole chain of issue 14 runs."""

from pathlib import Path

import numpy as np
import pytest

from sampling_argmax.cli import main
from sampling_argmax.training.lightning_cli import SamplingArgmaxCLI

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "h36m" / "cpu.yaml"
SUBJECTS = '["S1", "S5", "S7", "S8"]'


@pytest.mark.slow
def test_one_epoch_on_the_fixtures_trains_and_tests(shared_data, tmp_path, one_thread, capsys):
    if not (shared_data / "h36m" / "cameras.pkl").is_file() or not (shared_data / "mpii").is_dir():
        pytest.skip("Human3.6M / MPII fixtures absent (see shared/data/README.md)")
    args = ["--config", str(CONFIG),
            "--data.init_args.data_root", str(shared_data / "h36m"),
            "--data.init_args.train_annotation", "test_h36m_body3d.npz",
            "--data.init_args.test_annotation", "test_h36m_body3d.npz",
            "--data.init_args.train_subjects", SUBJECTS, "--data.init_args.test_subjects", SUBJECTS,
            "--data.init_args.train_stride", "1", "--data.init_args.test_stride", "1",
            "--data.init_args.mpii_root", str(shared_data / "mpii"),
            "--data.init_args.mpii_annotation", "test_mpii.json",
            "--data.init_args.input_size", "64", "--data.init_args.map_size", "16",
            "--data.init_args.depth_bins", "8", "--data.init_args.batch_size", "4", "--data.init_args.num_workers", "0",
            "--model.model.init_args.deconv_channels", "16", "--model.model.init_args.depth_bins", "8",
            "--trainer.default_root_dir", str(tmp_path),
            "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]
    main(["fit", *args, "--trainer.max_epochs", "1"])
    cli = SamplingArgmaxCLI(args=["test", *args, "--ckpt_path", "last"])
    assert "method samp_tri" in capsys.readouterr().out
    metrics = cli.trainer.callback_metrics
    assert int(metrics["test/num_samples"]) == 4
    for key in ("mpjpe", "pa_mpjpe", "mpjpe_Directions", "mpjpe_WalkDog"):
        assert np.isfinite(float(metrics[f"test/{key}"])), key
    assert float(metrics["test/pa_mpjpe"]) <= float(metrics["test/mpjpe"]) + 1e-6
    assert cli.model.flip_test
    rows = next(tmp_path.glob("logs/version_*/evaluation/per_action_test.csv")).read_text().splitlines()
    assert rows[0] == "action,frames,mpjpe,pa_mpjpe" and len(rows) == 5
