"""CPU budget of the synthetic 3D-pose comparison: process CPU time of one training step of each of the six
methods at the config's shapes (IntegralPoseNet width 32, batch 16 of 64x64 crops, 18 x 16^3 volumes, sampling
with N_s = 10, tau = 2, the authors' Gumbel form) and of rendering one pose, extrapolated to
``compare --seeds 0 1 2`` (steps x seeds; start-up and testing not included).

    OMP_NUM_THREADS=1 python experiments/pose3d_budget.py [--steps 300] [--seeds 3] [--repeats 6]

CPU time (``time.process_time``), not wall time, so that a shared machine's load inflates it less; on idle
cores the rendering runs in the data-loader worker on the second core, beside the steps.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch.utils.data import default_collate

from sampling_argmax import ConstantTemperature
from sampling_argmax.data.synthetic_pose3d import SyntheticPoses
from sampling_argmax.methods import PAPER_METHODS, paper_method
from sampling_argmax.models.integral import IntegralPoseNet


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300, help="training steps per run (the config's 15 x 20)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=6, help="timed steps per method (median), after one warm-up")
    args = parser.parse_args(argv)
    if min(args.steps, args.seeds, args.repeats) < 1:
        parser.error("--steps, --seeds and --repeats must be >= 1")
    torch.manual_seed(0)
    data = SyntheticPoses("train", 10_000)
    start = time.process_time()
    batches = [default_collate([data[i] for i in range(b * 16, b * 16 + 16)]) for b in range(4)]
    render = (time.process_time() - start) / 64
    print(f"rendering: {render * 1e3:.1f} ms CPU a pose, {render * 16:.3f} s a batch of 16")
    total = 0.0
    for name in PAPER_METHODS:
        sampling = {"num_samples": 10, "gumbel": "authors", "schedule": ConstantTemperature(2.0)}
        method = paper_method(name, **(sampling if name.startswith("samp") else {}))
        model = IntegralPoseNet(num_keypoints=18, depth_bins=16, width=32)
        optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
        times = []
        for step in range(args.repeats + 1):
            batch = batches[step % len(batches)]
            start = time.process_time()
            optimizer.zero_grad(set_to_none=True)
            method.loss(method.maps(model(batch["image"])), batch["target"], batch["target_weight"]).backward()
            optimizer.step()
            times.append(time.process_time() - start)
        step_time = statistics.median(times[1:])
        total += step_time * args.steps * args.seeds
        print(f"{name}: {step_time:.3f} s CPU a step, {step_time * args.steps * args.seeds:.0f} s for "
              f"{args.seeds} x {args.steps} steps")
    print(f"all six methods: {total:.0f} s ({total / 60:.1f} min) of training steps on one core")


if __name__ == "__main__":
    main()
