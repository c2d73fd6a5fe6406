"""The sampling-argmax command line, run in-process on tiny synthetic settings."""

from pathlib import Path

import pytest
import torch
import yaml

from sampling_argmax.data.synthetic import INPUT_KEY
from sampling_argmax.cli import main
from sampling_argmax.training.lightning_cli import DEFAULTS, SamplingArgmaxCLI

REPO = Path(__file__).resolve().parents[2]
TINY = [
    "--data.init_args.num_keypoints", "2", "--model.model.init_args.num_keypoints", "2",
    "--data.init_args.size", "32", "--data.init_args.train_size", "24", "--data.init_args.val_size", "11",
    "--data.init_args.test_size", "7", "--data.init_args.batch_size", "8",
    "--model.model.init_args.width", "4", "--trainer.max_epochs", "1", "--trainer.check_val_every_n_epoch", "1",
]
TINY_FIT = [*TINY, "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]




pytestmark = pytest.mark.usefixtures("one_thread", "quiet")  # tests/conftest.py


def test_synthetic_yaml_spells_out_the_builtin_defaults():
    cli = SamplingArgmaxCLI(args=["--trainer.logger", "false"], run=False)
    from_yaml = SamplingArgmaxCLI(args=["--config", str(REPO / "configs" / "synthetic.yaml"),
                                        "--trainer.logger", "false"], run=False)
    for key in DEFAULTS:
        if key != "data":
            assert from_yaml.config[key] == cli.config[key], key
    assert type(cli.datamodule).__name__ == "SyntheticDataModule" and cli.model.method.name == "samp_tri"
    effective = [(d.dims, d.num_keypoints, d.size, d.batch_size, {k: len(v) for k, v in d.splits.items()})
                 for d in (cli.datamodule, from_yaml.datamodule)]
    assert effective[0] == effective[1]


@pytest.mark.parametrize("name", ["synthetic_1d.yaml", "synthetic_3d.yaml"])
def test_other_synthetic_configs_build_matching_model_and_data(name):
    cli = SamplingArgmaxCLI(args=["--config", str(REPO / "configs" / name), "--trainer.logger", "false"], run=False)
    data = cli.datamodule
    sample = data.splits["val"][0]
    logits = cli.model(sample[INPUT_KEY[data.dims]][None])
    assert logits.shape[1] == data.num_keypoints and logits.dim() == data.dims + 2


def test_fit_is_reproducible_from_seed_and_test_reads_last(tmp_path, capsys):
    roots = [tmp_path / "a", tmp_path / "b"]
    for root in roots:
        main(["fit", *TINY_FIT, "--seed", "7", "--trainer.default_root_dir", str(root)])
    states = [torch.load(r / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"] for r in roots]
    assert states[0].keys() == states[1].keys()
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])
    config = yaml.safe_load(next((roots[0] / "logs").glob("version_*/config.yaml")).read_text())
    assert config["seed_everything"] == 7
    assert (next((roots[0] / "logs").glob("version_*/csv/metrics.csv"))).is_file()
    main(["test", *TINY_FIT, "--trainer.default_root_dir", str(roots[0]), "--ckpt_path", "last"])
    assert "test/mean_error" in capsys.readouterr().out
    # a checkpoint file alone rebuilds model and method (hyper-parameters recorded by the CLI), and says so
    ckpt = str(roots[0] / "checkpoints" / "last.ckpt")
    main(["validate", *TINY_FIT, "--trainer.default_root_dir", str(tmp_path / "c"), "--ckpt_path", ckpt])
    out = capsys.readouterr().out
    assert "val/num_samples" in out and f"validate: weights {ckpt}" in out and "method samp_tri" in out


def test_default_run_folder_is_task_and_method(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cli = SamplingArgmaxCLI(args=[*TINY_FIT, "--method", "soft"], run=False)
    assert Path(cli.trainer.default_root_dir) == Path("runs") / "synthetic2d" / "soft"
    assert cli.model.method.name == "soft"
    checkpoints = [c for c in cli.trainer.callbacks if type(c).__name__ == "ModelCheckpoint"]
    assert {Path(c.dirpath) for c in checkpoints} == {tmp_path / "runs" / "synthetic2d" / "soft" / "checkpoints"}
    assert any(c._every_n_train_steps == 50 for c in checkpoints)


def test_compare_writes_table_and_figures_then_visualize(tmp_path, capsys, drawn):
    from sampling_argmax.training.compare import compare_main
    from sampling_argmax.training.report import visualize_main

    out = tmp_path / "report"
    rows = compare_main(["--methods", "soft", "samp_uni", "--seeds", "0", "1", "--out", str(out),
                         "--num_show", "2", *TINY])
    assert [(r["method"], r["seed"]) for r in rows] == [("soft", 0), ("samp_uni", 0), ("soft", 1), ("samp_uni", 1)]
    table = (out / "table.md").read_text()
    assert "| metric | soft | samp_uni |" in table and "±" in table and "train time" in table
    assert (out / "table.csv").read_text().startswith("metric,soft_mean,soft_std,samp_uni_mean")
    assert len((out / "runs.csv").read_text().strip().splitlines()) == 5
    fractions = {name: drawn(out / name) for name in ("maps.png", "predictions.png", "calibration.png")}
    assert fractions["maps.png"] > 0.01 and fractions["predictions.png"] > 0.001, fractions
    assert fractions["calibration.png"] > 0.001, fractions
    assert "| mean error (px) ↓ |" in capsys.readouterr().out
    checkpoints = [str(out / "runs" / m / "seed0" / "checkpoints" / "last.ckpt") for m in ("soft", "samp_uni")]
    with pytest.warns(FutureWarning, match="--checkpoint is deprecated; use --ckpt_path"):
        one = visualize_main(["--checkpoint", checkpoints[0], "--out", str(tmp_path / "one"), "--num_samples", "3"])
    two = visualize_main(["--ckpt_path", *checkpoints, "--out", str(tmp_path / "two"), "--num_samples", "3"])
    # maps: heat maps over gray images; predictions: the keypoint markers only
    assert all(drawn(p) > (0.01 if p.name == "maps.png" else 0.001) for p in one + two), \
        {str(p): drawn(p) for p in one + two}
    from PIL import Image

    assert Image.open(two[0]).size[1] > Image.open(one[0]).size[1]  # one row per checkpoint


def test_compare_resume_retests_finished_runs_and_keeps_their_train_time(tmp_path):
    from sampling_argmax.training.compare import compare_main

    args = ["--methods", "soft", "--seeds", "0", "--out", str(tmp_path / "report"), "--num_show", "0", *TINY]
    first = compare_main(args)[0]
    again = compare_main([*args, "--resume"])[0]
    assert again["steps"] == first["steps"] and again["mean_error"] == pytest.approx(first["mean_error"])
    assert again["fit_time_s"] == pytest.approx(first["fit_time_s"])  # not the near-zero time of the no-op fit


def test_compare_and_visualize_reject_bad_arguments(tmp_path, exits):
    from sampling_argmax.training.compare import compare_main
    from sampling_argmax.training.report import visualize_main

    with exits(2, "unknown method(s) ['hard_argmax']"):  # argparse's usage errors: status 2
        compare_main(["--methods", "hard_argmax"])
    with exits(2, f"--config {tmp_path / 'missing.yaml'} does not exist"):
        compare_main(["--config", str(tmp_path / "missing.yaml")])
    with pytest.raises(FileNotFoundError, match=r"--ckpt_path .*none.ckpt does not exist"):
        visualize_main(["--ckpt_path", str(tmp_path / "none.ckpt")])


def test_mixed_precision_fit_gives_finite_metrics(tmp_path, capsys):
    main(["fit", *TINY_FIT, "--trainer.precision", "bf16-mixed", "--trainer.default_root_dir", str(tmp_path)])
    state = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert all(torch.isfinite(v).all() for v in state["state_dict"].values() if v.is_floating_point())
    metrics = next((tmp_path / "logs").glob("version_*/csv/metrics.csv")).read_text()
    assert "val/mean_error" in metrics and "nan" not in metrics


def test_pretrained_flag_loads_a_local_backbone_state(tmp_path):
    from torchvision.models import resnet18

    reference = resnet18(weights=None)
    path = tmp_path / "resnet18-local.pth"
    torch.save(reference.state_dict(), path)
    # the data folder only has to exist: building the CLI reads no annotation file
    config = [str(REPO / "configs" / "mtfl" / "cpu.yaml"), "--data.init_args.data_root", str(tmp_path)]
    cli = SamplingArgmaxCLI(args=["--config", *config, "--pretrained", str(path), "--trainer.logger", "false"], run=False)
    assert torch.equal(cli.model.model.backbone[0].weight, reference.conv1.weight)
    fresh = SamplingArgmaxCLI(args=["--config", *config, "--trainer.logger", "false"], run=False)
    assert not torch.equal(fresh.model.model.backbone[0].weight, reference.conv1.weight)
    with pytest.raises(ValueError, match="SmallHeatmapNet has no pretrained backbone"):
        SamplingArgmaxCLI(args=["--pretrained", str(path), "--trainer.logger", "false"], run=False)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        SamplingArgmaxCLI(args=["--config", *config, "--pretrained", str(tmp_path / "missing.pth"),
                                "--trainer.logger", "false"], run=False)


def test_model_backbone_and_pretrained_shorthands(tmp_path):
    from torchvision.models import resnet34

    from sampling_argmax.training.lightning_cli import SamplingArgmaxCLI

    path = tmp_path / "r34.pth"
    reference = resnet34(weights=None)
    torch.save(reference.state_dict(), path)
    cli = SamplingArgmaxCLI(args=["--config", str(Path(__file__).resolve().parents[2] / "configs/mtfl/cpu.yaml"),
                                  "--data.init_args.data_root", str(tmp_path), "--model.backbone", "resnet34", "--model.pretrained", str(path),
                                  "--trainer.logger", "false"], run=False)
    assert torch.equal(cli.model.model.backbone[7][2].conv2.weight, reference.layer4[2].conv2.weight)
    with pytest.raises(ValueError, match="--model.backbone resnet18: the model .*SmallHeatmapNet has no backbone"):
        SamplingArgmaxCLI(args=["--model.backbone", "resnet18", "--trainer.logger", "false"], run=False)


def test_predict_help_shows_the_options_for_your_own_files(capsys):
    with pytest.raises(SystemExit) as done:
        main(["predict", "--help"])
    text = capsys.readouterr().out
    assert done.value.code == 0
    assert all(option in text for option in ("--input", "--ckpt_path", "--boxes", "--out", "--draw"))
    assert "predict --config C --help" in text  # where the test-split options are
