"""Is training at Human3.6M's shape bounded by the model or by the operator? Peak memory and time of one
training step's loss (forward + backward) on the paper's volumes, next to the network that produces them.

    python benchmarks/volume_memory.py --out reports/volume_memory.md        # B 16, K 18, 64 x 64 x 64, N_s 10
    python benchmarks/volume_memory.py --depth_bins 32 --model_batch 1

Rows: each method's loss, built as training builds it (``paper_method``; sampling with N_s = 10, tau = 2,
the authors' Gumbel form), on fixed random logits (B, K, D, 64, 64) with a per-axis weight (``--xy_fraction``
of the batch x-y only: 0.5 in mixed Human3.6M + MPII training, 0 for Human3.6M alone); peak = live CPU-allocator bytes above the logits
during the call (``sampling_argmax._memory``), time = the minimum over ``--repeats`` after a warm-up. The
model row: the integral ResNet-50 (``ResNetDeconv(depth=50, depth_bins=D)``) forward + backward on
``--model_batch`` 256 x 256 crops, its peak scaled to batch B (activations grow linearly with the batch;
the scaled figure is labeled as such). On a shared CPU the times are only comparable as ratios within a run.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import torch

from sampling_argmax import ConstantTemperature
from sampling_argmax._memory import peak_cpu_memory
from sampling_argmax.methods import paper_method
from sampling_argmax.models import ResNetDeconv

METHODS = ("soft", "soft_vr", "soft_dr", "samp_tri", "samp_gau")


def _method(name):
    if name.startswith("samp"):
        return paper_method(name, num_samples=10, gumbel="authors", schedule=ConstantTemperature(2.0))
    return paper_method(name)


def _measure(run, repeats):
    run()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    _, peak = peak_cpu_memory(run)
    return min(times), peak


def loss_rows(batch, keypoints, depth, size, repeats, methods=METHODS, xy_fraction=0.5):
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(batch, keypoints, depth, size, size, generator=gen).mul_(3).requires_grad_()
    target = torch.rand(batch, keypoints, 3, generator=gen) * torch.tensor([size - 1.0, size - 1.0, depth - 1.0])
    weight = torch.ones(batch, keypoints, 3)
    weight[batch - round(batch * xy_fraction) :, :, 2] = 0.0  # the MPII part: x, y only
    rows = []
    for name in methods:
        method = _method(name)

        def run(method=method):
            loss = method.loss(logits, target, weight, generator=torch.Generator().manual_seed(1))
            (grad,) = torch.autograd.grad(loss, logits)
            return grad

        rows.append((name, *_measure(run, repeats)))
        print(_row(rows[-1], rows[0]), flush=True)
    return rows, logits.numel() * logits.element_size()


def model_row(batch, model_batch, keypoints, depth, repeats):
    net = ResNetDeconv(depth=50, num_keypoints=keypoints, depth_bins=depth)
    image = torch.randn(model_batch, 3, 256, 256)

    def run():
        logits = net(image)
        loss = logits.float().square().mean()
        grads = torch.autograd.grad(loss, list(net.parameters()))
        return grads[0]

    seconds, peak = _measure(run, repeats)
    return seconds * batch / model_batch, peak * batch / model_batch, peak, seconds


HEADER = "| step part | time (s) | time / soft | peak (MiB) | peak / soft |\n|---|---|---|---|---|"


def _row(row, soft):
    name, seconds, peak = row
    return f"| loss: {name} | {seconds:.2f} | {seconds / soft[1]:.2f} | {peak / 2**20:.0f} | {peak / soft[2]:.2f} |"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--keypoints", type=int, default=18)
    parser.add_argument("--depth_bins", type=int, default=64)
    parser.add_argument("--map_size", type=int, default=64)
    parser.add_argument("--model_batch", type=int, default=2, help="crops the ResNet-50 row runs (scaled to --batch)")
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS), help="soft first: the ratios' base")
    parser.add_argument("--xy_fraction", type=float, default=0.5, help="part of the batch with x-y labels only (MPII)")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    if min(args.batch, args.keypoints, args.depth_bins, args.map_size, args.model_batch, args.repeats) < 1:
        parser.error("every size must be >= 1")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    machine = (f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, "
               f"torch {torch.__version__}")
    shape = (args.batch, args.keypoints, args.depth_bins, args.map_size, args.map_size)
    print(f"machine: {machine}; logits {shape}, {args.xy_fraction:.0%} of the batch x-y only\n{HEADER}", flush=True)
    rows, logits_bytes = loss_rows(args.batch, args.keypoints, args.depth_bins, args.map_size, args.repeats,
                                   args.methods, args.xy_fraction)
    soft = rows[0]
    seconds, peak, measured_peak, measured_seconds = model_row(args.batch, args.model_batch, args.keypoints,
                                                               args.depth_bins, args.repeats)
    model = (f"| model: ResNet-50 integral head, forward + backward (measured at batch {args.model_batch}: "
             f"{measured_seconds:.2f} s, {measured_peak / 2**20:.0f} MiB; scaled to {args.batch}) | {seconds:.2f} | "
             f"{seconds / soft[1]:.2f} | {peak / 2**20:.0f} | {peak / soft[2]:.2f} |")
    print(model)
    note = f"The logits themselves: {logits_bytes / 2**20:.0f} MiB (float32), held by the model's output in training."
    print(note)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        command = "python benchmarks/volume_memory.py " + " ".join(sys.argv[1:] if argv is None else argv)
        body = "\n".join(_row(r, soft) for r in rows)
        args.out.write_text(f"Machine: {machine}. Logits {shape}, {args.xy_fraction:.0%} of the batch x-y only. "
                            f"Command: `{command}`.\n\n{HEADER}\n{body}\n"
                            f"{model}\n\n{note}\n")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
