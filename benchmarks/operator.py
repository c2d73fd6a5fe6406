"""Forward+backward time and peak memory of soft-argmax and sampling-argmax at the paper's map sizes.

    python benchmarks/operator.py --tasks coco synthetic --threads 1 2            # the issue-17 table
    python benchmarks/operator.py --tasks coco synthetic --threads 1 --busy 1    # with one competing busy process
    python benchmarks/operator.py --tasks coco-flat --implementations chunked    # peak for S = 1, 10, 30, 50
    python benchmarks/operator.py --tasks coco --taus 1 0.5 --bases triangular gaussian --samples 10 30
    python benchmarks/operator.py --tasks coco mtfl h36m --implementations fused chunked --taus 1 0.5  # docs/performance.md

Every case runs ``loss = |y - t|.mean(); loss.backward()`` on fixed random logits, the way training does.
Time: the **median** over ``--repeats`` timed runs, the cases **interleaved** (repetition r of every case
runs before repetition r + 1 of any), after one untimed warm-up run per case (which for "fused" includes
building the native CPU kernel, ~2 s, or compiling on a GPU; its time is printed as ``first call``), on two clocks: wall time, and the process's CPU time
(``time.process_time``: with one thread, the time the work itself took, without the waits for a core that a
machine shared with other jobs adds to the wall clock; with several threads it sums them). Ratios are to
soft-argmax measured in the same run and thread setting; the load average is printed.
Peak memory: the peak of live CPU-allocator bytes during one separate run, from the profiler's allocation
records (``sampling_argmax._memory``; includes kernels' scratch buffers, excludes the input logits).

``--implementations`` takes any names the installed package accepts, so the same script measures an older
checkout (``PYTHONPATH=<old>/src python benchmarks/operator.py --implementations efficient``).
"""

from __future__ import annotations

import argparse
import functools
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from sampling_argmax import sampling_argmax, sampling_argmax_points, soft_argmax, soft_argmax_points
from sampling_argmax._memory import peak_cpu_memory

TASKS = {  # (B, K, *grid), default sample counts
    "coco": ((32, 17, 64, 48), (30,)),
    "synthetic": ((32, 3, 48, 48), (30,)),
    "mtfl": ((32, 5, 64, 64), (30,)),
    "h36m": ((16, 18, 64, 64, 64), (10,)),
    "coco-flat": ((32, 17, 64, 48), (1, 10, 30, 50)),  # is the peak flat in S?
}
POINT_TASKS = {  # (B, K, N points, d), default sample counts; point sets have the Gaussian basis only
    "keypointnet": ((8, 19, 2048, 3), (30,)),
}


def _step(logits, target, fn):
    def run():
        out = fn(logits)
        t = target if out.dim() == target.dim() else target[:, :, None]
        loss = (out - t).abs().mean()
        (grad,) = torch.autograd.grad(loss, logits)
        return grad

    return run


def _sampling(s, tau, basis, impl):
    def fn(x):
        return sampling_argmax(x, s, tau, basis, generator=torch.Generator().manual_seed(1), implementation=impl)

    return fn


def _sampling_points(points, s, tau, impl):
    def fn(x):
        return sampling_argmax_points(x, points, s, tau, generator=torch.Generator().manual_seed(1),
                                      implementation=impl)

    return fn


