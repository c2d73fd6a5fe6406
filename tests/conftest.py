"""Shared test fixtures: the real data samples in ../shared/data (see its README.md), and checkpoints trained once
per session for the inference tests (test_inference.py, test_export.py) and the point-set smoke tests."""

import logging
import os
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

#: pytester: tests of the suite's own switches (tests/data/test_validation.py)
pytest_plugins = ["pytester"]

SHARED_DATA = Path(os.environ.get("SAMPLING_ARGMAX_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
# data modules find their dataset under $SAMPLING_ARGMAX_DATA/<folder> (the task contract's one rule)
if SHARED_DATA.is_dir():
    os.environ.setdefault("SAMPLING_ARGMAX_DATA", str(SHARED_DATA))
# no SAMPLING_ARGMAX_FUSED here: "auto" runs in tests as it does for users -- eager chunks, then the native CPU
# kernel once a process has run enough cell-samples to pay for its ~2 s build (tests/ops/test_fused.py tests both
# paths against the reference, and the policy)


#: "1": a missing real data sample fails the test instead of skipping it (.ci/run sets it: CI has the samples).
REQUIRE_DATA_ENV = "SAMPLING_ARGMAX_REQUIRE_DATA"
#: Skip reasons that mean "a real data sample is missing" (the fixtures below and the tests' own sample checks).
_MISSING_SAMPLE = re.compile(r"real data samples not found|sample(s)? absent|fixtures absent|absent \(see shared/data")


def require_data() -> bool:
    return os.environ.get(REQUIRE_DATA_ENV, "0").strip().lower() not in ("", "0", "false", "no")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Root of the real data samples; skips the test when the folder is absent (fails it under
    SAMPLING_ARGMAX_REQUIRE_DATA=1, as in CI)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(
            f"real data samples not found at {SHARED_DATA}: put the shared data folder beside the repository "
            "(../shared/data) or set SAMPLING_ARGMAX_DATA"
        )
    return SHARED_DATA


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Under SAMPLING_ARGMAX_REQUIRE_DATA=1 a test skipped for a missing real data sample is a failure."""
    outcome = yield
    report = outcome.get_result()
    if report.skipped and require_data() and isinstance(report.longrepr, tuple):
        reason = str(report.longrepr[2])
        if _MISSING_SAMPLE.search(reason):
            report.outcome = "failed"
            report.longrepr = (f"{reason}\n[{REQUIRE_DATA_ENV}=1: the real data samples are required here (CI has "
                               "them); put them at ../shared/data or set SAMPLING_ARGMAX_DATA]")


@pytest.fixture
def one_thread():
    """One intra-op thread: the tests' small maps and models gain nothing from a second thread, and on the
    shared 2-core machine two threads made them 5-15x slower (measured on the COCO smoke fits)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def quiet():
    """Lightning's banners and warnings off: the CLI tests read the printed output."""
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


# ---------------------------------------------------------------------------------------------- trained runs
#: A tiny synthetic 2D run: 32 x 32 images, 2 landmarks, a 4-channel SmallHeatmapNet, one short epoch.
SYNTHETIC_TINY = [
    "--data.init_args.num_keypoints", "2", "--model.model.init_args.num_keypoints", "2",
    "--data.init_args.size", "32", "--data.init_args.train_size", "48", "--data.init_args.val_size", "4",
    "--data.init_args.test_size", "7", "--data.init_args.batch_size", "8",
    "--model.model.init_args.width", "4", "--trainer.max_epochs", "1", "--trainer.check_val_every_n_epoch", "1",
    "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
]

#: A tiny MTFL run: ResNet-18 + 3 deconvolutions of 16 channels, 64 x 64 input, 16 x 16 maps.
MTFL_TINY = [
    "--model.model.class_path", "sampling_argmax.models.ResNetDeconv",
    "--model.model.init_args.depth", "18", "--model.model.init_args.num_keypoints", "5",
    "--model.model.init_args.deconv_channels", "16", "--model.model.init_args.num_deconv", "3",
    "--model.model.init_args.in_channels", "3", "--method", "samp_gau",
    "--model.evaluator", "sampling_argmax.metrics.landmarks.LandmarkEvaluator",
    "--data.class_path", "sampling_argmax.data.mtfl.MTFLDataModule",
    "--data.init_args.input_size", "64", "--data.init_args.heatmap_size", "16",
    "--data.init_args.batch_size", "8", "--data.init_args.num_workers", "0", "--data.init_args.val_size", "8",
    "--trainer.accelerator", "cpu", "--trainer.logger", "false",
    "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
]


@pytest.fixture(scope="session")
def synthetic_run(tmp_path_factory):
    """(run folder, last.ckpt) of a tiny synthetic 2D samp_tri model trained for 6 steps."""
    from sampling_argmax.cli import main

    root = tmp_path_factory.mktemp("synthetic_run")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        main(["fit", *SYNTHETIC_TINY, "--trainer.logger", "false", "--trainer.default_root_dir", str(root)])
    torch.set_num_threads(threads)
    return root, root / "checkpoints" / "last.ckpt"


@pytest.fixture(scope="session")
def mtfl_run(shared_data, tmp_path_factory):
    """(MTFL folder of 40 real faces, run folder, last.ckpt): two training steps, enough to have real weights."""
    from sampling_argmax.training.lightning_cli import SamplingArgmaxCLI

    source = shared_data / "MTFL"
    if not (source / "training.txt").is_file():
        pytest.skip(f"MTFL sample absent: {source / 'training.txt'} not found (see shared/data/README.md)")
    data = tmp_path_factory.mktemp("mtfl_data")
    for folder in ("lfw_5590", "net_7876"):
        (data / folder).symlink_to(source / folder, target_is_directory=True)
    lines = (source / "training.txt").read_bytes().splitlines()
    (data / "training.txt").write_bytes(b"\r\n".join(lines[:20] + lines[-20:]) + b"\r\n")
    root = tmp_path_factory.mktemp("mtfl_run")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        SamplingArgmaxCLI(args=["fit", *MTFL_TINY, "--data.init_args.data_root", str(data),
                                "--trainer.default_root_dir", str(root), "--trainer.max_epochs", "1",
                                "--trainer.limit_val_batches", "0", "--data.init_args.train_samples_per_epoch", "16"])
    torch.set_num_threads(threads)
    return data, root, root / "checkpoints" / "last.ckpt"


@pytest.fixture(scope="session")
def synthetic_args():
    """The command-line arguments of the tiny synthetic run (for `test`/`predict` of its checkpoint)."""
    return list(SYNTHETIC_TINY)


@pytest.fixture(scope="session")
def mtfl_args():
    """The command-line arguments of the tiny MTFL run (add --data.init_args.data_root)."""
    return list(MTFL_TINY)


def raw_synthetic(split: str, index: int, size: int = 32, num_keypoints: int = 2) -> np.ndarray:
    """The renderer's image (about [0, 1]) of a split's sample, as a user would save it."""
    from sampling_argmax.data.synthetic import SyntheticLandmarks

    sample = SyntheticLandmarks(split, index + 1, dims=2, num_keypoints=num_keypoints, size=size)[index]
    return sample["image"][0].numpy() * 0.25 + 0.5


@pytest.fixture
def raw_synthetic_image():
    return raw_synthetic


@pytest.fixture
def airplane_sample_args(shared_data, tmp_path):
    """CLI arguments of a run on the repository's KeypointNet airplane sample (official splits, the clouds present;
    validated on its 2 official-test clouds), its folder in tmp_path; skips when the sample is absent."""
    root = shared_data / "keypointnet"
    if not (root / "airplane-sample" / "pcds").is_dir():
        pytest.skip("KeypointNet airplane sample absent (see shared/data/README.md)")
    return ["--data.init_args.data_root", str(root / "airplane-sample"),
            "--data.init_args.splits_dir", str(root / "splits"), "--data.init_args.missing_clouds", "skip",
            "--data.init_args.val_split", "test", "--trainer.default_root_dir", str(tmp_path),
            "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]


def colored_fraction(path) -> float:
    """Fraction of a figure's pixels that are drawn in colour (HSV saturation > 0.3 and value > 0.2): the
    colour maps, keypoint markers and curves; a figure of empty axes, white with black text, scores 0."""
    import numpy as np
    from PIL import Image

    rgb = np.asarray(Image.open(path).convert("RGB"), dtype=np.float64) / 255
    value = rgb.max(-1)
    saturation = np.where(value > 0, (value - rgb.min(-1)) / np.maximum(value, 1e-12), 0)
    return float(((saturation > 0.3) & (value > 0.2)).mean())


@pytest.fixture
def drawn():
    """``drawn(path)``: the fraction of the figure's pixels drawn in colour (see `colored_fraction`)."""
    return colored_fraction


@pytest.fixture
def exits(capsys):
    """``with exits(1, "message"):`` -- the block ends the command with that exit status and prints the message on
    stderr (a ``SystemExit`` whose code is a string exits with status 1: Python prints the string)."""
    from contextlib import contextmanager

    @contextmanager
    def check(status: int, message: str):
        with pytest.raises(SystemExit) as info:
            yield info
        code = info.value.code
        err = capsys.readouterr().err
        if isinstance(code, str):  # raise SystemExit("...") : the interpreter prints it and exits with 1
            assert status == 1 and message in code, (code, message)
        else:
            assert code == status, (code, status, err[-2000:])
            assert message in err, (message, err[-2000:])
        return info

    return check
