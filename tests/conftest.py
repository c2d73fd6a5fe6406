"""Shared test fixtures: the real data samples in ../shared/data (see its README.md)."""

import logging
import os
import warnings
from pathlib import Path

import pytest
import torch

SHARED_DATA = Path(os.environ.get("SAMPLING_ARGMAX_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
# data modules find their dataset under $SAMPLING_ARGMAX_DATA/<folder> (the task contract's one rule)
if SHARED_DATA.is_dir():
    os.environ.setdefault("SAMPLING_ARGMAX_DATA", str(SHARED_DATA))
# "auto" runs the chunked path in tests: the fused path's inductor build takes 30-70 s per shape on the 2-core
# CI machine (samples, gradients and fallback of the fused path: tests/ops/test_fused.py)
os.environ.setdefault("SAMPLING_ARGMAX_FUSED", "0")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Root of the real data samples; skips the test when the folder is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(
            f"real data samples not found at {SHARED_DATA}: put the shared data folder beside the repository "
            "(../shared/data) or set SAMPLING_ARGMAX_DATA"
        )
    return SHARED_DATA


@pytest.fixture
def one_thread():
    """One intra-op thread: the tests' small maps and models gain nothing from a second thread, and on the
    shared 2-core machine two threads made them 5-15x slower (measured on the COCO smoke fits)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def quiet():
    """Lightning's banners and warnings off: the CLI tests read the printed output."""
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def colored_fraction(path) -> float:
    """Fraction of a figure's pixels that are drawn in colour (HSV saturation > 0.3 and value > 0.2): the
    colour maps, keypoint markers and curves; a figure of empty axes, white with black text, scores 0."""
    import numpy as np
    from PIL import Image

    rgb = np.asarray(Image.open(path).convert("RGB"), dtype=np.float64) / 255
    value = rgb.max(-1)
    saturation = np.where(value > 0, (value - rgb.min(-1)) / np.maximum(value, 1e-12), 0)
    return float(((saturation > 0.3) & (value > 0.2)).mean())


@pytest.fixture
def drawn():
    """``drawn(path)``: the fraction of the figure's pixels drawn in colour (see `colored_fraction`)."""
    return colored_fraction
