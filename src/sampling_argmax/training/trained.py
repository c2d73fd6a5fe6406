"""A trained model's one home: load a checkpoint written by ``sampling-argmax fit``/``compare`` into its
:class:`~sampling_argmax.training.module.LocalizationModule` (model + method) and its data module.

The read-out is the module's :meth:`~sampling_argmax.training.module.LocalizationModule.read_out` (one
function, :func:`sampling_argmax.readout.read_out`): ``test``, ``predict``, export, the figures and the
experiments all call it.

Example::

    module, datamodule = load_trained(Path("runs/mtfl/samp_tri/checkpoints/last.ckpt"))
    out = module.eval().read_out(next(iter(datamodule.test_dataloader())), datamodule)
"""

from __future__ import annotations

from pathlib import Path

from lightning.pytorch import LightningDataModule
from lightning.pytorch.cli import instantiate_module

from sampling_argmax.training.checkpoints import read_checkpoint, rebuild
from sampling_argmax.training.lightning_cli import SamplingArgmaxCLI
from sampling_argmax.training.module import LocalizationModule

__all__ = ["load_trained"]


def load_trained(checkpoint: Path, config: Path | None = None):
    """(module, datamodule) of a checkpoint written by ``sampling-argmax fit`` or ``compare``."""
    state = read_checkpoint(checkpoint, "--ckpt_path")
    if "model" not in state.get("hyper_parameters", {}):
        raise ValueError(
            f"{checkpoint} does not record how its model was built (it was not written through the "
            "sampling-argmax CLI); load it in Python with LocalizationModule.load_from_checkpoint(path, model=..., "
            "method=...)"
        )
    module = rebuild(lambda: LocalizationModule.load_from_checkpoint(checkpoint, map_location="cpu"), checkpoint,
                     "the model and method")
    data_hparams = dict(state.get("datamodule_hyper_parameters", {}))
    if config is not None:
        cli = SamplingArgmaxCLI(args=["--config", str(config), "--trainer.logger", "false"], run=False)
        return module, cli.datamodule
    if "_class_path" not in data_hparams:
        raise ValueError(
            f"{checkpoint} does not record its datamodule; pass --config with the run's YAML "
            "(logs/version_N/config.yaml beside the checkpoints)"
        )
    data_hparams.pop("_instantiator", None)
    return module, rebuild(lambda: instantiate_module(LightningDataModule, data_hparams), checkpoint, "the data module")
