"""Issue 26, training side: one test per class of fault, each asserting the exit status and the message.

1. finished work is never overwritten (fit folders, compare report folders, resumes that contradict);
2. a run that went wrong does not exit 0 (exploding weights, NaN gradients, degenerate logits, NaN metrics);
3. a user's mistake on the command line is one line ``sampling-argmax <subcommand>: error: ...``, exit 1.

Property tests (hypothesis) cover the argument paths without training: method_args, resume contradictions,
the checkpoint-folder policy, device names and output paths.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sampling_argmax.cli import main
from tiny_runs import TINY


pytestmark = pytest.mark.usefixtures("one_thread", "quiet")  # tests/conftest.py


def run_cli(capsys, *argv: str) -> tuple[int, str]:
    """(exit status, stderr) of the command line, in this process."""
    try:
        main([str(a) for a in argv])
        code = 0
    except SystemExit as error:
        code = error.code
    return code, capsys.readouterr().err


def one_error_line(err: str, subcommand: str) -> str:
    """The one ``sampling-argmax <subcommand>: error: ...`` line; no traceback."""
    assert "Traceback" not in err, err[-2000:]
    lines = [line for line in err.splitlines() if ": error: " in line]
    assert len(lines) == 1 and lines[0].startswith(f"sampling-argmax {subcommand}: error: "), err[-2000:]
    return lines[0]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny synthetic samp_tri run of one epoch (8 steps): its folder."""
    root = tmp_path_factory.mktemp("trained") / "run"
    main(["fit", *TINY, "--trainer.default_root_dir", str(root), "--trainer.max_epochs", "1",
          "--trainer.logger", "false"])
    return root


def copy_run(trained: Path, tmp_path: Path) -> Path:
    root = tmp_path / "run"
    shutil.copytree(trained, root)
    return root


