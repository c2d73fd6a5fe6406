"""Training toolkit: the LightningModule, the synthetic DataModule, the CLI and reports."""

from sampling_argmax.training.module import LocalizationModule
from sampling_argmax.training.synthetic import SyntheticDataModule

__all__ = ["LocalizationModule", "SyntheticDataModule"]
