"""``sampling-argmax`` command line: ``fit | validate | test | predict`` (LightningCLI), ``compare``, ``visualize``.

Defaults (no ``--config``) train :class:`SmallHeatmapNet` with sampling-argmax (triangular basis) on
the synthetic 2D task. Runs live in ``<default_root_dir>`` = ``runs/<task>/<method>`` unless set:
``checkpoints/`` (``last.ckpt`` every ``--checkpoint_every_n_steps`` steps and every epoch) and
``logs/version_N/`` (TensorBoard + CSV + the resolved ``config.yaml``).

Examples::

    sampling-argmax fit                                   # synthetic 2D, samp_tri
    sampling-argmax fit --config configs/synthetic.yaml --model.method.init_args.basis gaussian
    sampling-argmax fit --resume                          # continue from runs/.../checkpoints/last.ckpt
    sampling-argmax test --ckpt_path last
    sampling-argmax fit --trainer.devices 2 --trainer.strategy ddp --trainer.accelerator cpu
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

from sampling_argmax.training.module import LocalizationModule

__all__ = ["SamplingArgmaxCLI", "main", "DEFAULTS"]

#: Built-in defaults: the synthetic 2D task (configs/synthetic.yaml spells out the same values).
#: They apply only when no ``--config`` is given, so a task's YAML never inherits the synthetic
#: task's trainer limits or model (e.g. 8 batches an epoch, 1 input channel).
DEFAULTS: dict[str, Any] = {
    "data": {"class_path": "sampling_argmax.training.SyntheticDataModule", "init_args": {}},
    "model.model": {
        "class_path": "sampling_argmax.models.SmallHeatmapNet",
        "init_args": {"num_keypoints": 3, "dims": 2, "in_channels": 1, "width": 16},
    },
    "model.method": {"class_path": "sampling_argmax.methods.SamplingArgmaxMethod", "init_args": {}},
    "model.lr": 2e-3,
    "model.milestones": [24],
    # 30 short epochs of 8 batches: the paper's per-epoch τ schedule anneals over the run as on MTFL
    "trainer.max_epochs": 30,
    "trainer.limit_train_batches": 8,
    "trainer.check_val_every_n_epoch": 5,
    "trainer.log_every_n_steps": 8,
    "trainer.num_sanity_val_steps": 0,
}


def default_root_dir(datamodule: Any, method: Any) -> str:
    """``runs/<task>/<method>``: one folder per task and method, so ``--resume`` finds its own run."""
    task = getattr(datamodule, "task", None) or type(datamodule).__name__.removesuffix("DataModule").lower()
    return str(Path("runs") / task / getattr(method, "name", type(method).__name__))


class SamplingArgmaxCLI(LightningCLI):
    """LightningCLI with the package defaults, ``--seed``, ``--resume`` and crash-safe checkpoints."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        argv = kwargs.get("args")  # always passed by keyword here
        argv = sys.argv[1:] if argv is None else argv
        self.builtin_defaults = not (
            isinstance(argv, dict)
            or any(str(a) in ("--config", "-c") or str(a).startswith(("--config=", "-c=")) for a in argv)
        )
        kwargs.setdefault("model_class", LocalizationModule)
        kwargs.setdefault("subclass_mode_data", True)
        kwargs.setdefault("seed_everything_default", 0)
        kwargs.setdefault("auto_configure_optimizers", False)  # Adam + MultiStepLR live in the module
        kwargs.setdefault("save_config_kwargs", {"overwrite": True})
        super().__init__(*args, **kwargs)

    def add_default_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_argument(
            "--seed_everything", "--seed", type=bool | int, default=self.seed_everything_default,
            help="Seed of seed_everything (model init, sampling noise, shuffling); True = random.",
        )

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_argument(
            "--resume", type=bool, default=False,
            help="fit: continue from <default_root_dir>/checkpoints/last.ckpt when it exists (same as --ckpt_path last).",
        )
        parser.add_argument(
            "--checkpoint_every_n_steps", type=int, default=50,
            help="Also write last.ckpt every N training steps, so a killed run loses at most N steps (0 = epochs only).",
        )
        parser.add_argument(
            "--pretrained", type=str | None, default=None,
            help="Local torchvision ResNet state dict for the backbone (the paper's ImageNet init), e.g. "
            "resnet18-f37072fd.pth; same as --model.model.init_args.pretrained. Nothing is ever downloaded.",
        )
        if self.builtin_defaults:
            parser.set_defaults(DEFAULTS)

    def before_instantiate_classes(self) -> None:
        config = self.config[self.subcommand] if self.subcommand else self.config
        path = config.get("pretrained")
        if path is None:
            return
        model = config["model.model"]
        if "pretrained" not in (model.get("init_args") or {}):
            raise ValueError(
                f"--pretrained {path}: the model {model.get('class_path')} has no pretrained backbone; use "
                "sampling_argmax.models.ResNetDeconv (as in configs/mtfl and configs/coco) or drop --pretrained"
            )
        model.init_args.pretrained = path

    def instantiate_trainer(self, **kwargs: Any) -> Any:
        config = self._get(self.config_init, "trainer", default={})
        root = config.get("default_root_dir") or default_root_dir(self.datamodule, self.model.method)
        kwargs["default_root_dir"] = root
        if config.get("logger") in (None, True):
            tensorboard = TensorBoardLogger(root, name="logs")
            # the CSV file goes inside the TensorBoard run folder: one version number per run
            kwargs["logger"] = [tensorboard, CSVLogger(tensorboard.log_dir, name="", version="csv")]
        callbacks = list(config.get("callbacks") or [])
        if config.get("enable_checkpointing", True) is not False and not any(
            isinstance(c, ModelCheckpoint) for c in callbacks
        ):
            callbacks += self._checkpoints(Path(root) / "checkpoints")
        kwargs["callbacks"] = callbacks
        return super().instantiate_trainer(**kwargs)

    def _checkpoints(self, dirpath: Path) -> list[ModelCheckpoint]:
        every = self._get(self.config, "checkpoint_every_n_steps", 50)
        if every < 0:
            raise ValueError(f"--checkpoint_every_n_steps={every} must be >= 0 (0 = only at epoch ends)")
        # a fixed dirpath (not the logger's version folder) lets "last" be found by the next run
        epochs = ModelCheckpoint(dirpath=dirpath, filename="epoch{epoch}", save_last=True,
                                 auto_insert_metric_name=False)
        if every == 0:
            return [epochs]
        steps = ModelCheckpoint(dirpath=dirpath, filename="latest-step", every_n_train_steps=every,
                                save_last=True, enable_version_counter=False)
        return [epochs, steps]

    def before_fit(self) -> None:
        options = self.config_init["fit"]
        if options.get("resume") and options.get("ckpt_path") is None:
            options["ckpt_path"] = "last"


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``sampling-argmax`` console script."""
    # Denormal floats make CPU kernels 5-10x slower; regularized maps (e.g. Soft w/ V.R.) drive some
    # activations there mid-training. Flushing them to zero changes no result that matters.
    torch.set_flush_denormal(True)
    command = sys.argv[1:] if argv is None else list(argv)
    if command and command[0] == "compare":
        from sampling_argmax.training.compare import compare_main

        compare_main(command[1:])
    elif command and command[0] == "visualize":
        from sampling_argmax.training.report import visualize_main

        visualize_main(command[1:])
    else:
        SamplingArgmaxCLI(
            args=argv,
            parser_kwargs={
                "description": "Train and evaluate localization methods. Other subcommands: "
                "'sampling-argmax compare --help' (the six methods side by side), "
                "'sampling-argmax visualize --help' (probability-map figures of a checkpoint)."
            },
        )


if __name__ == "__main__":
    main()
