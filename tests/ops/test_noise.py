"""Counter-based noise: the tensor hashes equal their definitions, the uniforms are uniform and independent
across cells, samples, keypoints and seeds (millions of draws), and the operator's noise is a function of the
seed alone."""

import numpy as np
import pytest
import torch
from scipy import stats

from sampling_argmax import _noise, sampling_argmax

MASK32, MASK64 = 2**32 - 1, 2**64 - 1
CPU = torch.device("cpu")


def _splitmix64(z):  # Steele, Lea & Flood's output mix, on Python integers
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9 & MASK64
    z = (z ^ (z >> 27)) * 0x94D049BB133111EB & MASK64
    return z ^ (z >> 31)


def _lowbias32(x):  # Wellons' lowbias32, on Python integers
    x = (x ^ (x >> 16)) * 0x7FEB352D & MASK32
    x = (x ^ (x >> 15)) * 0x846CA68B & MASK32
    return x ^ (x >> 16)


def _signed(value, bits):
    return value - (1 << bits) if value >= 1 << (bits - 1) else value


def test_tensor_hashes_equal_their_definitions_on_python_integers():
    rng = np.random.default_rng(0)
    words64 = [0, 1, 2**63 - 1, 2**63, MASK64] + [int(v) for v in rng.integers(0, 2**63, 200, dtype=np.uint64) * 2 + 1]
    got = _noise.splitmix64(torch.tensor([_signed(v, 64) for v in words64], dtype=torch.int64))
    assert [int(v) & MASK64 for v in got] == [_splitmix64(v) for v in words64]
    words32 = [0, 1, 2**31 - 1, 2**31, MASK32] + [int(v) for v in rng.integers(0, 2**32, 200)]
    got = _noise.lowbias32_(torch.tensor([_signed(v, 32) for v in words32], dtype=torch.int32))
    assert [int(v) & MASK32 for v in got] == [_lowbias32(v) for v in words32]


def test_uniforms_follow_the_documented_construction():
    seed, count = -1234567890123456789, 50
    keys = _noise.sample_keys(seed, 2, CPU)
    for s in range(2):
        for stream in range(_noise.STREAMS):
            z = (seed + (3 * s + stream + 1) * _noise.GOLDEN64) & MASK64
            assert int(keys[s, stream]) & MASK32 == _splitmix64(z) >> 32
    u = _noise.uniforms(keys[:, 0], count, torch.float64)
    key = int(keys[1, 0]) & MASK32
    expected = [((_lowbias32((i * _noise.GOLDEN32 & MASK32) ^ key) >> 9) + 0.5) / 2**23 for i in range(count)]
    assert u[1].tolist() == expected
    # float32 holds the same numbers exactly: one noise for both dtypes
    torch.testing.assert_close(_noise.uniforms(keys[:, 0], count, torch.float32).double(), u, rtol=0, atol=0)


def test_uniforms_are_uniform_over_millions_of_draws():
    keys = _noise.sample_keys(7, 4, CPU)
    u = _noise.uniforms(keys[:, 0], 2**20, torch.float64).flatten().numpy()  # 4.2M draws, consecutive counters
    assert stats.kstest(u, "uniform").pvalue > 1e-3
    assert 2**-24 <= u.min() and u.max() <= 1 - 2**-24
    # chi-square on 4096 bins: the fine structure a KS test can miss
    counts = np.bincount((u * 4096).astype(int), minlength=4096)
    assert stats.chisquare(counts).pvalue > 1e-3
    # many keys (one per sample and stream), few counters each: the keyed family, not one sequence
    many = _noise.uniforms(_noise.sample_keys(8, 4096, CPU).flatten(), 256, torch.float64).flatten().numpy()
    assert stats.kstest(many, "uniform").pvalue > 1e-3


def _lag_pvalue(a, b, bins=32):
    """Chi-square independence test of pairs (a_i, b_i) of uniforms on a bins x bins grid."""
    table, _, _ = np.histogram2d(a, b, bins=bins, range=[[0, 1], [0, 1]])
    expected = len(a) / bins**2
    statistic = ((table - expected) ** 2 / expected).sum()
    return stats.chi2.sf(statistic, bins**2 - 1)


@pytest.mark.parametrize("lag", ["cell", "sample", "stream", "keypoint", "seed"])
def test_neighbouring_draws_are_independent(lag):
    # pairs that share all but one coordinate of (seed, sample, stream, cell); ~1M pairs, 1024 bins
    n = 2**20
    if lag == "seed":
        first = _noise.uniforms(_noise.sample_keys(100, 1, CPU)[:, 0], n, torch.float64)[0]
        second = _noise.uniforms(_noise.sample_keys(101, 1, CPU)[:, 0], n, torch.float64)[0]
    elif lag in ("sample", "stream"):
        keys = _noise.sample_keys(5, 2, CPU)
        pair = keys[:, 0] if lag == "sample" else keys[0, :2]
        first, second = _noise.uniforms(pair, n, torch.float64)
    else:  # counter lags: the next cell, or the same cell of the next keypoint of a 64x48 map
        step = 1 if lag == "cell" else 64 * 48
        u = _noise.uniforms(_noise.sample_keys(6, 1, CPU)[:, 0], n + step, torch.float64)[0]
        first, second = u[:n], u[step:]
    assert _lag_pvalue(first.numpy(), second.numpy()) > 1e-3
    assert abs(np.corrcoef(first.numpy(), second.numpy())[0, 1]) < 5 / n**0.5


def test_exponentials_are_exp1_and_bounded():
    e = _noise.exponentials(_noise.sample_keys(3, 1, CPU)[:, 0], 2**20, torch.float32)[0]
    assert stats.kstest(e.double().numpy(), "expon").pvalue > 1e-3
    assert float(-torch.log(e).max()) <= _noise.LOG_E_BOUND and float(e.min()) > 0


def test_the_operator_noise_is_a_function_of_the_drawn_seed_alone():
    # same seed -> same samples whatever the generator's state was built from; another seed -> other samples
    logits = torch.randn(2, 3, 6, 5)
    a = sampling_argmax(logits, 4, generator=torch.Generator().manual_seed(1))
    b = sampling_argmax(logits, 4, generator=torch.Generator().manual_seed(1))
    c = sampling_argmax(logits, 4, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and not torch.allclose(a, c)
    # the first sample does not depend on how many samples the call draws
    torch.testing.assert_close(sampling_argmax(logits, 1, generator=torch.Generator().manual_seed(1)), a[:, :, :1])


def test_too_many_cells_per_sample_are_refused():
    with pytest.raises(ValueError, match="at most 2\\^32 uniforms per sample"):
        _noise.uniforms(torch.zeros(1, dtype=torch.int32), 2**32 + 1, torch.float32)
