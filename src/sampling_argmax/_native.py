"""The CPU kernel of the "fused" path: the per-cell part of sampling-argmax as one C loop, built at first use.

The expensive part of a sampling call is per cell and sample: hash the counter into a uniform, turn it into
an exponential ``E = -log u``, relax (``w = pi' / E`` at tau = 1, ``w = exp(prep - log(E) / tau)`` in the
"bounded" form, see :mod:`._chunked`) and sum ``w`` into the per-axis marginals (forward) or into the
gradient (backward). Eagerly that is ~20 tensor passes per cell-sample; here it is one loop over a map row
that the C compiler vectorizes, with the map row and its gradient row in the cache for all S samples. On 2D and
3D grids the per-axis work (basis offsets, anchors, read-out; S x (W + H [+ D]) values per map) stays in torch; on
a point set and a 1D grid (OCT's columns), where it is as large as the map (an offset per point or cell and axis),
the kernel does it too: forward returns the read-out, backward regenerates the offsets (the bases'
``from_uniforms``; the Gaussian's ``sqrt(-2 log u1) cos(2 pi u2)`` with the cosine a folded Taylor polynomial) and
accumulates the gradient, and no (S, B, K, d N) tensor is made.

Build: ``cc -O3 -march=native -fopenmp-simd -shared`` of the source below (~2 s on the 2-core CI machine; no
torch headers), kept in :func:`cache_dir` under a hash of the source, flags, compiler and processor, so later
processes only load it. Where no C compiler is found or the build fails, the eager chunk
functions run instead (see :mod:`._fused`). Rows of maps are split over ``torch.get_num_threads()`` threads
(ctypes releases the GIL during the call).

Numbers: the hash is integer arithmetic, so the uniforms are bit-identical to :mod:`._noise`'s; ``log`` and
``exp`` are the textbook reductions (``log x = e ln 2 + 2 atanh((f - 1)/(f + 1))``, f in [1/sqrt 2, sqrt 2];
``exp x = 2^k e^r``, |r| <= ln(2)/2, Taylor) to within a few units in the last place, so samples and
gradients equal the eager path's to float rounding (the tests compare them with the reference), not
bit for bit. Only the relaxation forms "one" and "bounded" (tau >= 0.3) run here: at small tau the
"shifted" form divides float rounding by tau, and the eager path (torch's own log) runs.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import itertools
import os
import platform
import shutil
import subprocess
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor

import torch
from torch import Tensor

MODES = ("one", "bounded")  # the relaxation forms this kernel computes
DTYPES = {torch.float32: "f32", torch.float64: "f64"}

_HEADER = r"""
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static inline uint32_t mix(uint32_t counter, uint32_t key) {  /* lowbias32 of the Weyl counter ^ key */
    uint32_t h = (counter * 0x9E3779B9u) ^ key;
    h ^= h >> 16; h *= 0x7FEB352Du; h ^= h >> 15; h *= 0x846CA68Bu; h ^= h >> 16;
    return h;
}

static inline float log_f32(float x) {  /* x > 0, normal */
    uint32_t b; memcpy(&b, &x, 4);
    int32_t e = (int32_t)(b >> 23) - 127;
    uint32_t mb = (b & 0x7FFFFFu) | 0x3F800000u;
    int32_t big = mb > 0x3FB504F3u;  /* mantissa above sqrt 2: halve it */
    mb -= (uint32_t)big << 23;
    e += big;
    float f; memcpy(&f, &mb, 4);
    float t = (f - 1.0f) / (f + 1.0f), t2 = t * t;
    float p = t2 * (1.0f / 3 + t2 * (1.0f / 5 + t2 * (1.0f / 7 + t2 * (1.0f / 9))));
    float s = 2.0f * t, ef = (float)e;
    return ef * 0.693359375f + (s + (s * p + ef * -2.12194440e-4f));
}

