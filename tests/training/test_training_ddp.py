"""The same fit command on two CPU processes (DDP, gloo): every validation sample counted exactly once.

The validation set (37) is not divisible by 2 x batch (8), so DistributedSampler pads it with
duplicates; the gathered, de-duplicated metrics must equal a single-process validation of the
checkpoint that the DDP run wrote.
"""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

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
    command = [sys.executable, "-m", "sampling_argmax.cli", *args, *COMMON,
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

# a BatchNorm-free model (one strided convolution: 32 x 32 images -> 16 x 16 maps) and soft (no noise). No bias:
# a map's softmax ignores a constant added to it, so the bias's gradient is 0 up to rounding, and Adam turns
# that rounding noise into steps of the learning rate's size (measured: 3 % apart after 4 steps)
TRAIN = [
    "--data.init_args.num_keypoints", "2", "--data.init_args.size", "32", "--data.init_args.train_size", "32",
    "--data.init_args.val_size", "6", "--data.init_args.test_size", "7",
    "--model.model.class_path", "torch.nn.Conv2d", "--model.model.init_args.in_channels", "1",
    "--model.model.init_args.out_channels", "2", "--model.model.init_args.kernel_size", "2",
    "--model.model.init_args.stride", "2", "--model.model.init_args.bias", "false", "--method", "soft",
    "--trainer.max_epochs", "1", "--trainer.limit_val_batches", "0", "--trainer.enable_progress_bar", "false",
    "--trainer.enable_model_summary", "false", "--trainer.accelerator", "cpu",
]
DDP = ["--trainer.devices", "2", "--trainer.strategy", "ddp"]


def cli(args: list[str], root: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "sampling_argmax.cli", *args,
                           "--trainer.default_root_dir", str(root)], capture_output=True, text=True, env=env,
                          timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    return done


def _rows(folder: Path) -> list[dict]:
    return [row for path in sorted(folder.rglob("predictions.json")) for row in json.loads(path.read_text())]


@pytest.mark.slow
def test_ddp_training_equals_one_process_of_the_global_batch_and_test_predict_cover_every_sample(
        tmp_path, one_thread, quiet):
    from sampling_argmax.cli import main

    # 2 processes x batch 4 against 1 process x batch 8: the same 8 samples per step (the single-process order
    # is DistributedSampler's, split between the ranks), the gradient of the same mean loss (DDP averages the
    # ranks' gradients; no BatchNorm, no noise), so the same weights up to float rounding
    cli(["fit", *TRAIN, *DDP, "--data.init_args.batch_size", "4"], tmp_path / "ddp")
    main(["fit", *TRAIN, "--data.init_args.batch_size", "8", "--trainer.default_root_dir", str(tmp_path / "one")])
    states = [torch.load(tmp_path / r / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
              for r in ("ddp", "one")]
    assert states[0]["global_step"] == states[1]["global_step"] == 4
    for key, value in states[1]["state_dict"].items():
        torch.testing.assert_close(states[0]["state_dict"][key], value, rtol=1e-5, atol=1e-6,
                                   msg=lambda m: f"{key}: {m} {states[0]['state_dict'][key].flatten()[:4]} {value.flatten()[:4]}")
    # the comparison is of trained weights: a batch order that differed by one sample changes them by far more
    main(["fit", *TRAIN, "--data.init_args.batch_size", "8", "--seed", "1",
          "--trainer.default_root_dir", str(tmp_path / "other")])
    other = torch.load(tmp_path / "other" / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    assert max(float((other[k] - v).abs().max()) for k, v in states[1]["state_dict"].items()) > 1e-3

    # test and predict on 2 processes: every test sample once (7 = 2 x 4 - 1: DistributedSampler pads one)
    ckpt = str(tmp_path / "ddp" / "checkpoints" / "last.ckpt")
    cli(["test", *TRAIN, *DDP, "--data.init_args.batch_size", "2", "--ckpt_path", ckpt], tmp_path / "t2")
    main(["test", *TRAIN, "--data.init_args.batch_size", "2", "--ckpt_path", ckpt,
          "--trainer.default_root_dir", str(tmp_path / "t1")])
    metrics = [val_metrics(root, "test/") for root in (tmp_path / "t2", tmp_path / "t1")]
    assert metrics[0]["test/num_samples"] == metrics[1]["test/num_samples"] == 7
    for key in ("test/mean_error", "test/pck"):
        assert metrics[0][key] == pytest.approx(metrics[1][key], rel=1e-5, abs=1e-6), key
    cli(["predict", *TRAIN, *DDP, "--data.init_args.batch_size", "2", "--ckpt_path", ckpt], tmp_path / "p2")
    main(["predict", *TRAIN, "--data.init_args.batch_size", "2", "--ckpt_path", ckpt,
          "--trainer.default_root_dir", str(tmp_path / "p1")])
    shards = sorted(p.parent.name for p in (tmp_path / "p2" / "predictions").rglob("predictions.json"))
    assert shards == ["rank0", "rank1"]  # each rank writes its own shard
    two, one = _rows(tmp_path / "p2" / "predictions"), {r["input"]: r for r in _rows(tmp_path / "p1" / "predictions")}
    assert len(one) == len(two) == 7 and {r["input"] for r in two} == set(one)  # predict pads nothing
    for row in two:
        np.testing.assert_allclose(row["keypoints"], one[row["input"]]["keypoints"], rtol=0, atol=1e-5)