def benchmark(task, implementations, bases, samples, taus, repeats, memory, seed=0):
    """Rows (task, shape, operator, basis, S, tau, implementation, median wall s, median CPU s, first-call s,
    peak bytes)."""
    gen = torch.Generator().manual_seed(seed)
    if task in POINT_TASKS:  # a cloud in the unit cube, targets inside it
        shape, default_samples = POINT_TASKS[task]
        b, k, n, d = shape
        logits = torch.randn(b, k, n, generator=gen).mul_(3).requires_grad_()
        points, target = torch.rand(b, n, d, generator=gen), torch.rand(b, k, d, generator=gen)
        soft = lambda x: soft_argmax_points(x, points)  # noqa: E731
        sampling = {"gaussian": lambda s, tau, impl: _sampling_points(points, s, tau, impl)}
    else:
        shape, default_samples = TASKS[task]
        logits = torch.randn(shape, generator=gen).mul_(3).requires_grad_()
        target = torch.rand(*shape[:2], len(shape) - 2, generator=gen) * torch.tensor(shape[:1:-1])
        soft = soft_argmax
        sampling = {basis: functools.partial(_sampling, basis=basis) for basis in bases}
    cases = [("soft-argmax", "-", "-", "-", "-", _step(logits, target, soft))]
    for basis, make in sampling.items():
        for s in samples or default_samples:
            for tau in taus:
                for impl in implementations:
                    cases.append(("sampling-argmax", basis, s, tau, impl,
                                  _step(logits, target, make(s, tau, impl=impl))))
    first = []
    for case in cases:  # warm-up (and compile)
        start = time.perf_counter()
        case[-1]()
        first.append(time.perf_counter() - start)
    wall, cpu = [[] for _ in cases], [[] for _ in cases]
    for _ in range(repeats):
        for i, case in enumerate(cases):
            start, start_cpu = time.perf_counter(), time.process_time()
            case[-1]()
            cpu[i].append(time.process_time() - start_cpu)
            wall[i].append(time.perf_counter() - start)
    rows = []
    for case, w, c, f in zip(cases, wall, cpu, first):
        peak = peak_cpu_memory(case[-1])[1] if memory else float("nan")
        rows.append((task, shape, *case[:-1], statistics.median(w), statistics.median(c), f, peak))
    return rows


HEADER = ("| task | shape (B, K, grid) | operator | basis | S | τ | implementation | threads | busy | wall (ms) | "
          "wall / soft | CPU (ms) | CPU / soft | first call (s) | peak (MiB) | peak / soft |\n" + "|---" * 16 + "|")


def _format(row, soft, threads, busy):
    task, shape, op, basis, s, tau, impl, wall, cpu, first, peak = row
    return (f"| {task} | {tuple(shape)} | {op} | {basis} | {s} | {tau} | {impl} | {threads} | {busy} | "
            f"{wall * 1e3:.0f} | {wall / soft[7]:.1f} | {cpu * 1e3:.0f} | {cpu / soft[8]:.1f} | {first:.1f} | "
            f"{peak / 2**20:.1f} | {peak / soft[10]:.2f} |")


def _busy_processes(count):
    """``count`` competing single-thread busy loops (killed at the end by their process ids)."""
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", choices=sorted(TASKS) + sorted(POINT_TASKS),
                        default=["coco", "synthetic"])
    parser.add_argument("--implementations", nargs="+", default=["reference", "chunked", "fused"])
    parser.add_argument("--bases", nargs="+", default=["triangular"])
    parser.add_argument("--samples", nargs="+", type=int, default=None, help="S values (default: the task's)")
    parser.add_argument("--taus", nargs="+", type=float, default=[1.0])
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per case, interleaved (median)")
    parser.add_argument("--threads", nargs="+", type=int, default=[1], help="torch.set_num_threads settings")
    parser.add_argument("--busy", type=int, default=0, help="competing busy processes during the run")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory runs")
    parser.add_argument("--out", type=Path, default=None, help="append the Markdown table here")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be >= 1")
    machine = (f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
               f"Python {platform.python_version()}, load average {os.getloadavg()[0]:.1f} at start")
    print(f"machine: {machine}\n{HEADER}", flush=True)
    busy = _busy_processes(args.busy)
    lines = []
    try:
        for threads in args.threads:
            torch.set_num_threads(threads)
            for task in args.tasks:
                rows = benchmark(task, args.implementations, args.bases, args.samples, args.taus, args.repeats,
                                 not args.no_memory)
                for row in rows:
                    lines.append(_format(row, rows[0], threads, args.busy))
                    print(lines[-1], flush=True)
    finally:
        for process in busy:
            process.kill()
            process.wait()
    print(f"load average at end: {os.getloadavg()[0]:.1f}")
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        command = "python benchmarks/operator.py " + " ".join(sys.argv[1:] if argv is None else argv)
        with args.out.open("a") as f:
            f.write(f"Machine: {machine}. Command: `{command}`.\n\n{HEADER}\n" + "\n".join(lines) + "\n\n")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
