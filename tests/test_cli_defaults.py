"""The CLI's built-in synthetic defaults must not leak into a task's YAML config."""

from pathlib import Path

from sampling_argmax.training.cli import SamplingArgmaxCLI

COCO_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "coco" / "soft.yaml"


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
