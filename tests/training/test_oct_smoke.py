"""One-epoch smoke fit of the MSHC config on an MSHC-layout fixture: the real Spectralis B-scan written as a
Heyex .vol (eyepy's format) with its 9 manual boundaries as a delineation .mat, one subject per split."""

import json
from pathlib import Path

import numpy as np
import scipy.io as sio
from PIL import Image

from writers import write_vol
from sampling_argmax.cli import main
from sampling_argmax.training.lightning_cli import SamplingArgmaxCLI

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "oct" / "cpu.yaml"
STEM = "_spectralis_macula_v1_s1_R"


def write_mshc_fixture(root: Path, folder: Path) -> Path:
    scan = sio.loadmat(folder / "circularScan.mat")
    rows = sio.loadmat(folder / "circularScan_0_coordinates.mat")["interpolation"]  # 1-based, as MSHC's
    (root / "vol").mkdir(parents=True)
    (root / "delineation").mkdir()
    for subject in ("hc10", "hc09", "hc01"):  # official train, val, test subjects
        write_vol(root / "vol" / f"{subject}{STEM}.vol", scan["B0"][None], float(scan["ScaleZ"].item()) * 1000)
        dense = np.zeros((rows.shape[1], 1, 11))  # (A-scans, B-scans, 11): cells 3 and 11 unused
        dense[:, 0, [0, 1, 3, 4, 5, 6, 7, 8, 9]] = rows.T
        sio.savemat(root / "delineation" / f"{subject}{STEM}.mat", {"bd_pts": dense})
    return root


def test_mshc_config_fits_tests_in_micrometres_and_predicts_a_vol_as_test_scores_it(tmp_path, shared_data, one_thread,
                                                                                    capsys):
    data = write_mshc_fixture(tmp_path / "mshc", shared_data / "oct" / "spectralis-circular-scan")
    args = ["--config", str(CONFIG), "--data.init_args.data_root", str(data), "--data.init_args.width", "768",
            "--data.init_args.column_step", "8", "--data.init_args.train_subjects", "[hc10]",
            "--data.init_args.val_subjects", "[hc09]", "--data.init_args.test_subjects", "[hc01]",
            "--model.model.init_args.width", "4", "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "1",
            "--trainer.check_val_every_n_epoch", "1", "--trainer.enable_progress_bar", "false",
            "--trainer.default_root_dir", str(tmp_path / "run")]
    main(["fit", *args])
    cli = SamplingArgmaxCLI(args=["test", *args, "--ckpt_path", "last"])
    assert "method samp_uni" in capsys.readouterr().out
    metrics = cli.trainer.callback_metrics
    assert metrics["test/num_samples"] == 1
    assert 0 < float(metrics["test/mad_um"]) < 500 and 0 <= float(metrics["test/order_violations"]) <= 1
    table = next((tmp_path / "run").rglob("oct_test_boundaries.md")).read_text()
    assert table.count("\n") == 12 and "| BM |" in table

    # the test subject's .vol through `predict --input`: the rows the evaluator scored, drawn as lines
    scored, ckpt = cli.model.last_outputs, next((tmp_path / "run").rglob("last.ckpt"))
    vol = data / "vol" / f"hc01{STEM}.vol"
    out = tmp_path / "out"
    main(["predict", "--ckpt_path", str(ckpt), "--input", str(vol), "--out", str(out), "--draw", "--no_progress"])
    (row,) = json.loads((out / "predictions.json").read_text())
    assert row["input"] == f"{vol}:b0" and row["bscan"] == 0
    points = np.asarray(row["keypoints"])  # (9 * 96, 2): (A-scan column, original row) per boundary and column
    assert np.array_equal(points[:, 0], np.tile(np.arange(0, 768, 8), 9))
    rows = scored["pred_grid"][0, :, 0].reshape(9, 96) + scored["row_offset"][0][None]  # what the evaluator scores
    np.testing.assert_allclose(points[:, 1].reshape(9, 96), rows, atol=1e-4)
    assert (out / "predictions.csv").read_text().startswith(
        "input,method,checkpoint_sha256,bscan,pixel_um,ILM@0_x,ILM@0_y,ILM@0_confidence,ILM@8_x")
    overlay = np.asarray(Image.open(out / "overlays" / f"{vol.name}_b0.png").convert("RGB"))
    assert overlay.shape == (496, 768, 3)
    bm = np.round(points[-96:]).astype(int)  # the last boundary (BM) is drawn in the 9th tab10 colour
    hits = [np.abs(overlay[y, x].astype(int) - (188, 189, 34)).max() <= 40 for x, y in bm if 0 <= y < 496]
    assert np.mean(hits) > 0.5
