"""Counter-based noise: the uniform of (seed, sample, stream, cell) is an integer hash, not a generator draw.

A sampling call draws **one** int64 seed from its ``torch.Generator`` (or the global RNG); every uniform of
the call is then a pure function of ``(seed, sample s, stream, counter)``, where the counter is the flat
index of the cell ``(b, k, m)`` in the (B, K, M) map (stream 0, the Gumbel noise) or of ``(b, k, l)`` in the
(B, K, L) per-axis offsets (streams 1 and 2, the basis offsets' uniforms). So any sample can be regenerated
in backward from the seed alone, in any chunk order, by eager code or a compiled kernel, and the integer
arithmetic gives the same bits on every device.

Construction (integer tensor ops; signed integers wrap modulo 2^n in PyTorch, and right shifts are made
logical by masking):

* per (sample, stream) a 32-bit key: SplitMix64 (Steele, Lea & Flood 2014; the output function of
  ``java.util.SplittableRandom``) of ``seed + (3 s + stream + 1) * golden64`` -- the seed's full 64 bits
  reach every key;
* per cell: ``h = lowbias32(counter * golden32 ^ key)`` -- Wellons' 32-bit integer hash ("lowbias32",
  xorshift-multiply, two multiplies; see "Prospecting for Hash Functions", 2018), a bijection of 32-bit
  words, on a Weyl sequence of the counter;
* ``u = (top 23 bits of h + 1/2) / 2^23``: in (0, 1), 24 significant bits, so exact in float32 and float64
  (the same numbers in both), at least 2^-24 from 0 and 1.

The uniformity and independence of these numbers are tested on millions of draws (KS, 2D-lag chi-square
across cells, samples, keypoints and seeds) in ``tests/ops/test_noise.py``. Maps are limited to 2^32 cells
per sample (``B K M``), 2^32 times a Human3.6M batch.
"""

from __future__ import annotations

import torch
from torch import Tensor

GOLDEN32 = 0x9E3779B9  # 2^32 / golden ratio, odd: the Weyl increment of the cell counter
GOLDEN64 = 0x9E3779B97F4A7C15
_M1, _M2 = 0x7FEB352D, 0x846CA68B  # lowbias32's multipliers
_S1, _S2 = 0xBF58476D1CE4E5B9, 0x94D049BB133111EB  # SplitMix64's
STREAMS = 3  # Gumbel noise, first and second basis-offset uniform
MAX_COUNTER = 2**32
#: -log(E) <= LOG_E_BOUND for every E = -log u with u <= 1 - 2^-24 (the largest uniform): 24 ln 2 = 16.636
LOG_E_BOUND = 16.64


def _signed(value: int, bits: int) -> int:
    """The two's-complement signed value of an unsigned ``bits``-bit constant (what torch's int tensors hold)."""
    return value - (1 << bits) if value >= 1 << (bits - 1) else value


def draw_seed(generator: torch.Generator | None, device: torch.device) -> int:
    """One int64 seed from ``generator`` (on ``device``) or, when None, from the global RNG of ``device``."""
    if generator is not None:
        device = generator.device
    draw = torch.randint(-(2**63), 2**63 - 1, (1,), generator=generator, device=device, dtype=torch.int64)
    return int(draw.item())


def _shift_xor_(x: Tensor, shift: int, bits: int) -> Tensor:
    """``x ^= x >>> shift`` (logical shift) on a ``bits``-bit signed integer tensor, in place."""
    return x.bitwise_xor_(x.bitwise_right_shift(shift).bitwise_and_((1 << (bits - shift)) - 1))


def splitmix64(z: Tensor) -> Tensor:
    """SplitMix64's output mix of int64 ``z`` (new tensor)."""
    z = _shift_xor_(z.clone(), 30, 64).mul_(_signed(_S1, 64))
    z = _shift_xor_(z, 27, 64).mul_(_signed(_S2, 64))
    return _shift_xor_(z, 31, 64)


def sample_keys(seed: int, num_samples: int, device: torch.device) -> Tensor:
    """The 32-bit keys of samples 0..S-1, one per stream: int32 ``(S, STREAMS)`` on ``device``."""
    index = torch.arange(1, STREAMS * num_samples + 1, dtype=torch.int64).view(num_samples, STREAMS)
    z = splitmix64(index.mul_(_signed(GOLDEN64, 64)).add_(seed))
    return z.bitwise_right_shift_(32).to(torch.int32).to(device)  # the high word (the better-mixed one)


def lowbias32_(h: Tensor) -> Tensor:
    """Wellons' lowbias32 mix of an int32 tensor, in place."""
    _shift_xor_(h, 16, 32).mul_(_signed(_M1, 32))
    _shift_xor_(h, 15, 32).mul_(_signed(_M2, 32))
    return _shift_xor_(h, 16, 32)


def uniforms(keys: Tensor, count: int, dtype: torch.dtype) -> Tensor:
    """Uniforms in (0, 1) of counters 0..count-1 under each key: keys ``(C,)`` int32 -> ``(C, count)``."""
    if count > MAX_COUNTER:
        raise ValueError(f"a sampling call draws at most 2^32 uniforms per sample and stream (B x K x cells), "
                         f"got {count}; split the batch")
    h = torch.arange(count, dtype=torch.int32, device=keys.device).mul_(_signed(GOLDEN32, 32))
    # in place for one key (the chunk of a large map): eagerly, one map plus lowbias32's shifted copy
    h = h.view(1, count).bitwise_xor_(keys[:, None]) if keys.shape[0] == 1 else h.bitwise_xor(keys[:, None])
    h = lowbias32_(h).bitwise_right_shift_(9).bitwise_and_(0x7FFFFF)
    return h.to(dtype).add_(0.5).mul_(2.0**-23)


def exponentials(keys: Tensor, count: int, dtype: torch.dtype) -> Tensor:
    """``E = -log u ~ Exp(1)`` of the same counters (the Gumbel noise is ``g = -log E``). ``u`` and ``1 - u``
    are both exact on the uniforms' grid, so ``-log u`` resolves small E (the likely winners) as finely as
    ``-log1p(-u)`` would -- and ``log`` is vectorized on CPU where ``log1p`` is not (9x faster measured).
    ``-log E <= LOG_E_BOUND``."""
    return uniforms(keys, count, dtype).log_().neg_()