static inline double log_f64(double x) {
    uint64_t b; memcpy(&b, &x, 8);
    int64_t e = (int64_t)(b >> 52) - 1023;
    uint64_t mb = (b & 0xFFFFFFFFFFFFFull) | 0x3FF0000000000000ull;
    int64_t big = mb > 0x3FF6A09E667F3BCDull;
    mb -= (uint64_t)big << 52;
    e += big;
    double f; memcpy(&f, &mb, 8);
    double t = (f - 1.0) / (f + 1.0), t2 = t * t;
    double p = t2 * (1.0 / 3 + t2 * (1.0 / 5 + t2 * (1.0 / 7 + t2 * (1.0 / 9 + t2 * (1.0 / 11 + t2 * (1.0 / 13
               + t2 * (1.0 / 15 + t2 * (1.0 / 17 + t2 * (1.0 / 19 + t2 * (1.0 / 21))))))))));
    double s = 2.0 * t, ef = (double)e;
    return ef * 6.93147180369123816490e-01 + (s + (s * p + ef * 1.90821492927058770002e-10));
}

static inline float exp_f32(float x) {  /* 0 below -87 (torch: denormals there) */
    float under = x < -87.0f ? 0.0f : 1.0f;
    x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
    float k = (x * 1.44269504f + 12582912.0f) - 12582912.0f;  /* round to nearest: 1.5 * 2^23 */
    float r = (x - k * 0.693359375f) - k * -2.12194440e-4f;
    float p = 1.0f + r * (1.0f + r * (0.5f + r * (1.0f / 6 + r * (1.0f / 24 + r * (1.0f / 120 + r * (1.0f / 720
              + r * (1.0f / 5040)))))));
    uint32_t bits = (uint32_t)((int32_t)k + 127) << 23;
    float scale; memcpy(&scale, &bits, 4);
    return p * scale * under;
}

static inline double exp_f64(double x) {
    double under = x < -708.0 ? 0.0 : 1.0;
    x = x < -708.0 ? -708.0 : (x > 709.0 ? 709.0 : x);
    double k = (x * 1.4426950408889634 + 6755399441055744.0) - 6755399441055744.0;  /* 1.5 * 2^52 */
    double r = (x - k * 6.93147180369123816490e-01) - k * 1.90821492927058770002e-10;
    double p = 1.0 / 6227020800.0;  /* 1/13! */
    static const double inv[13] = {1.0 / 479001600, 1.0 / 39916800, 1.0 / 3628800, 1.0 / 362880, 1.0 / 40320,
                                   1.0 / 5040, 1.0 / 720, 1.0 / 120, 1.0 / 24, 1.0 / 6, 0.5, 1.0, 1.0};
    for (int i = 0; i < 13; i++) p = inv[i] + r * p;
    uint64_t bits = (uint64_t)((int64_t)k + 1023) << 52;
    double scale; memcpy(&scale, &bits, 8);
    return p * scale * under;
}

static inline float sqrt_f32(float x) { return __builtin_sqrtf(x); }  /* one instruction (no errno) */
static inline double sqrt_f64(double x) { return __builtin_sqrt(x); }

static inline float cos2pi_f32(float u) {  /* cos(2 pi u), u in (0, 1): even, folded to [0, pi/2], Taylor */
    float t = u - (float)(int32_t)(u + 0.5f), a = t < 0 ? -t : t;
    float sign = a > 0.25f ? -1.0f : 1.0f;
    a = a > 0.25f ? 0.5f - a : a;
    float x = a * 6.28318530717958648f, x2 = x * x;
    return sign * (1.0f + x2 * (-1.0f / 2 + x2 * (1.0f / 24 + x2 * (-1.0f / 720 + x2 * (1.0f / 40320
                   + x2 * (-1.0f / 3628800 + x2 * (1.0f / 479001600)))))));
}

static inline double cos2pi_f64(double u) {
    double t = u - (double)(int64_t)(u + 0.5), a = t < 0 ? -t : t;
    double sign = a > 0.25 ? -1.0 : 1.0;
    a = a > 0.25 ? 0.5 - a : a;
    double x = a * 6.283185307179586477, x2 = x * x, p = 1.0 / 2432902008176640000.0;  /* 1/20! */
    static const double c[10] = {-1.0 / 6402373705728000.0, 1.0 / 20922789888000.0, -1.0 / 87178291200.0,
                                 1.0 / 479001600.0, -1.0 / 3628800.0, 1.0 / 40320.0, -1.0 / 720.0, 1.0 / 24.0,
                                 -0.5, 1.0};
    for (int i = 0; i < 10; i++) p = c[i] + x2 * p;
    return sign * p;
}