def contents(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.ckpt"))}


# ---------------------------------------------------------------------------------- 1. finished work is kept


def test_fit_never_replaces_the_checkpoints_of_an_earlier_run(trained, tmp_path, capsys):
    root = copy_run(trained, tmp_path)
    before = contents(root / "checkpoints")
    # another seed into the same folder, and a checkpoint of another folder to continue from: both refused
    for extra in (["--seed", "3"], ["--ckpt_path", str(trained / "checkpoints" / "epoch0.ckpt")]):
        code, err = run_cli(capsys, "fit", *TINY, "--trainer.default_root_dir", root, "--trainer.max_epochs", "1",
                            "--trainer.logger", "false", *extra)
        line = one_error_line(err, "fit")
        assert code == 1 and "already holds the checkpoints of an earlier run" in line
        assert "--resume true" in line and "--overwrite true" in line
        assert contents(root / "checkpoints") == before  # not one byte changed
    code, err = run_cli(capsys, "fit", *TINY, "--trainer.default_root_dir", root, "--resume", "true",
                        "--overwrite", "true")
    assert code == 1 and "choose one" in one_error_line(err, "fit")
    # asked for explicitly: the old checkpoints go (also one the new run would not write), a new run is trained
    shutil.copy(root / "checkpoints" / "last.ckpt", root / "checkpoints" / "epoch7.ckpt")
    code, _ = run_cli(capsys, "fit", *TINY, "--trainer.default_root_dir", root, "--trainer.max_epochs", "1",
                      "--trainer.logger", "false", "--seed", "3", "--overwrite", "true")
    assert code == 0 and contents(root / "checkpoints").keys() == before.keys()
    assert contents(root / "checkpoints") != before


def test_a_resume_that_contradicts_the_checkpoint_names_both_values(trained, tmp_path, capsys):
    root = copy_run(trained, tmp_path)
    before = contents(root / "checkpoints")
    resume = ["fit", *TINY, "--trainer.default_root_dir", root, "--resume", "true", "--trainer.max_epochs", "1",
              "--trainer.logger", "false"]
    for extra, expected in (
        (["--method", "soft"], "--method: the checkpoint has SamplingArgmaxMethod(basis='triangular'"),
        (["--data.init_args.size", "48"], "--data.init_args.size: the checkpoint has 32, this command 48"),
        (["--model.lr", "0.1"], "--model.lr: the checkpoint has 0.002, this command 0.1"),
        (["--model.model.init_args.width", "8"], "--model.model.init_args.width: the checkpoint has 4, this command 8"),
    ):
        code, err = run_cli(capsys, *resume, *extra)
        line = one_error_line(err, "fit")
        assert code == 1 and "cannot resume" in line and expected in line, line
    assert "this command SoftArgmaxMethod(" in run_cli(capsys, *resume, "--method", "soft")[1]
    # settings that do not change the run may differ; the run is already at max_epochs: nothing to do
    code, err = run_cli(capsys, *resume, "--data.init_args.num_workers", "0", "--model.max_logit_range", "500")
    assert code == 0, err[-2000:]
    assert contents(root / "checkpoints").keys() == before.keys()


def test_compare_keeps_the_runs_already_in_its_folder(tmp_path, capsys, experiments_collect):
    collect = experiments_collect.collect

    out = tmp_path / "report"
    common = ["--out", str(out), "--num_show", "2", *TINY, "--trainer.max_epochs", "1"]
    main(["compare", "--methods", "soft", *common])
    main(["compare", "--methods", "samp_tri", *common])
    table = (out / "table.md").read_text()
    assert "| metric | soft | samp_tri |" in table and "soft: 0; samp_tri: 0" in table
    runs = (out / "runs.csv").read_text().splitlines()
    assert len(runs) == 3 and {r.split(",")[0] for r in runs[1:]} == {"soft", "samp_tri"}
    for figure in ("maps.png", "predictions.png", "calibration.png"):
        assert (out / figure).is_file()
    # experiments/collect_runs.py is the same function: the same table
    assert collect(out) in table
    # --resume with a data argument that contradicts a run's checkpoint
    capsys.readouterr()
    code, err = run_cli(capsys, "compare", "--methods", "soft", "--resume", *common, "--data.init_args.size", "48")
    assert code == 1 and "--data.init_args.size: the checkpoint has 32, this command 48" in one_error_line(err, "compare")


@pytest.fixture
def experiments_collect():
    """``experiments/collect_runs.py`` as a module (experiments/ is not a package)."""
    import importlib.util

    path = Path(__file__).resolve().parents[2] / "experiments" / "collect_runs.py"
    spec = importlib.util.spec_from_file_location("experiments_collect", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_compare_refuses_a_folder_that_mixes_tasks(tmp_path):
    from sampling_argmax.training.compare import collect_report

    for method, task in (("soft", "synthetic2d"), ("samp_tri", "mtfl")):
        folder = tmp_path / "runs" / method / "seed0"
        folder.mkdir(parents=True)
        (folder / "result.json").write_text(json.dumps({"method": method, "seed": 0, "mean_error": 1.0, "task": task,
                                                         "split": "test split"}))
    with pytest.raises(ValueError, match=r"mixes runs of different tasks: 'mtfl' .*samp_tri.* and 'synthetic2d'"):
        collect_report(tmp_path)


# ---------------------------------------------------------------------------------- 2. a run that went wrong fails


def test_a_learning_rate_that_blows_up_the_weights_exits_1_naming_the_step_and_the_cause(tmp_path, capsys):
    # the loss of samp_tri is bounded: it stayed 0.65 while the weights reached 4.5e29, and the run exited 0
    code, err = run_cli(capsys, "fit", *TINY, "--method", "samp_tri", "--model.lr", "1e6", "--trainer.max_epochs", "2",
                        "--trainer.default_root_dir", tmp_path, "--trainer.logger", "false")
    line = one_error_line(err, "fit")
    assert code == 1 and "training step 1:" in line and "past max_weight_growth=1000" in line
    assert "--model.lr 1000000.0" in line and "(DivergedError)" in line
    assert not list((tmp_path / "checkpoints").glob("*.ckpt"))  # nothing of the broken model was saved


class _Explode(L.Callback):
    """Multiplies the last layer's weights by 1e5 after step 5, as one huge update would."""

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step == 5:
            with torch.no_grad():
                pl_module.model.final.weight.mul_(1e5)


class _NanGradient(L.Callback):
    def on_after_backward(self, trainer, pl_module):
        if trainer.global_step == 3:
            pl_module.model.final.bias.grad.fill_(float("nan"))


def _cli(tmp_path: Path, *extra: str):
    from sampling_argmax.training.lightning_cli import SamplingArgmaxCLI

    return SamplingArgmaxCLI(args=[*TINY, "--trainer.default_root_dir", str(tmp_path), "--trainer.max_epochs", "2",
                                   "--checkpoint_every_n_steps", "2", "--trainer.logger", "false", *extra], run=False)


def test_an_explosion_mid_run_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    from sampling_argmax.training.module import DivergedError

    cli = _cli(tmp_path)
    cli.trainer.callbacks.insert(0, _Explode())
    with pytest.raises(DivergedError, match=r"training step 5: the norm of model.final.weight grew .* past "
                                            r"max_weight_growth=1000.*last checkpoint written before is kept"):
        cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    state = torch.load(tmp_path / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert state["global_step"] == 4
    assert float(state["state_dict"]["model.final.weight"].abs().max()) < 10


def test_a_nan_gradient_stops_before_the_step_is_taken(tmp_path):
    from sampling_argmax.training.module import DivergedError

    cli = _cli(tmp_path)
    cli.trainer.callbacks.insert(0, _NanGradient())
    with pytest.raises(DivergedError, match=r"training step 3: the gradients of model.final.bias hold NaN or inf; "
                                            r"the step was not taken"):
        cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    assert torch.isfinite(cli.model.model.final.bias).all()


def test_degenerate_logits_stop_training_at_the_stated_limit(tmp_path, capsys):
    code, err = run_cli(capsys, "fit", *TINY, "--model.max_logit_range", "1.5", "--trainer.max_epochs", "1",
                        "--trainer.default_root_dir", tmp_path, "--trainer.logger", "false")
    line = one_error_line(err, "fit")
    assert code == 1 and "training step 1: the model's logits hold a range of" in line
    assert "past max_logit_range=1.5" in line and "--model.max_logit_range" in line
    with pytest.raises(ValueError, match="max_logit_range=1 must be a number > 1"):
        from sampling_argmax.training.divergence import DivergenceGuard

        DivergenceGuard(max_logit_range=1)


def test_evaluating_a_diverged_checkpoint_fails_and_an_undefined_metric_says_why(trained, tmp_path, capsys):
    state = torch.load(trained / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    blown = dict(state, state_dict=dict(state["state_dict"]))
    blown["state_dict"]["model.final.weight"] = state["state_dict"]["model.final.weight"] * 1e6
    torch.save(blown, tmp_path / "blown.ckpt")
    code, err = run_cli(capsys, "test", *TINY, "--trainer.default_root_dir", tmp_path / "t", "--ckpt_path",
                        tmp_path / "blown.ckpt", "--trainer.logger", "false")
    line = one_error_line(err, "test")
    assert code == 1 and "test step" in line and "diverged in training" in line
    # uniform maps (a zeroed last layer): every confidence is the same, the calibration (a correlation) is undefined
    flat = dict(state, state_dict=dict(state["state_dict"]))
    flat["state_dict"]["model.final.weight"] = torch.zeros_like(state["state_dict"]["model.final.weight"])
    flat["state_dict"]["model.final.bias"] = torch.zeros_like(state["state_dict"]["model.final.bias"])
    torch.save(flat, tmp_path / "flat.ckpt")
    try:
        main(["test", *TINY, "--trainer.default_root_dir", str(tmp_path / "t"), "--ckpt_path",
              str(tmp_path / "flat.ckpt"), "--trainer.logger", "false"])
    except SystemExit as error:
        pytest.fail(f"exit {error.code}: {capsys.readouterr().err[-1500:]}")
    assert "test/calibration is undefined: every instance has the same confidence" in capsys.readouterr().out


def test_a_table_never_shows_a_silent_nan():
    from sampling_argmax.training.report import format_markdown, summarize
    from sampling_argmax.training.undefined import undefined_metrics

    reason = "every instance has the same confidence (0.25), so its correlation with the error is undefined"
    runs = [{"method": "soft", "seed": 0, "calibration": 0.5, "mean_error": 1.0},
            {"method": "soft", "seed": 1, "calibration": math.nan, "mean_error": 2.0,
             "undefined": {"calibration": reason}},
            {"method": "samp_tri", "seed": 0, "calibration": math.nan, "mean_error": 3.0}]
    markdown = format_markdown(summarize(runs, ["soft", "samp_tri"], ["calibration", "mean_error"]), ["soft", "samp_tri"])
    assert "| calibration | 0.500 (1 of 2 runs; others undefined [1]) | undefined [2] |" in markdown
    assert f"[1] undefined: {reason}" in markdown and "[2] undefined: NaN in the run's result without a recorded" \
        in markdown and "| mean_error | 1.500 ± 0.707 | 3.000 |" in markdown
    outputs = {"confidence": np.full((4, 2), 0.25), "pred_grid": np.random.default_rng(0).random((4, 2, 2)),
               "target": np.zeros((4, 2, 2)), "target_weight": np.ones((4, 2))}
    assert "same confidence (0.25)" in undefined_metrics({"calibration": math.nan}, outputs, "test")["calibration"]
    with pytest.raises(ValueError, match="test/mean_error is nan although the predictions"):
        undefined_metrics({"mean_error": math.nan}, outputs, "test")
    with pytest.raises(ValueError, match="test/calibration is inf"):
        undefined_metrics({"calibration": math.inf}, outputs, "test")


# ---------------------------------------------------------------------------------- 3. one clear line, exit 1


def _meta_checkpoint(trained: Path, path: Path) -> Path:
    state = torch.load(trained / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    state["state_dict"] = {k: torch.empty(v.shape, device="meta") if v.is_floating_point() else v
                           for k, v in state["state_dict"].items()}
    torch.save(state, path)
    return path


def test_user_mistakes_are_one_line_and_exit_1(trained, tmp_path, capsys):
    ckpt = trained / "checkpoints" / "last.ckpt"
    meta = _meta_checkpoint(trained, tmp_path / "meta.ckpt")
    (tmp_path / "a_file").write_text("x")
    image = tmp_path / "image.npy"
    np.save(image, np.zeros((32, 32), np.float32))
    evaluate = ["test", *TINY, "--trainer.default_root_dir", tmp_path / "t", "--trainer.logger", "false"]
    fit = ["fit", *TINY, "--trainer.default_root_dir", tmp_path / "f", "--trainer.logger", "false"]
    cases = [
        ([*evaluate, "--ckpt_path", meta], "holds tensors without data (on the 'meta' device"),
        (["predict", "--ckpt_path", meta, "--input", image, "--out", tmp_path / "p"], "without data (on the 'meta'"),
        (["visualize", "--checkpoint", meta, "--out", tmp_path / "v"], "without data (on the 'meta' device"),
        ([*evaluate, "--ckpt_path", "/proc/self/status"], "is a file of the kernel (/proc, /sys), not a checkpoint"),
        ([*evaluate, "--ckpt_path", "/dev/null"], "is not a regular file (a device, pipe or socket)"),
        (["export", "--ckpt_path", ckpt, "--format", "torchscript", "--out", tmp_path / "a_file" / "m.pt"],
         "a_file is a file, not a folder"),
        (["export", "--ckpt_path", ckpt, "--format", "torchscript", "--out", "/proc/m.pt"], "/proc/m.pt cannot be"),
        (["predict", "--ckpt_path", ckpt, "--input", image, "--out", tmp_path / "a_file" / "p"], "is a file, not a "),
        (["compare", "--methods", "soft", "--out", "/proc/report", *TINY], "--out /proc/report: the folder cannot be"),
        ([*fit, "--method_args", '{"soft": {"bogus": 1}}'],
         "as it applies to soft: SoftArgmaxMethod ('soft') has no argument(s) ['bogus']"),
        ([*fit, "--method", "soft", "--method_args", '{"gumbel": "gamma"}'],
         "as it applies to samp_uni: gumbel must be one of ('paper', 'authors'), got 'gamma'"),
        ([*fit, "--method_args", '{"samp_gau": {"gumbel": "gamma"}}'], "as it applies to samp_gau: gumbel must be"),
    ]
    if not torch.cuda.is_available():
        cases += [
            ([*fit, "--trainer.accelerator", "gpu"], "the trainer options cannot work on this machine"),
            ([*evaluate, "--ckpt_path", ckpt, "--trainer.accelerator", "cuda"], "available accelerators: cpu"),
            (["predict", "--ckpt_path", ckpt, "--input", image, "--device", "cuda", "--out", tmp_path / "p"],
             "--device cuda: this machine has no usable CUDA GPU"),
        ]
    for argv, expected in cases:
        code, err = run_cli(capsys, *argv)
        line = one_error_line(err, argv[0])
        assert code == 1 and expected in line, (argv, line)


@pytest.mark.slow
def test_predict_lists_an_unusable_point_cloud_and_predicts_the_others(tmp_path, capsys):
    config = Path(__file__).resolve().parents[2] / "configs" / "synthetic_points.yaml"
    root = tmp_path / "run"
    main(["fit", "--config", str(config), "--trainer.max_steps", "1", "--trainer.limit_val_batches", "0",
          "--data.init_args.train_size", "8", "--data.init_args.num_points", "128",
          "--model.model.init_args.sa_npoints", "[32, 8]", "--trainer.logger", "false",
          "--trainer.default_root_dir", str(root), "--trainer.enable_progress_bar", "false",
          "--trainer.enable_model_summary", "false"])
    clouds = tmp_path / "clouds"
    clouds.mkdir()
    rng = np.random.default_rng(0)
    for name in ("a", "b", "bad", "c"):
        cloud = rng.normal(size=(128, 3)).astype(np.float32)
        if name == "bad":
            cloud[5, 0] = 1e30  # finite in float32; the squared distances of the ball query overflow
        np.save(clouds / f"{name}.npy", cloud)
    capsys.readouterr()
    code, err = run_cli(capsys, "predict", "--ckpt_path", root / "checkpoints" / "last.ckpt", "--input", clouds,
                        "--out", tmp_path / "out", "--no_progress")
    assert code == 1 and "1 of 4 inputs failed (the others were written)" in err and "Traceback" not in err
    rows = json.loads((tmp_path / "out" / "predictions.json").read_text())
    assert sorted(Path(r["input"]).name for r in rows) == ["a.npy", "b.npy", "c.npy"]
    failures = (tmp_path / "out" / "failures.csv").read_text().splitlines()
    # refused where it is read (the shared coordinate rule), or, for a value the rule lets through, by the model
    assert len(failures) == 2 and failures[1].startswith(f"{clouds / 'bad.npy'},")
    assert "1e+30" in failures[1]


# ---------------------------------------------------------------------------------- properties of the argument paths

_METHOD_ARG_VALUES = {
    "num_samples": st.integers(-2, 40), "gumbel": st.sampled_from(["paper", "authors", "gamma", ""]),
    "p": st.sampled_from([1, 2, 3, 0]), "confidence": st.sampled_from(["peak", "mass", "max", "x"]),
    "regularizer_weight": st.one_of(st.floats(-1, 1, allow_subnormal=False), st.just(math.nan)), "bogus": st.integers(),
}
_keys = st.sampled_from(sorted(_METHOD_ARG_VALUES))
_flat_args = st.dictionaries(_keys, st.none()).flatmap(
    lambda d: st.fixed_dictionaries({k: _METHOD_ARG_VALUES[k] for k in d}))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(method=st.sampled_from(["soft", "soft_dr", "samp_uni", "samp_gau"]), plain=_flat_args,
       nested=st.dictionaries(st.sampled_from(["soft", "samp_tri", "not_a_method"]), _flat_args, max_size=2))
def test_method_args_are_accepted_whole_or_refused_naming_the_key(method, plain, nested):
    from sampling_argmax.training.lightning_cli import task_method_config

    args = {**plain, **nested}
    try:
        config = task_method_config(method, args)
    except ValueError as error:  # never another exception type, never silently ignored
        message = str(error)
        assert "--method_args" in message or "must" in message or "valid ones" in message, message
        return
    assert "bogus" not in json.dumps(args) and "not_a_method" not in args and "gamma" not in json.dumps(args)
    assert config["class_path"].startswith("sampling_argmax.methods.")


_leaves = st.one_of(st.integers(-3, 3), st.floats(allow_nan=False, allow_subnormal=False), st.text(max_size=3), st.booleans(), st.none())
_configs = st.recursive(_leaves, lambda inner: st.dictionaries(st.text("abc", min_size=1, max_size=2), inner,
                                                                max_size=3), max_leaves=8)


@settings(max_examples=60, deadline=None)
@given(config=st.dictionaries(st.text("abc", min_size=1, max_size=2), _configs, min_size=1, max_size=4),
       data=st.data())
def test_contradictions_name_exactly_the_changed_setting(config, data):
    from sampling_argmax.training.checkpoints import contradictions

    assert contradictions(config, json.loads(json.dumps(config))) == []
    path, node = [], config
    while isinstance(node, dict) and node:
        key = data.draw(st.sampled_from(sorted(node)))
        path.append(key)
        node = node[key]
    changed = json.loads(json.dumps(config))
    target = changed
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = new = ["changed", node]
    assert contradictions(config, changed) == [(".".join(path), node, new)]
    assert contradictions(config, changed, may_change={path[-1]}) == []


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(files=st.lists(st.sampled_from(["last.ckpt", "epoch3.ckpt", "latest-step.ckpt", "notes.txt"]), unique=True),
       resume_here=st.booleans(), overwrite=st.booleans())
def test_the_checkpoint_folder_policy_never_deletes_by_itself(tmp_path_factory, files, resume_here, overwrite):
    from sampling_argmax.training.checkpoints import (
        FinishedRunError,
        check_checkpoint_folder,
    )

    folder = tmp_path_factory.mktemp("policy") / "checkpoints"
    folder.mkdir()
    for name in files:
        (folder / name).write_text(name)
    ckpts = sorted(folder.glob("*.ckpt"))
    resume_from = ckpts[0] if resume_here and ckpts else None
    try:
        replaced = check_checkpoint_folder(folder, resume_from, overwrite)
    except FinishedRunError as error:
        assert ckpts and resume_from is None and not overwrite
        assert "--resume true" in str(error) and "--overwrite true" in str(error)
    except ValueError as error:
        assert resume_from is not None and overwrite and "choose one" in str(error)
    else:
        assert replaced == (ckpts if overwrite and resume_from is None else [])
    assert sorted(p.name for p in folder.iterdir()) == sorted(files)  # the check itself never deletes


@settings(max_examples=40, deadline=None)
@given(name=st.one_of(st.sampled_from(["cpu", "cuda", "cuda:0", "cuda:7", "mps", "gpu", "tpu", "cuda:x", "", "cpu:0"]),
                      st.text(max_size=8)))
def test_device_names_are_a_device_or_a_clear_error(name):
    from sampling_argmax._devices import check_device

    try:
        device = check_device(name)
    except ValueError as error:
        assert str(error).startswith(f"--device {name!r}" if "not a device name" in str(error) else f"--device {name}")
        return
    assert device.type == "cpu" or (device.type == "cuda" and torch.cuda.is_available()) or device.type == "mps"


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(parts=st.lists(st.sampled_from(["a", "b", "file", "dir"]), min_size=1, max_size=4))
def test_output_paths_are_checked_before_any_work(tmp_path_factory, parts):
    from sampling_argmax.training.checkpoints import (
        check_output_file,
        check_output_folder,
    )

    base = tmp_path_factory.mktemp("out")
    (base / "file").write_text("x")
    (base / "dir").mkdir()
    path = base.joinpath(*parts)
    blocked = any(base.joinpath(*parts[:i + 1]).is_file() for i in range(len(parts) - 1))
    try:
        check_output_folder(path, "--out")
    except (NotADirectoryError, PermissionError) as error:
        assert (blocked or path.is_file()) and str(error).startswith(f"--out {path}")
    else:
        assert path.is_dir() and not blocked
    file_path = base.joinpath(*parts, "model.pt")
    try:
        check_output_file(file_path, "--out")
    except (NotADirectoryError, PermissionError, IsADirectoryError, ValueError) as error:
        assert "--out" in str(error) and not file_path.parent.is_dir()
    else:
        assert file_path.parent.is_dir() and not file_path.exists()  # the probe leaves nothing behind
