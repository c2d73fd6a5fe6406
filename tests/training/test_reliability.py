"""Nothing lost, nothing silent: checkpoints, run folders, checkpoints given to evaluate, data/model pairing.

Faults are made for real: files truncated or replaced, processes started and killed, broken statistics
written into a live model.
"""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import lightning as L
import pytest
import torch

from sampling_argmax.cli import main
from tiny_runs import TINY
from sampling_argmax.training.compare import compare_main
from sampling_argmax.training.lightning_cli import SamplingArgmaxCLI



pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def step_of(path: Path) -> int:
    return torch.load(path, map_location="cpu", weights_only=True)["global_step"]


def fit(root: Path, *extra: str) -> None:
    main(["fit", *TINY, "--trainer.default_root_dir", str(root), *extra])


# ---------------------------------------------------------------------------------- nothing lost


def test_final_steps_are_saved_whatever_the_validation_cadence(tmp_path):
    # 7 epochs x 8 steps with validation every 5 epochs and step checkpoints every 50: the old CLI's
    # last.ckpt held step 50 of 56
    fit(tmp_path / "a", "--trainer.max_epochs", "7", "--trainer.check_val_every_n_epoch", "5")
    assert step_of(tmp_path / "a" / "checkpoints" / "last.ckpt") == 56
    # max_steps that ends mid-epoch
    fit(tmp_path / "b", "--trainer.max_epochs", "3", "--trainer.max_steps", "13", "--checkpoint_every_n_steps", "5")
    assert step_of(tmp_path / "b" / "checkpoints" / "last.ckpt") == 13
    assert [p.name for p in (tmp_path / "b" / "checkpoints").glob("last*.ckpt")] == ["last.ckpt"]


def test_compare_never_deletes_a_finished_run(tmp_path, exits):
    args = ["--methods", "soft", "--seeds", "0", "--out", str(tmp_path), "--num_show", "0", *TINY,
            "--trainer.max_epochs", "1"]
    compare_main(args)
    last = tmp_path / "runs" / "soft" / "seed0" / "checkpoints" / "last.ckpt"
    before = last.stat().st_mtime_ns
    with exits(1, "already have checkpoints"):
        compare_main(args)
    assert last.stat().st_mtime_ns == before  # untouched: nothing was deleted or retrained
    compare_main([*args, "--overwrite"])
    assert last.is_file() and last.stat().st_mtime_ns != before  # trained again, as asked
    with exits(2, "--resume continues existing runs and --overwrite deletes them; choose one"):
        compare_main([*args, "--overwrite", "--resume"])


def _fit_process(root: Path, log: Path, *extra: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "sampling_argmax.cli", "fit", *TINY,
               "--trainer.default_root_dir", str(root), *extra]
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(command, stdout=open(log, "w"), stderr=subprocess.STDOUT, env=env)


@pytest.mark.slow
def test_a_second_run_on_a_busy_folder_fails_fast_naming_the_holder(tmp_path):
    root = tmp_path / "run"
    first = _fit_process(root, tmp_path / "first.log", "--trainer.max_epochs", "1000",
                         "--data.init_args.train_size", "4096", "--trainer.limit_train_batches", "1.0")
    try:
        deadline = time.monotonic() + 120
        while not ((root / "run.lock").is_file() and (root / "run.lock").read_text()):
            assert first.poll() is None, (tmp_path / "first.log").read_text()[-2000:]
            assert time.monotonic() < deadline, "the first run never took its lock"
            time.sleep(0.1)
        start = time.monotonic()
        second = subprocess.run(
            [sys.executable, "-m", "sampling_argmax.cli", "fit", *TINY, "--trainer.default_root_dir",
             str(root), "--resume", "true"],
            capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=120,
        )
        assert second.returncode == 1 and time.monotonic() - start < 60
        assert "in use by another run" in second.stderr and f'"pid": {first.pid}' in second.stderr
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    # the OS released the killed holder's lock: its own --resume (same data; a resume that contradicts the
    # checkpoint is refused) is not blocked
    fit(root, "--trainer.max_epochs", "1", "--resume", "true", "--data.init_args.train_size", "4096")
    assert (root / "checkpoints" / "last.ckpt").is_file()


class _BreakBatchNorm(L.Callback):
    """Writes inf into the BatchNorm statistics at step 5, as an overflowing batch would."""

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step == 5:
            for module in pl_module.modules():
                if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                    module.running_var.fill_(float("inf"))


