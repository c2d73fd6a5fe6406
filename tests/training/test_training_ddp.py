"""The same fit command on two CPU processes (DDP, gloo): every validation sample counted exactly once.

The validation set (37) is not divisible by 2 x batch (8), so DistributedSampler pads it with
duplicates; the gathered, de-duplicated metrics must equal a single-process validation of the
checkpoint that the DDP run wrote.
"""

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

VAL_SIZE = 37
COMMON = [
    "--data.init_args.num_keypoints", "2", "--model.model.init_args.num_keypoints", "2",
    "--data.init_args.size", "32", "--data.init_args.train_size", "32", "--data.init_args.val_size", str(VAL_SIZE),
    "--data.init_args.batch_size", "4", "--model.model.init_args.width", "4",
    "--method_args", '{"num_samples": 2}', "--trainer.enable_progress_bar", "false",
    "--trainer.check_val_every_n_epoch", "1",
]


def run(args: list[str], root: Path) -> None:
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "sampling_argmax.training.cli", *args, *COMMON,
               "--trainer.default_root_dir", str(root)]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]


def val_metrics(root: Path, prefix: str = "val/") -> dict[str, float]:
    logs = sorted((root / "logs").glob("version_*/csv/metrics.csv"))
    rows = [r for r in csv.DictReader(open(logs[-1])) if r.get(f"{prefix}num_samples")]
    return {k: float(v) for k, v in rows[-1].items() if k.startswith(prefix) and v}


@pytest.mark.slow
def test_ddp_two_cpu_processes_evaluate_every_sample_once_and_match_one_process(tmp_path):
    run(["fit", "--trainer.max_epochs", "1", "--trainer.devices", "2", "--trainer.strategy", "ddp",
         "--trainer.accelerator", "cpu"], tmp_path / "ddp")
    ddp = val_metrics(tmp_path / "ddp")
    assert ddp["val/num_samples"] == VAL_SIZE

    checkpoint = tmp_path / "ddp" / "checkpoints" / "last.ckpt"
    assert checkpoint.is_file()
    run(["validate", "--trainer.devices", "1", "--ckpt_path", str(checkpoint)], tmp_path / "single")
    single = val_metrics(tmp_path / "single")
    assert single["val/num_samples"] == VAL_SIZE
    for key in ("val/mean_error", "val/pck", "val/calibration"):
        assert ddp[key] == pytest.approx(single[key], rel=1e-5, abs=1e-6), key


# ------------------------------------------------------------------ training, test and predict under DDP

TRAIN = [
    "--data.init_args.num_keypoints", "2", "--model.model.init_args.num_keypoints", "2",
    "--data.init_args.size", "32", "--data.init_args.train_size", "32", "--data.init_args.val_size", "6",
    "--data.init_args.test_size", "7", "--model.model.init_args.width", "4", "--method_args", '{"num_samples": 2}',
    "--trainer.max_epochs", "1", "--trainer.limit_val_batches", "0", "--trainer.enable_progress_bar", "false",
    "--trainer.accelerator", "cpu",
]
DDP = ["--trainer.devices", "2", "--trainer.strategy", "ddp"]


def cli(args: list[str], root: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "sampling_argmax.training.cli", *args,
                           "--trainer.default_root_dir", str(root)], capture_output=True, text=True, env=env,
                          timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    return done


@pytest.mark.slow
def test_ddp_test_covers_every_sample_once_and_matches_one_process(tmp_path):
    # (Training under DDP is not compared with one process of the global batch: SmallHeatmapNet's BatchNorm
    # normalizes each process's half batch, and SyncBatchNorm, which would make them equal, is GPU-only.)
    import json

    import torch

    cli(["fit", *TRAIN, *DDP, "--data.init_args.batch_size", "4"], tmp_path / "ddp")
    state = torch.load(tmp_path / "ddp" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert state["global_step"] == 4  # 32 samples / (2 processes x 4)

    # test on 2 processes: every test sample once (7 = 2 x 4 - 1: DistributedSampler pads one)
    ckpt = str(tmp_path / "ddp" / "checkpoints" / "last.ckpt")
    for devices, root in ((DDP, tmp_path / "t2"), (["--trainer.devices", "1"], tmp_path / "t1")):
        cli(["test", *TRAIN, *devices, "--data.init_args.batch_size", "4", "--ckpt_path", ckpt], root)
    metrics = [val_metrics(root, "test/") for root in (tmp_path / "t2", tmp_path / "t1")]
    assert metrics[0]["test/num_samples"] == metrics[1]["test/num_samples"] == 7
    for key in ("test/mean_error", "test/pck"):
        assert metrics[0][key] == pytest.approx(metrics[1][key], rel=1e-5, abs=1e-6), key
