"""One training step (model forward, method loss, backward, Adam step) of each of the paper's six methods
with the task's model, as ratios to Soft's step measured in the same run.

    python benchmarks/train_step.py --tasks synthetic mtfl-cpu --threads 1
    python benchmarks/train_step.py --tasks coco --methods soft samp_tri --repeats 2   # ResNet-50: ~1 min a step

Shapes and models are the configs': ``synthetic`` (configs/synthetic.yaml: SmallHeatmapNet width 16, batch 32
of 48x48 images, 3 keypoints, 24x24 maps), ``mtfl-cpu`` (configs/mtfl/cpu.yaml: ResNet-18 + 4 deconvolutions of
64, batch 32 of 64x64 images, 5 landmarks, 32x32 maps), ``coco`` (configs/coco.yaml: SimpleBaseline ResNet-50 +
3 deconvolutions of 256, batch 32 of 256x192 images, 17 keypoints, 64x48 maps). Random images and targets; the
sampling methods at the paper's N_s = 30 and epoch 0 (tau = 2). The sampling methods run with the
``implementation="auto"`` choice (``fused`` from 2^22 cell-samples per call) and, as ``<name>/chunked``, with
``SAMPLING_ARGMAX_FUSED=0``. Time: the median over ``--repeats`` interleaved steps after one warm-up step each
(which includes compiling), wall and process CPU time (see ``benchmarks/operator.py``).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time

import torch

from sampling_argmax.methods import PAPER_METHODS, paper_method
from sampling_argmax.models import ResNetDeconv, SmallHeatmapNet

TASKS = {  # name: (model factory, input shape (B, C, H, W), keypoints)
    "synthetic": (lambda: SmallHeatmapNet(num_keypoints=3, dims=2, in_channels=1, width=16), (32, 1, 48, 48), 3),
    "mtfl-cpu": (lambda: ResNetDeconv(depth=18, num_keypoints=5, deconv_channels=64, num_deconv=4), (32, 3, 64, 64),
                 5),
    "coco": (lambda: ResNetDeconv(depth=50, num_keypoints=17), (32, 3, 256, 192), 17),
}


def _step(model, optimizer, method, images, target, fused):
    def run():
        previous = os.environ.get("SAMPLING_ARGMAX_FUSED")
        os.environ["SAMPLING_ARGMAX_FUSED"] = "1" if fused else "0"
        try:
            optimizer.zero_grad(set_to_none=True)
            logits = method.maps(model(images))
            loss = method.loss(logits, target[:, :, : logits.dim() - 2] * torch.tensor(logits.shape[:1:-1]))
            loss.backward()
            optimizer.step()
        finally:
            if previous is None:
                del os.environ["SAMPLING_ARGMAX_FUSED"]
            else:
                os.environ["SAMPLING_ARGMAX_FUSED"] = previous

    return run


def benchmark(task, repeats, methods=PAPER_METHODS, seed=0):
    factory, shape, keypoints = TASKS[task]
    torch.manual_seed(seed)
    model = factory()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    images = torch.randn(shape)
    target = torch.rand(shape[0], keypoints, 2)  # fraction of the map size, x then y
    cases = []
    for name in dict.fromkeys(("soft", *methods)):  # Soft first: the ratios' reference
        method = paper_method(name)
        cases.append((name, _step(model, optimizer, method, images, target, True)))
        if name.startswith("samp"):
            cases.append((f"{name}/chunked", _step(model, optimizer, method, images, target, False)))
    first, wall, cpu = [], {name: [] for name, _ in cases}, {name: [] for name, _ in cases}
    for _, run in cases:
        start = time.perf_counter()
        run()
        first.append(time.perf_counter() - start)
    for _ in range(repeats):
        for name, run in cases:
            start, start_cpu = time.perf_counter(), time.process_time()
            run()
            cpu[name].append(time.process_time() - start_cpu)
            wall[name].append(time.perf_counter() - start)
    w = {name: statistics.median(t) for name, t in wall.items()}
    c = {name: statistics.median(t) for name, t in cpu.items()}
    return [(task, name, w[name], w[name] / w["soft"], c[name], c[name] / c["soft"], f)
            for (name, _), f in zip(cases, first)]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", choices=sorted(TASKS), default=["synthetic", "mtfl-cpu"])
    parser.add_argument("--methods", nargs="+", choices=PAPER_METHODS, default=list(PAPER_METHODS))
    parser.add_argument("--repeats", type=int, default=3, help="timed steps per method, interleaved (median)")
    parser.add_argument("--threads", nargs="+", type=int, default=[1], help="torch.set_num_threads settings")
    parser.add_argument("--busy", type=int, default=0, help="competing busy processes during the run")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be >= 1")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
          f"load average {os.getloadavg()[0]:.1f} at start")
    print("| task | method | threads | busy | wall (ms) | wall / Soft's | CPU (ms) | CPU / Soft's | first step (s) |\n"
          "|---|---|---|---|---|---|---|---|---|")
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.busy)]
    try:
        for threads in args.threads:
            torch.set_num_threads(threads)
            for task in args.tasks:
                for task_name, name, wall, wall_ratio, cpu, cpu_ratio, first in benchmark(task, args.repeats, args.methods):
                    print(f"| {task_name} | {name} | {threads} | {args.busy} | {wall * 1e3:.0f} | {wall_ratio:.2f} | "
                          f"{cpu * 1e3:.0f} | {cpu_ratio:.2f} | {first:.1f} |", flush=True)
    finally:
        for process in busy:
            process.kill()
            process.wait()
    print(f"load average at end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
