"""One-epoch fit on the repository's KeypointNet airplane sample through the CLI: official train split (the
11 clouds present), tested on its 2 official-test clouds with the geodesic PCK evaluator."""

import json
from pathlib import Path

import numpy as np
import pytest

from sampling_argmax.cli import main
from sampling_argmax.training.lightning_cli import SamplingArgmaxCLI

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "keypointnet" / "cpu.yaml"
TINY = ["--model.model.init_args.sa_npoints", "[32, 8]", "--model.model.init_args.sa_radii", "[[0.1, 0.2], [0.4]]",
        "--model.model.init_args.sa_nsamples", "[[4, 8], [8]]",
        "--model.model.init_args.sa_mlps", "[[[8], [8]], [[16]]]", "--model.model.init_args.global_mlp", "[16]",
        "--model.model.init_args.fp_mlps", "[[16], [16], [16]]", "--model.model.init_args.head_width", "16"]


@pytest.mark.slow
def test_one_epoch_on_the_airplane_sample_trains_and_tests(airplane_sample_args, tmp_path, one_thread, capsys):
    args = ["--config", str(CONFIG), *TINY, *airplane_sample_args]
    main(["fit", *args, "--trainer.max_epochs", "1", "--method", "samp_gau", "--method_args", '{"num_samples": 4}'])
    cli = SamplingArgmaxCLI(args=["test", *args, "--ckpt_path", "last"])
    assert "method samp_gau" in capsys.readouterr().out
    metrics = cli.trainer.callback_metrics
    assert int(metrics["test/num_samples"]) == 2
    for key in ("pck", "pck_euclidean", "euclidean_error"):
        assert np.isfinite(float(metrics[f"test/{key}"])), key
    assert 0.0 <= float(metrics["test/pck"]) <= 1.0
    curve = next(tmp_path.glob("logs/version_*/evaluation/pck_curve_test.csv")).read_text().splitlines()
    assert curve[1].startswith("geodesic,airplane,0.0000")  # PCK(0) = 0: the benchmark's strict threshold

    # the same checkpoint on the user's own .pcd files: the rows are the test split's predictions
    test_set = cli.datamodule.load_split("test")
    folder = tmp_path / "clouds"
    folder.mkdir()
    for model_id in test_set.model_ids:
        source = next((cli.datamodule.root / "pcds").rglob(f"{model_id}.pcd"))
        (folder / source.name).write_bytes(source.read_bytes())
    main(["predict", "--ckpt_path", str(tmp_path / "checkpoints" / "last.ckpt"), "--input", str(folder),
          "--out", str(tmp_path / "predicted"), "--no_progress"])
    rows = {Path(r["input"]).stem: r for r in json.loads((tmp_path / "predicted" / "predictions.json").read_text())}
    outputs = cli.model.last_outputs
    assert sorted(rows) == sorted(test_set.model_ids)
    for n, model_id in enumerate(test_set.model_ids):
        row = outputs["index"].tolist().index(n)
        np.testing.assert_allclose(rows[model_id]["keypoints"], outputs["pred"][row], atol=1e-5)
        np.testing.assert_allclose(rows[model_id]["confidence"], outputs["confidence"][row], atol=1e-6)
