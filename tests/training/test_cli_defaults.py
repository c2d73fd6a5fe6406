"""The CLI's built-in synthetic defaults must not leak into a task's YAML config."""

import importlib
from pathlib import Path

import yaml

from sampling_argmax.training.lightning_cli import SamplingArgmaxCLI

COCO_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "coco.yaml"


def test_builtin_defaults_apply_without_config():
    cli = SamplingArgmaxCLI(args=["--trainer.logger", "false"], run=False)
    assert type(cli.datamodule).__name__ == "SyntheticDataModule"
    assert cli.trainer.limit_train_batches == 8


def test_task_config_does_not_inherit_synthetic_defaults(shared_data):
    root = shared_data / "coco" / "coco-mini"
    cli = SamplingArgmaxCLI(
        args=["--config", str(COCO_CONFIG), "--data.data_root", str(root), "--trainer.logger", "false"],
        run=False,
    )
    assert cli.trainer.limit_train_batches == 1.0  # Lightning's default: whole epochs, not the synthetic 8 batches
    first_conv = next(cli.model.model.parameters())
    assert first_conv.shape[1] == 3  # RGB ResNet, not the synthetic 1-channel default


def _data_root(config: Path, shared_data: Path, empty: Path) -> list[str]:
    """Building a CLI only checks that the data folder exists: the shared sample, else an empty folder."""
    class_path = yaml.safe_load(config.read_text())["data"]["class_path"]
    module, name = class_path.rsplit(".", 1)
    folder = getattr(importlib.import_module(module), name).data_folder
    if name == "COCOFormatDataModule":  # your own data: K comes from the file, which must exist
        from writers import write_coco_kites

        return ["--data.init_args.train_ann_file", str(write_coco_kites(empty / "kites", num_images=1))]
    if name == "CSVLandmarkDataModule":
        from writers import write_landmark_csv

        return ["--data.init_args.train_csv", str(write_landmark_csv(empty / "csv", num_images=1))]
    if not folder or (shared_data / folder).is_dir():
        return []
    return ["--data.init_args.data_root", str(empty)]


REPO = Path(__file__).resolve().parents[2]
CONFIGS = sorted((REPO / "configs").rglob("*.yaml"))


def _stack(config: Path) -> list[Path]:
    """An overlay (first line ``# on top of: configs/a.yaml ...``) with the configs it completes, in order."""
    first = config.read_text().splitlines()[0]
    bases = first.removeprefix("# on top of:").split() if first.startswith("# on top of:") else []
    return [REPO / b for b in bases] + [config]


def test_every_task_config_keeps_resumable_checkpoints(tmp_path, shared_data):
    """A config's own ModelCheckpoint would replace the CLI's (last.ckpt every N steps in <root>/checkpoints),
    so `--resume` would find nothing and a killed run would restart from scratch."""
    from lightning.pytorch.callbacks import ModelCheckpoint

    assert CONFIGS, "no YAML configs found under configs/"
    for config in CONFIGS:
        stack = _stack(config)
        data = _data_root(stack[0], shared_data, tmp_path)
        cli = SamplingArgmaxCLI(
            args=[*(a for c in stack for a in ("--config", str(c))), *data, "--trainer.logger", "false",
                  "--trainer.default_root_dir", str(tmp_path)],
            run=False,
        )
        checkpoints = [c for c in cli.trainer.callbacks if isinstance(c, ModelCheckpoint)]
        assert any(c.dirpath == str(tmp_path / "checkpoints") and c._every_n_train_steps == 50 for c in checkpoints), (
            f"{config.name}: no step-interval last.ckpt in <root>/checkpoints"
        )
