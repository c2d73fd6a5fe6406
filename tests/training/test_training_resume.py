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


# ------------------------------------------------------------------ a resumed run against one never interrupted

TINY = [
    "--data.init_args.num_keypoints", "2", "--model.model.init_args.num_keypoints", "2",
    "--data.init_args.size", "32", "--data.init_args.train_size", "64", "--data.init_args.val_size", "8",
    "--data.init_args.test_size", "8", "--data.init_args.batch_size", "8", "--model.model.init_args.width", "4",
    "--method_args", '{"num_samples": 2}', "--model.milestones", "[1]", "--seed", "3",
    "--trainer.max_epochs", "2", "--checkpoint_every_n_steps", "3", "--trainer.logger", "false",
    "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
]


class _Killed(Exception):
    pass


@pytest.fixture
def recorded_steps(monkeypatch):
    """Records (step, batch indices, τ, learning rate) of every training step; `kill_at[0] = n` makes the step
    that starts at global step n raise, as a kill would stop the run (the last step checkpoint stays)."""
    from sampling_argmax.training.module import LocalizationModule

    steps, kill_at, original = [], [None], LocalizationModule.training_step

    def training_step(self, batch, batch_idx):
        if self.global_step == kill_at[0]:
            raise _Killed(f"killed at step {self.global_step}")
        steps.append((self.global_step, batch["index"].tolist(), self.method.temperature,
                      self.optimizers().param_groups[0]["lr"]))
        return original(self, batch, batch_idx)

    monkeypatch.setattr(LocalizationModule, "training_step", training_step)
    return steps, kill_at


def _weights(root: Path) -> dict:
    return torch.load(root / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)["state_dict"]


@pytest.mark.slow
@pytest.mark.parametrize("kill_at", [8, 13])  # at the epoch boundary (8 steps per epoch); mid-epoch 2
def test_a_resumed_run_equals_the_uninterrupted_one(tmp_path, recorded_steps, kill_at, one_thread, quiet):
    from sampling_argmax.cli import main

    steps, kill = recorded_steps
    main(["fit", *TINY, "--trainer.default_root_dir", str(tmp_path / "whole")])
    whole = {s[0]: s for s in steps}
    steps.clear()
    kill[0] = kill_at
    with pytest.raises(_Killed):
        main(["fit", *TINY, "--trainer.default_root_dir", str(tmp_path / "parts")])
    kill[0] = None
    resumed_from = torch.load(tmp_path / "parts" / "checkpoints" / "last.ckpt", weights_only=True)["global_step"]
    assert resumed_from == (8 if kill_at == 8 else 12)
    main(["fit", *TINY, "--trainer.default_root_dir", str(tmp_path / "parts"), "--resume", "true"])
    parts = {s[0]: s for s in steps}  # the resumed run's steps replace the killed run's
    assert sorted(parts) == sorted(whole) == list(range(16))
    # τ (1.94 in the 2nd epoch) and the learning rate (milestone after epoch 1) follow the epoch, also when the
    # run re-enters an epoch in its middle
    assert [(s[2], s[3]) for s in parts.values()] == [(whole[k][2], whole[k][3]) for k in parts]
    assert parts[15][2] == pytest.approx(1.94) and parts[15][3] == pytest.approx(2e-4)
    if kill_at == 8:  # resumed at an epoch boundary: the same batches, the same noise, the same weights
        assert all(parts[k][1] == whole[k][1] for k in whole)
        a, b = _weights(tmp_path / "whole"), _weights(tmp_path / "parts")
        assert all(torch.equal(a[k], b[k]) for k in a)
    else:  # mid-epoch: Lightning restarts the epoch's order from its start (docs/reliability.md)
        assert all(parts[k][1] == whole[k][1] for k in range(12))
        assert parts[12][1] == whole[8][1]
