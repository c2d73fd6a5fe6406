"""`sampling-argmax fit` then `test` on an official-format MTFL folder with a testing.txt (built in tmp_path)."""

import cv2
import numpy as np
import pytest

from sampling_argmax.data.mtfl import MTFLDataset, read_annotations
from sampling_argmax.training.lightning_cli import SamplingArgmaxCLI

TINY = [
    "--model.model.class_path", "sampling_argmax.models.ResNetDeconv",
    "--model.model.init_args.depth", "18",
    "--model.model.init_args.num_keypoints", "5",
    "--model.model.init_args.deconv_channels", "16",
    "--model.model.init_args.num_deconv", "3",
    "--model.model.init_args.in_channels", "3",
    "--method", "samp_tri",
    "--model.evaluator", "sampling_argmax.metrics.landmarks.LandmarkEvaluator",
    "--data.class_path", "sampling_argmax.data.mtfl.MTFLDataModule",
    "--data.init_args.input_size", "64",
    "--data.init_args.heatmap_size", "16",
    "--data.init_args.batch_size", "8",
    "--data.init_args.num_workers", "0",
    "--data.init_args.val_size", "8",
    "--trainer.accelerator", "cpu",
    "--trainer.logger", "false",
    "--trainer.enable_progress_bar", "false",
    "--trainer.enable_model_summary", "false",
]


@pytest.fixture(scope="module")
def official_folder(shared_data, tmp_path_factory):
    """MTFL layout in tmp: training.txt (40 real faces, linked folders) + testing.txt with 6 AFLW-like faces.

    The test faces are real training images resized to 150x150 (the official test images' size),
    their landmarks scaled to match; paths in Windows style, CRLF, leading spaces, like the real files.
    """
    source = shared_data / "MTFL"
    if not (source / "training.txt").is_file():
        pytest.skip(f"MTFL sample absent: {source / 'training.txt'} not found (see shared/data/README.md)")
    root = tmp_path_factory.mktemp("mtfl_official")
    for folder in ("lfw_5590", "net_7876"):
        (root / folder).symlink_to(source / folder, target_is_directory=True)
    lines = (source / "training.txt").read_bytes().splitlines()
    (root / "training.txt").write_bytes(b"\r\n".join(lines[:20] + lines[-20:]) + b"\r\n")
    (root / "AFLW").mkdir()
    test_lines, expected = [], []
    for number, record in enumerate(read_annotations(source / "training.txt")[100:9000:1500]):
        image = cv2.imread(str(record.image))
        height, width = image.shape[:2]
        cv2.imwrite(str(root / "AFLW" / f"face_{number}.jpg"), cv2.resize(image, (150, 150), interpolation=cv2.INTER_AREA))
        scaled = (record.landmarks + 0.5) * [150 / width, 150 / height] - 0.5  # edges stay edges
        expected.append(scaled)
        values = " ".join(f"{v:.6f}" for v in [*scaled[:, 0], *scaled[:, 1]])
        test_lines.append(f" AFLW\\face_{number}.jpg {values} 1 2 2 3")
    (root / "testing.txt").write_bytes("\r\n".join(test_lines).encode() + b"\r\n")
    return root, np.array(expected)


@pytest.mark.slow
def test_fit_then_test_on_official_testing_txt(official_folder, tmp_path):
    root, expected = official_folder
    common = [*TINY, "--data.init_args.data_root", str(root), "--trainer.default_root_dir", str(tmp_path / "run")]
    SamplingArgmaxCLI(args=["fit", *common, "--trainer.max_epochs", "1", "--trainer.limit_val_batches", "0",
                            "--data.init_args.train_samples_per_epoch", "16"])
    checkpoint = tmp_path / "run" / "checkpoints" / "last.ckpt"
    assert checkpoint.is_file()
    cli = SamplingArgmaxCLI(args=["test", *common, "--data.init_args.test_split", "official",
                                  "--ckpt_path", str(checkpoint)])
    metrics = {k: float(v) for k, v in cli.trainer.callback_metrics.items()}
    assert metrics["test/num_samples"] == 6
    assert np.isfinite(metrics["test/rel_err"]) and metrics["test/abs_err"] > 0
    outputs = cli.model.last_outputs
    np.testing.assert_allclose(outputs["landmarks"], expected, atol=1e-3)  # read from testing.txt
    # predictions come back in the 150x150 test images' pixels (the read-out stays inside the map)
    assert outputs["pred"].min() >= -0.5 and outputs["pred"].max() <= 149.5
    per_face = np.linalg.norm(outputs["pred"] - expected, axis=-1).mean()
    assert metrics["test/abs_err"] == pytest.approx(per_face, rel=1e-4)


def test_evaluation_input_does_not_depend_on_labels(official_folder):
    root, _ = official_folder
    records = read_annotations(root / "testing.txt")
    moved = [type(r)(r.image, r.landmarks + 20.0, r.attributes, r.source) for r in records]
    a = MTFLDataset(records, 64, 16, train=False)[2]
    b = MTFLDataset(moved, 64, 16, train=False)[2]
    assert (a["image"] == b["image"]).all() and (a["to_original"] == b["to_original"]).all()
    assert not (a["target"] == b["target"]).all()
