"""Training toolkit: the generic LightningModule, the CLI, comparisons and reports."""

from sampling_argmax.training.module import LocalizationModule

__all__ = ["LocalizationModule"]