def test_a_diverged_model_is_never_saved_and_the_run_fails(tmp_path):
    cli = SamplingArgmaxCLI(args=[*TINY, "--trainer.default_root_dir", str(tmp_path), "--trainer.max_epochs", "2",
                                  "--checkpoint_every_n_steps", "2"], run=False)
    cli.trainer.callbacks.append(_BreakBatchNorm())
    from sampling_argmax.training.module import DivergedError

    with pytest.raises(DivergedError, match=r"running_var'\] hold NaN or inf"):
        cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    state = torch.load(tmp_path / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert state["global_step"] == 4  # the last good one
    assert all(torch.isfinite(v).all() for v in state["state_dict"].values() if v.is_floating_point())


def test_a_learning_rate_that_explodes_stops_with_a_clear_error(tmp_path, exits):
    with exits(1, "The limit is --model.max_weight_growth (DivergedError)"):  # the divergence guard, step named
        fit(tmp_path, "--trainer.max_epochs", "3", "--model.lr", "1e12")


# ---------------------------------------------------------------------------------- nothing silent


def test_evaluating_needs_a_checkpoint_and_refuses_contradictions(tmp_path, capsys, exits):
    with exits(1, "needs --ckpt_path"):
        main(["test", *TINY, "--trainer.default_root_dir", str(tmp_path)])
    with exits(1, "last.ckpt does not exist"):
        main(["test", *TINY, "--trainer.default_root_dir", str(tmp_path), "--ckpt_path", "last"])
    # trained with a method that is not the CLI's default (samp_tri), evaluated without --method
    fit(tmp_path, "--trainer.max_epochs", "1", "--method", "soft_vr", "--method_args", '{"regularizer_weight": 0.5}')
    ckpt = str(tmp_path / "checkpoints" / "last.ckpt")
    with exits(1, f"contradicts the checkpoint {ckpt}, trained with SoftArgmaxMethod("):  # the default, given
        main(["validate", *TINY, "--method", "samp_tri", "--trainer.default_root_dir", str(tmp_path / "v"),
              "--ckpt_path", ckpt])
    from sampling_argmax.training.module import LocalizationModule

    trained = LocalizationModule.load_from_checkpoint(ckpt, map_location="cpu").method
    assert trained.name == "soft_vr" and trained.regularizer_weight == 0.5
    for command in ("test", "validate"):
        cli = SamplingArgmaxCLI(args=[command, *TINY, "--trainer.default_root_dir", str(tmp_path / command),
                                      "--ckpt_path", ckpt])
        assert f"{command}: weights {ckpt} (epoch 1, step 8), method soft_vr" in capsys.readouterr().out
        assert repr(cli.model.method) == repr(trained)  # the method evaluated is the recorded one, arguments too


@pytest.mark.parametrize("content", [b"", b"not a checkpoint\n", "truncated"])
def test_files_that_are_not_checkpoints_are_clear_errors(tmp_path, capsys, content):
    fit(tmp_path, "--trainer.max_epochs", "1")
    bad = tmp_path / "bad.ckpt"
    if content == "truncated":
        good = (tmp_path / "checkpoints" / "last.ckpt").read_bytes()
        content = good[: len(good) // 2]
    bad.write_bytes(content)
    for command in (["test", *TINY, "--trainer.default_root_dir", str(tmp_path / "t")],
                    ["fit", *TINY, "--trainer.default_root_dir", str(tmp_path / "f")]):
        with pytest.raises(SystemExit) as info:
            main([*command, "--ckpt_path", str(bad)])
        assert info.value.code == 1
        err = capsys.readouterr().err
        assert str(bad) in err and ("empty" in err or "not a readable checkpoint" in err)


def test_a_checkpoint_of_another_task_or_architecture_is_refused(tmp_path, capsys, exits):
    fit(tmp_path, "--trainer.max_epochs", "1")
    ckpt = str(tmp_path / "checkpoints" / "last.ckpt")
    one_d = ["--data.init_args.dims", "1", "--model.model.init_args.dims", "1", "--data.init_args.size", "64"]
    # the recorded settings name both values; the weights' shapes are the last check (not every model records them)
    with exits(1, "--model.model.init_args.dims: the checkpoint has 2, this command 1"):
        main(["fit", *TINY, *one_d, "--trainer.default_root_dir", str(tmp_path / "x"), "--ckpt_path", ckpt])
    state = torch.load(ckpt, weights_only=True)
    del state["hyper_parameters"], state["datamodule_hyper_parameters"]  # a checkpoint that records nothing
    torch.save(state, tmp_path / "bare.ckpt")
    with pytest.raises(SystemExit):
        main(["fit", *TINY, *one_d, "--trainer.default_root_dir", str(tmp_path / "y"), "--ckpt_path",
              str(tmp_path / "bare.ckpt")])
    assert "holds another architecture" in capsys.readouterr().err


@pytest.mark.parametrize("mismatch,match", [
    (["--model.model.init_args.num_keypoints", "3"], r"outputs maps of shape \(B, 3, 16, 16\).*num_keypoints=2"),
    (["--model.model.init_args.in_channels", "3"], r"cannot take SyntheticDataModule's input of shape \(B, 1, 32, 32\)"),
    (["--model.model.init_args.dims", "1"], r"cannot take SyntheticDataModule's input"),
])
def test_data_and_model_that_disagree_fail_before_the_first_step(tmp_path, capsys, mismatch, match):
    with pytest.raises(SystemExit) as info:
        fit(tmp_path, "--trainer.max_epochs", "1", *mismatch)
    assert info.value.code == 1
    assert re.search(match, capsys.readouterr().err)
    assert not (tmp_path / "checkpoints" / "last.ckpt").exists()  # not one step was taken


def test_output_folders_that_are_files_are_refused_at_start(tmp_path, exits):
    (tmp_path / "file").write_text("x")
    with exits(1, "is a file"):
        fit(tmp_path / "file")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "checkpoints").write_text("x")
    with exits(1, "checkpoints is a file"):
        fit(tmp_path / "run")
    with pytest.raises(NotADirectoryError, match="--out"):
        compare_main(["--methods", "soft", "--out", str(tmp_path / "file" / "report"), *TINY])


def test_pretrained_file_that_is_not_weights_is_a_clear_error(tmp_path):
    from sampling_argmax.models import ResNetDeconv

    (tmp_path / "notes.pth").write_text("hello")
    with pytest.raises(ValueError, match="not a readable checkpoint or state dict"):
        ResNetDeconv(depth=18, num_keypoints=2, pretrained=str(tmp_path / "notes.pth"))
    from torchvision.models import resnet34

    torch.save(resnet34(weights=None).state_dict(), tmp_path / "r34.pth")
    with pytest.raises(ValueError, match="does not match backbone .resnet18."):
        ResNetDeconv(depth=18, num_keypoints=2, pretrained=str(tmp_path / "r34.pth"))


def test_command_line_values_that_cannot_work_are_refused(tmp_path, exits):
    for bad, message in ((["--methods", "soft", "soft"], "--methods lists ['soft', 'soft'] with repeats"),
                         (["--seeds", "1", "1"], "--seeds lists [1, 1] with repeats"),
                         (["--num_show", "-1"], "--num_show -1 must be >= 0")):
        with exits(2, message):  # argparse's usage errors: status 2
            compare_main([*bad, "--out", str(tmp_path)])
    with exits(1, "checkpoint_every_n_steps=-5"):
        main(["fit", *TINY, "--checkpoint_every_n_steps", "-5", "--trainer.default_root_dir", str(tmp_path)])
    with exits(1, "is a folder; give the .ckpt file"):
        main(["test", *TINY, "--trainer.default_root_dir", str(tmp_path), "--ckpt_path", str(tmp_path)])
    with exits(1, "--method 'hard_argmax' is not one of"):
        main(["fit", *TINY, "--method", "hard_argmax", "--trainer.default_root_dir", str(tmp_path)])
    with exits(1, "'num_sample' is not an argument of any method"):
        main(["fit", *TINY, "--method_args", '{"num_sample": 3}', "--trainer.default_root_dir", str(tmp_path)])


def test_a_checkpoint_naming_classes_that_no_longer_exist_is_a_clear_error(tmp_path, capsys):
    from sampling_argmax.training.report import visualize_main

    fit(tmp_path, "--trainer.max_epochs", "1")
    state = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    state["datamodule_hyper_parameters"]["_class_path"] = "sampling_argmax.training.SyntheticDataModule"  # moved away
    state["hyper_parameters"]["model"]["class_path"] = "sampling_argmax.models.GoneNet"
    torch.save(state, tmp_path / "old.ckpt")
    with pytest.raises(ValueError, match=r"cannot rebuild the model and method recorded in .*old\.ckpt"):
        visualize_main(["--ckpt_path", str(tmp_path / "old.ckpt"), "--out", str(tmp_path / "fig")])
