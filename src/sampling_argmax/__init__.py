"""Sampling-argmax (Li et al., NeurIPS 2021) and the soft-argmax family for localization."""

__version__ = "0.1.0"
