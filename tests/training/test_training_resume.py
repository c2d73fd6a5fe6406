"""A run killed with SIGKILL mid-epoch continues from its last step checkpoint with --resume."""

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

STEPS_PER_EPOCH = 60


def fit_command(root: Path) -> list[str]:
    return [
        sys.executable, "-m", "sampling_argmax.cli", "fit",
        "--data.init_args.num_keypoints", "2", "--model.model.init_args.num_keypoints", "2",
        "--data.init_args.size", "32", "--data.init_args.train_size", str(8 * STEPS_PER_EPOCH),
        "--data.init_args.val_size", "5", "--data.init_args.test_size", "5", "--data.init_args.batch_size", "8",
        "--model.model.init_args.width", "4", "--method_args", '{"num_samples": 2}',
        "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "1.0", "--trainer.log_every_n_steps", "1", "--trainer.check_val_every_n_epoch", "1",
        "--trainer.enable_progress_bar", "false", "--trainer.default_root_dir", str(root),
        "--checkpoint_every_n_steps", "5",
    ]


def checkpoint_step(path: Path) -> int:
    return torch.load(path, map_location="cpu", weights_only=True)["global_step"]


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_continues_and_completes(tmp_path):
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    last = tmp_path / "checkpoints" / "last.ckpt"
    log = open(tmp_path / "first.log", "w")
    process = subprocess.Popen(fit_command(tmp_path), stdout=log, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 300
    try:
        while not last.exists():
            assert process.poll() is None, (tmp_path / "first.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "no checkpoint within 300 s"
            time.sleep(0.1)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    killed_at = checkpoint_step(last)
    assert 5 <= killed_at < STEPS_PER_EPOCH, f"the kill should land mid-epoch, checkpoint at step {killed_at}"

    resumed = subprocess.run([*fit_command(tmp_path), "--resume", "true"], capture_output=True, text=True,
                             env=env, timeout=600)
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-3000:]
    assert "Restoring states from the checkpoint" in resumed.stdout + resumed.stderr
    final = torch.load(last, map_location="cpu", weights_only=True)
    assert final["global_step"] == STEPS_PER_EPOCH  # the epoch was finished, not started over
    # one "last" file, the newest: no stale last-v1.ckpt beside it after the resume
    assert [p.name for p in (tmp_path / "checkpoints").glob("last*.ckpt")] == ["last.ckpt"]
    # the resumed run's own log starts where the checkpoint left off
    logs = sorted((tmp_path / "logs").glob("version_*/csv/metrics.csv"))
    assert len(logs) == 2
    rows = list(csv.DictReader(open(logs[-1])))
    train_steps = [int(r["step"]) for r in rows if r.get("train/loss")]
    assert min(train_steps) >= killed_at
    assert any(r.get("val/num_samples") == "5.0" for r in rows)