void uniforms(const int32_t* keys, int64_t count, int64_t c0, int64_t c1, float* out32, double* out64) {
    for (int64_t c = c0; c < c1; c++) {
        uint32_t key = (uint32_t)keys[c];
        if (out32) {
            float* o = out32 + c * count;
            #pragma omp simd
            for (int64_t i = 0; i < count; i++)
                o[i] = ((float)((mix((uint32_t)i, key) >> 9) & 0x7FFFFFu) + 0.5f) * 1.1920928955078125e-7f;
        } else {
            double* o = out64 + c * count;
            #pragma omp simd
            for (int64_t i = 0; i < count; i++)
                o[i] = ((double)((mix((uint32_t)i, key) >> 9) & 0x7FFFFFu) + 0.5) * 1.1920928955078125e-7;
        }
    }
}
"""

# One forward and one backward per (real type, relaxation form): per map row r (of R, rows [r0, r1) here) and
# sample c, the relaxed weights w of the whole map (one vector loop), then its per-axis sums (forward) or the
# gradient's accumulation (backward) row by row; the grid is (n2, n1, n0) = (D, H, W), x fastest.
_KERNELS = r"""
static void weights_{mode}_{sfx}(const {real}* p, uint32_t base, uint32_t key, int64_t M, {real} inv_tau, {real}* w) {{
    #pragma omp simd
    for (int64_t m = 0; m < M; m++) {{  /* the whole map in one vector loop (rows may be short) */
        {real} u = (({real})((mix(base + (uint32_t)m, key) >> 9) & 0x7FFFFFu) + ({real})0.5)
                   * ({real})1.1920928955078125e-7;
        {real} e = -log_{sfx}(u);
        w[m] = {weight};
    }}
}}

void forward_{mode}_{sfx}(const {real}* prep, const int32_t* keys, int64_t C, int64_t R, int64_t r0, int64_t r1,
                          int64_t n0, int64_t n1, int64_t n2, int64_t nd, {real} inv_tau, {real}* sums) {{
    const int64_t M = n0 * n1 * n2, L = n0 + (nd > 1 ? n1 : 0) + (nd > 2 ? n2 : 0);
    double* acc = (double*)malloc(sizeof(double) * L);
    {real}* w = ({real}*)malloc(sizeof({real}) * M);
    for (int64_t r = r0; r < r1; r++) {{
        for (int64_t c = 0; c < C; c++) {{
            weights_{mode}_{sfx}(prep + r * M, (uint32_t)(r * M), (uint32_t)keys[c], M, inv_tau, w);
            memset(acc, 0, sizeof(double) * L);
            for (int64_t z = 0; z < n2; z++) {{
                for (int64_t y = 0; y < n1; y++) {{
                    const {real}* wr = w + (z * n1 + y) * n0;
                    double row = 0;
                    #pragma omp simd reduction(+:row)
                    for (int64_t x = 0; x < n0; x++) {{
                        acc[x] += wr[x];
                        row += wr[x];
                    }}
                    if (nd > 1) acc[n0 + y] += row;
                    if (nd > 2) acc[n0 + n1 + z] += row;
                }}
            }}
            {real}* out = sums + (c * R + r) * L;
            for (int64_t l = 0; l < L; l++) out[l] = ({real})acc[l];
        }}
    }}
    free(acc);
    free(w);
}}

