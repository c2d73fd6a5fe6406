"""Forward+backward time and peak memory of soft-argmax and sampling-argmax at the paper's map sizes.

    python benchmarks/operator.py --out reports/operator.md     # COCO, MTFL, Human3.6M (~4-8 min on 2 cores)
    python benchmarks/operator.py --tasks coco --repeats 3 --threads 1
    python benchmarks/operator.py --tasks coco-flat                   # efficient peak for S = 1, 10, 30, 50

Every case runs ``loss = |y - t|.mean(); loss.backward()`` on fixed random logits, the way training does.
Time: the minimum over ``--repeats`` runs after one warm-up run. On a CPU shared with other jobs, intra-op
threads wait for each other at every op, which penalizes the efficient path's per-sample loop (many ops on
one map) against the reference's few ops on S maps; ``--threads 1`` shows the cost without that effect. Peak memory: the peak of live CPU-allocator
bytes during one separate run, from the profiler's allocation records (``sampling_argmax._memory``; includes
kernels' scratch buffers, excludes the input logits that exist before the call). Ratios are to soft-argmax
measured in the same run, so they stay comparable when the machine is shared. Human3.6M runs only the
efficient path: the reference would hold S relaxed copies of a 64x64x64 map (~4 GB at S = 10 per map batch).
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import torch

from sampling_argmax import sampling_argmax, soft_argmax
from sampling_argmax._memory import peak_cpu_memory

TASKS = {  # (B, K, *grid), cases
    "coco": ((32, 17, 64, 48), dict(samples=(1, 10, 30), bases=("uniform", "triangular", "gaussian"),
                                    implementations=("reference", "efficient"))),
    "mtfl": ((32, 5, 64, 64), dict(samples=(1, 10, 30), bases=("uniform", "triangular", "gaussian"),
                                   implementations=("reference", "efficient"))),
    "h36m": ((16, 18, 64, 64, 64), dict(samples=(1, 10), bases=("triangular",), implementations=("efficient",))),
    # not run by default: is the efficient path's peak flat in S?
    "coco-flat": ((32, 17, 64, 48), dict(samples=(1, 10, 30, 50), bases=("triangular",),
                                         implementations=("efficient",))),
}


def _step(logits, target, fn):
    def run():
        out = fn(logits)
        t = target if out.dim() == target.dim() else target[:, :, None]
        loss = (out - t).abs().mean()
        (grad,) = torch.autograd.grad(loss, logits)
        return grad

    return run


def _measure(run, repeats):
    run()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    _, peak = peak_cpu_memory(run)
    return min(times), peak


def benchmark(tasks, repeats, seed=0):
    rows = []
    for task in tasks:
        shape, cases = TASKS[task]
        gen = torch.Generator().manual_seed(seed)
        logits = torch.randn(shape, generator=gen).mul_(3).requires_grad_()
        target = torch.rand(*shape[:2], len(shape) - 2, generator=gen) * torch.tensor(shape[:1:-1])
        soft_time, soft_peak = _measure(_step(logits, target, soft_argmax), repeats)
        rows.append((task, shape, "soft-argmax", "-", "-", "-", soft_time, soft_peak, soft_time, soft_peak))
        print(_format_row(rows[-1]), flush=True)
        for basis in cases["bases"]:
            for s in cases["samples"]:
                for impl in cases["implementations"]:
                    def fn(x, s=s, basis=basis, impl=impl):
                        return sampling_argmax(x, s, 1.0, basis, generator=torch.Generator().manual_seed(1),
                                               implementation=impl)

                    t, p = _measure(_step(logits, target, fn), repeats)
                    rows.append((task, shape, "sampling-argmax", basis, s, impl, t, p, soft_time, soft_peak))
                    print(_format_row(rows[-1]), flush=True)
    return rows


HEADER = ("| task | shape (B, K, grid) | operator | basis | S | implementation | time (ms) | time / soft | "
          "peak (MiB) | peak / soft |\n|---|---|---|---|---|---|---|---|---|---|")


def _format_row(row):
    task, shape, op, basis, s, impl, t, p, st, sp = row
    return (f"| {task} | {tuple(shape)} | {op} | {basis} | {s} | {impl} | {t * 1e3:.0f} | {t / st:.2f} | "
            f"{p / 2**20:.1f} | {p / sp:.2f} |")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", choices=sorted(TASKS), default=["coco", "mtfl", "h36m"])
    parser.add_argument("--repeats", type=int, default=1,
                        help="timed runs per case after one warm-up (the minimum is reported)")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--out", type=Path, default=None, help="write the Markdown table here")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be >= 1")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    machine = (f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, "
               f"torch {torch.__version__}, Python {platform.python_version()}")
    print(f"machine: {machine}\n{HEADER}", flush=True)
    rows = benchmark(args.tasks, args.repeats)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        command = "python benchmarks/operator.py " + " ".join(sys.argv[1:] if argv is None else argv)
        body = "\n".join(_format_row(r) for r in rows)
        args.out.write_text(f"Machine: {machine}. Command: `{command}`.\n\n{HEADER}\n{body}\n")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
