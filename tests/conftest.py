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
# no SAMPLING_ARGMAX_FUSED here: "auto" runs in tests as it does for users -- eager chunks, then the native CPU
# kernel once a process has run enough cell-samples to pay for its ~2 s build (tests/ops/test_fused.py tests both
# paths against the reference, and the policy)


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