void backward_{mode}_{sfx}(const {real}* prep, const int32_t* keys, int64_t C, int64_t R, int64_t r0, int64_t r1,
                           int64_t n0, int64_t n1, int64_t n2, int64_t nd, {real} inv_tau, const {real}* total,
                           const {real}* terms, {real} scale, {real}* grad) {{
    const int64_t M = n0 * n1 * n2, L = n0 + (nd > 1 ? n1 : 0) + (nd > 2 ? n2 : 0);
    {real}* w = ({real}*)malloc(sizeof({real}) * M);
    for (int64_t r = r0; r < r1; r++) {{
        for (int64_t c = 0; c < C; c++) {{
            weights_{mode}_{sfx}(prep + r * M, (uint32_t)(r * M), (uint32_t)keys[c], M, inv_tau, w);
            const {real} inv_total = ({real})1 / total[c * R + r], k = scale * inv_total;
            const {real}* a = terms + (c * R + r) * L;
            for (int64_t z = 0; z < n2; z++) {{
                for (int64_t y = 0; y < n1; y++) {{
                    const int64_t start = (z * n1 + y) * n0;
                    const {real}* wr = w + start;
                    {real}* g = grad + r * M + start;
                    const {real} off = (nd > 1 ? a[n0 + y] : 0) + (nd > 2 ? a[n0 + n1 + z] : 0);
                    #pragma omp simd
                    for (int64_t x = 0; x < n0; x++) g[x] += k * wr[x] * (a[x] + off);
                }}
            }}
        }}
    }}
    free(w);
}}
"""


# Point sets and 1D grids (one index per map row): per row r = (b, k) and sample c, the relaxed weights w of the N
# points or cells, then per axis a the basis offsets of the counters r d N + a N + n (streams 1 and 2, as in
# :func:`._chunked.perturbed_positions`) and the anchored read-out -- no (C, B, K, d N) tensor in torch.
_OFFSETS = r"""
static void offsets_{sfx}(int64_t basis, uint32_t key1, uint32_t key2, uint32_t base, int64_t N, {real} sigma,
                          {real}* eps) {{  /* basis 0 uniform, 1 triangular, 2 Gaussian (bases.py's from_uniforms) */
#define UNIFORM(key) ((({real})((mix(base + (uint32_t)n, key) >> 9) & 0x7FFFFFu) + ({real})0.5) \
                      * ({real})1.1920928955078125e-7)
    if (basis == 0) {{
        #pragma omp simd
        for (int64_t n = 0; n < N; n++) eps[n] = UNIFORM(key1) - ({real})0.5;
    }} else if (basis == 1) {{
        #pragma omp simd
        for (int64_t n = 0; n < N; n++) eps[n] = (UNIFORM(key1) + UNIFORM(key2)) - ({real})1;
    }} else {{
        #pragma omp simd
        for (int64_t n = 0; n < N; n++)
            eps[n] = sqrt_{sfx}(({real})-2 * log_{sfx}(UNIFORM(key1))) * cos2pi_{sfx}(UNIFORM(key2)) * sigma;
    }}
#undef UNIFORM
}}
"""

_POINT_KERNELS = r"""
void point_forward_{mode}_{sfx}(const {real}* prep, const int32_t* keys, int64_t C, int64_t R, int64_t r0,
                                int64_t r1, int64_t N, int64_t d, int64_t K, const {real}* pos, int64_t stride,
                                int64_t basis, {real} sigma, {real} inv_tau, {real}* relative, {real}* anchor,
                                int64_t* index, {real}* total) {{
    {real}* w = ({real}*)malloc(sizeof({real}) * 2 * N);
    {real}* eps = w + N;
    for (int64_t r = r0; r < r1; r++) {{
        const {real}* p = pos + (r / K) * stride;
        for (int64_t c = 0; c < C; c++) {{
            const uint32_t* key = (const uint32_t*)keys + 3 * c;
            weights_{mode}_{sfx}(prep + r * N, (uint32_t)(r * N), key[0], N, inv_tau, w);
            double tot = 0;
            #pragma omp simd reduction(+:tot)
            for (int64_t n = 0; n < N; n++) tot += w[n];
            {real} top = w[0];
            #pragma omp simd reduction(max:top)
            for (int64_t n = 0; n < N; n++) top = w[n] > top ? w[n] : top;
            int64_t best = 0;
            while (w[best] != top) best++;  /* the first maximum, as torch's argmax */
            const int64_t o = c * R + r;
            for (int64_t a = 0; a < d; a++) {{
                offsets_{sfx}(basis, key[1], key[2], (uint32_t)((r * d + a) * N), N, sigma, eps);
                const {real}* pa = p + a * N;
                const {real} anc = pa[best] + eps[best];
                double acc = 0;
                #pragma omp simd reduction(+:acc)
                for (int64_t n = 0; n < N; n++) acc += w[n] * ((pa[n] + eps[n]) - anc);
                relative[o * d + a] = ({real})(acc / tot);
                anchor[o * d + a] = anc;
                index[o * d + a] = a * N + best;
            }}
            total[o] = ({real})tot;
        }}
    }}
    free(w);
}}

void point_backward_{mode}_{sfx}(const {real}* prep, const int32_t* keys, int64_t C, int64_t R, int64_t r0,
                                 int64_t r1, int64_t N, int64_t d, int64_t K, const {real}* pos, int64_t stride,
                                 int64_t basis, {real} sigma, {real} inv_tau, const {real}* total, const int64_t* index, const {real}* g,
                                 const {real}* inner, {real} scale, {real}* grad, {real}* relaxed) {{
    {real}* w = ({real}*)malloc(sizeof({real}) * 3 * N);
    {real}* eps = w + N;
    {real}* t = w + 2 * N;
    for (int64_t r = r0; r < r1; r++) {{
        const {real}* p = pos + (r / K) * stride;
        {real}* gr = grad + r * N;
        for (int64_t c = 0; c < C; c++) {{
            const uint32_t* key = (const uint32_t*)keys + 3 * c;
            const int64_t o = c * R + r, best = index[o * d];
            weights_{mode}_{sfx}(prep + r * N, (uint32_t)(r * N), key[0], N, inv_tau, w);
            for (int64_t n = 0; n < N; n++) t[n] = -inner[o];
            for (int64_t a = 0; a < d; a++) {{
                offsets_{sfx}(basis, key[1], key[2], (uint32_t)((r * d + a) * N), N, sigma, eps);
                const {real}* pa = p + a * N;
                const {real} anc = pa[best] + eps[best], ga = g[o * d + a];
                #pragma omp simd
                for (int64_t n = 0; n < N; n++) t[n] += ((pa[n] + eps[n]) - anc) * ga;
            }}
            const {real} inv_total = ({real})1 / total[o], k = scale * inv_total;
            #pragma omp simd
            for (int64_t n = 0; n < N; n++) gr[n] += k * w[n] * t[n];
            if (relaxed) {{
                {real}* out = relaxed + o * N;
                #pragma omp simd
                for (int64_t n = 0; n < N; n++) out[n] = w[n] * inv_total;
            }}
        }}
    }}
    free(w);
}}
"""

_WEIGHTS = {"one": "p[m] / e", "bounded": "exp_{sfx}(p[m] - log_{sfx}(e) * inv_tau)"}


def source() -> str:
    """The C source of the kernels (float32 and float64, both relaxation forms)."""
    parts = [_HEADER]
    for sfx, real in (("f32", "float"), ("f64", "double")):
        parts.append(_OFFSETS.format(sfx=sfx, real=real))
        for mode in MODES:
            weight = _WEIGHTS[mode].format(sfx=sfx)
            parts.append(_KERNELS.format(mode=mode, sfx=sfx, real=real, weight=weight))
            parts.append(_POINT_KERNELS.format(mode=mode, sfx=sfx, real=real))
    return "\n".join(parts)


FLAGS = ("-O3", "-march=native", "-fopenmp-simd", "-fno-math-errno", "-shared", "-fPIC")

_lock = threading.Lock()
_library: list = []  # [ctypes.CDLL] once built
_failure: list[str] = []  # why the build failed (then the eager path runs)


def compiler() -> str | None:
    """The C compiler: ``$CC`` or the first of cc, gcc, clang on the PATH."""
    for name in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def library(build: bool = True):
    """The built kernels (a ``ctypes.CDLL``), building them on first use (unless ``build`` is False); None where
    building failed (the reason is in :func:`failure`) or was not asked for yet."""
    if _library or _failure or not build:
        return _library[0] if _library else None
    with _lock:
        if not _library and not _failure:
            try:
                _library.append(_build())
            except Exception as error:  # noqa: BLE001 -- any build failure degrades to the eager path
                _failure.append(f"{type(error).__name__}: {' '.join(str(error).split())[:300]}")
    return _library[0] if _library else None


def failure() -> str | None:
    return _failure[0] if _failure else None


def cache_dir() -> str:
    """Where built kernels are kept between processes: ``$SAMPLING_ARGMAX_CACHE_DIR``, else
    ``$XDG_CACHE_HOME/sampling_argmax``, else ``~/.cache/sampling_argmax``."""
    if os.environ.get("SAMPLING_ARGMAX_CACHE_DIR"):
        return os.environ["SAMPLING_ARGMAX_CACHE_DIR"]
    return os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "sampling_argmax")


@functools.cache
def _cache_key(cc: str) -> str:
    """The source, flags, compiler (its path and version) and processor (``-march=native``) of a build."""
    version = subprocess.run([cc, "--version"], capture_output=True, text=True, timeout=30, check=False).stdout
    cpu = ""
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as f:
            cpu = "".join(line for line in f.read().splitlines(True)[:40] if line.startswith(("model name", "flags")))
    text = "\0".join([source(), " ".join(FLAGS), os.path.realpath(cc), version, platform.machine(), cpu])
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def cached_path() -> str | None:
    """Where this machine's build is (or would be) cached; None without a C compiler."""
    cc = compiler()
    return None if cc is None else os.path.join(cache_dir(), f"kernels-{_cache_key(cc)}.so")


def _build():
    cc = compiler()
    if cc is None:
        raise RuntimeError("no C compiler found (set CC, or install cc/gcc/clang)")
    cached = cached_path()
    if os.path.exists(cached):
        return _declare(ctypes.CDLL(cached))
    folder = tempfile.mkdtemp(prefix="sampling_argmax_")
    try:
        src, lib = os.path.join(folder, "kernels.c"), os.path.join(folder, "kernels.so")
        with open(src, "w") as f:
            f.write(source())
        done = subprocess.run([cc, *FLAGS, src, "-o", lib], capture_output=True, text=True, timeout=300, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{cc} failed: {done.stderr.strip()[-500:]}")
        try:  # keep it for the next process; os.replace is atomic, so a concurrent build cannot tear it
            os.makedirs(cache_dir(), exist_ok=True)
            os.replace(lib, cached)
            lib = cached
        except OSError:
            pass  # a read-only cache folder: load the build from the temporary folder
        library = ctypes.CDLL(lib)
    finally:
        shutil.rmtree(folder, ignore_errors=True)  # the loaded library stays mapped
    return _declare(library)


def _declare(library):
    i64, i32p, vp = ctypes.c_int64, ctypes.POINTER(ctypes.c_int32), ctypes.c_void_p
    library.uniforms.argtypes = [i32p, i64, i64, i64, vp, vp]
    library.uniforms.restype = None
    for sfx, real in (("f32", ctypes.c_float), ("f64", ctypes.c_double)):
        for mode in MODES:
            fwd = getattr(library, f"forward_{mode}_{sfx}")
            fwd.argtypes = [vp, i32p, i64, i64, i64, i64, i64, i64, i64, i64, real, vp]
            fwd.restype = None
            bwd = getattr(library, f"backward_{mode}_{sfx}")
            bwd.argtypes = [vp, i32p, i64, i64, i64, i64, i64, i64, i64, i64, real, vp, vp, real, vp]
            bwd.restype = None
            fwd = getattr(library, f"point_forward_{mode}_{sfx}")
            fwd.argtypes = [vp, i32p, i64, i64, i64, i64, i64, i64, i64, vp, i64, i64, real, real, vp, vp, vp, vp]
            fwd.restype = None
            bwd = getattr(library, f"point_backward_{mode}_{sfx}")
            bwd.argtypes = [vp, i32p, i64, i64, i64, i64, i64, i64, i64, vp, i64, i64, real, real, vp, vp, vp, vp,
                            real, vp, vp]
            bwd.restype = None
    return library


def supports(x: Tensor, mode: str) -> bool:
    """Whether the kernel computes this call (CPU, float32/64, relaxation "one" or "bounded")."""
    return x.device.type == "cpu" and x.dtype in DTYPES and mode in MODES


@functools.cache
def _pool(workers: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(workers, thread_name_prefix="sampling_argmax")


def _parallel(rows: int, work: int, fn) -> None:
    """``fn(r0, r1)`` over row ranges covering [0, rows), on up to ``torch.get_num_threads()`` threads
    (one where the call is small: ``work`` cell-samples)."""
    threads = max(1, min(torch.get_num_threads(), rows, work // 2**16))
    if threads == 1:
        fn(0, rows)
        return
    bounds = [rows * t // threads for t in range(threads + 1)]
    for future in [_pool(threads).submit(fn, a, b) for a, b in itertools.pairwise(bounds) if b > a]:
        future.result()


def _ptr(t: Tensor | None):
    return None if t is None else ctypes.c_void_p(t.data_ptr())


def _dims(grid: tuple[int, ...]) -> tuple[int, int, int, int]:
    """(n0, n1, n2, nd) of a grid (D, H, W)/(H, W)/(W,)."""
    sizes = tuple(reversed(grid))
    return (*sizes, *([1] * (3 - len(sizes))), len(sizes))


def uniforms(keys: Tensor, count: int, dtype: torch.dtype) -> Tensor:
    """:func:`sampling_argmax._noise.uniforms` computed by the kernel (the same bits): ``(C,)`` -> ``(C, count)``."""
    lib = library()
    keys = keys.contiguous()
    out = torch.empty(keys.shape[0], count, dtype=dtype)
    ptrs = (_ptr(out), None) if dtype == torch.float32 else (None, _ptr(out))
    key_ptr = ctypes.cast(keys.data_ptr(), ctypes.POINTER(ctypes.c_int32))
    _parallel(keys.shape[0], keys.shape[0] * count, lambda a, b: lib.uniforms(key_ptr, count, a, b, *ptrs))
    return out


def forward_sums(prep: Tensor, keys: Tensor, inv_tau: float, mode: str, grid: tuple[int, ...]) -> Tensor:
    """Per-axis sums of the relaxed weights w of samples ``keys`` (C,) over ``prep`` (B, K, M) on a grid: the
    unnormalized marginals (C, B, K, W [+ H [+ D]])."""
    lib = library()
    b, k, m = prep.shape
    n0, n1, n2, nd = _dims(grid)
    length = n0 + (n1 if nd > 1 else 0) + (n2 if nd > 2 else 0)
    c, rows = keys.shape[0], b * k
    out = prep.new_empty(c, b, k, length)
    fn = getattr(lib, f"forward_{mode}_{DTYPES[prep.dtype]}")
    key_ptr = ctypes.cast(keys.data_ptr(), ctypes.POINTER(ctypes.c_int32))
    _parallel(rows, c * rows * m, lambda r0, r1: fn(_ptr(prep), key_ptr, c, rows, r0, r1, n0, n1, n2, nd, inv_tau,
                                                    _ptr(out)))
    return out


def backward_accumulate(grad: Tensor, prep: Tensor, keys: Tensor, inv_tau: float, mode: str,
                        grid: tuple[int, ...], total: Tensor, terms: Tensor, scale: float) -> None:
    """``grad (B, K, M) += scale * sum_c r_c * (sum_a terms_a)`` on a grid with ``r_c = w_c / total_c``; ``terms``
    (C, B, K, L) holds each axis's per-position term (the first axis's minus the inner product), ``total``
    (C, B, K, 1)."""
    lib = library()
    b, k, m = prep.shape
    n0, n1, n2, nd = _dims(grid)
    c, rows = keys.shape[0], b * k
    total, terms = total.contiguous(), terms.contiguous()
    fn = getattr(lib, f"backward_{mode}_{DTYPES[prep.dtype]}")
    key_ptr = ctypes.cast(keys.data_ptr(), ctypes.POINTER(ctypes.c_int32))
    _parallel(rows, c * rows * m, lambda r0, r1: fn(_ptr(prep), key_ptr, c, rows, r0, r1, n0, n1, n2, nd, inv_tau,
                                                    _ptr(total), _ptr(terms), scale, _ptr(grad)))


BASIS_CODES = {"uniform": 0, "triangular": 1, "gaussian": 2}


def _point_layout(positions: Tensor) -> tuple[Tensor, int]:
    """Positions as the kernel reads them and their batch stride: (B, 1, d N) of a point set (stride d N), or the
    (W,) cell positions of a 1D grid, shared by the batch (stride 0)."""
    return positions.contiguous(), positions.shape[-1] if positions.dim() == 3 else 0


def point_forward(prep: Tensor, keys: Tensor, inv_tau: float, mode: str, positions: Tensor, dims: int,
                  basis: str, sigma: float) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The whole forward of samples ``keys`` (C, STREAMS) over one index per map row -- a point set, or a 1D grid
    (a point set of d = 1 at 0..W-1) -- with ``prep`` (B, K, N) and ``positions`` as :func:`._chunked.layout` lays
    them out: (B, 1, d N) or (W,). Returns :func:`._chunked.read_out`'s anchored read-out and anchors (C, B, K, d),
    anchor index into d N (C, B, K, d; int64) and totals (C, B, K, 1)."""
    lib = library()
    b, k, n = prep.shape
    c, rows = keys.shape[0], b * k
    keys = keys.contiguous()
    positions, stride = _point_layout(positions)
    relative, anchor = prep.new_empty(c, b, k, dims), prep.new_empty(c, b, k, dims)
    index, total = torch.empty(c, b, k, dims, dtype=torch.int64), prep.new_empty(c, b, k, 1)
    fn = getattr(lib, f"point_forward_{mode}_{DTYPES[prep.dtype]}")
    key_ptr = ctypes.cast(keys.data_ptr(), ctypes.POINTER(ctypes.c_int32))
    _parallel(rows, c * rows * n * (1 + dims), lambda r0, r1: fn(
        _ptr(prep), key_ptr, c, rows, r0, r1, n, dims, k, _ptr(positions), stride,
        BASIS_CODES[basis], sigma, inv_tau, _ptr(relative), _ptr(anchor), _ptr(index), _ptr(total)))
    return relative, anchor, index, total


def point_backward(grad: Tensor, prep: Tensor, keys: Tensor, inv_tau: float, mode: str, positions: Tensor,
                   dims: int, basis: str, sigma: float, total: Tensor, index: Tensor, g: Tensor, inner: Tensor,
                   scale: float, want_relaxed: bool) -> Tensor | None:
    """``grad (B, K, N) += scale * sum_c r_c * (v_c - inner_c)`` over one index per map row (see
    :func:`point_forward` and :mod:`._chunked`), the offsets regenerated here; ``total``, ``index`` from
    :func:`point_forward`, ``g`` (C, B, K, d) the output gradient, ``inner`` (C, B, K, 1). Returns the relaxed
    samples r (C, B, K, N) when ``want_relaxed`` (the points' gradient)."""
    lib = library()
    b, k, n = prep.shape
    c, rows = keys.shape[0], b * k
    keys = keys.contiguous()
    positions, stride = _point_layout(positions)
    total, index, g, inner = (t.contiguous() for t in (total, index, g, inner))
    relaxed = prep.new_empty(c, b, k, n) if want_relaxed else None
    fn = getattr(lib, f"point_backward_{mode}_{DTYPES[prep.dtype]}")
    key_ptr = ctypes.cast(keys.data_ptr(), ctypes.POINTER(ctypes.c_int32))
    _parallel(rows, c * rows * n * (1 + dims), lambda r0, r1: fn(
        _ptr(prep), key_ptr, c, rows, r0, r1, n, dims, k, _ptr(positions), stride, BASIS_CODES[basis], sigma,
        inv_tau, _ptr(total), _ptr(index), _ptr(g), _ptr(inner), scale, _ptr(grad), _ptr(relaxed)))
    return relaxed
