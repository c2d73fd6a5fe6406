"""Sampling-argmax against soft-argmax on a CUDA device, in a few minutes: operator and COCO training step.

    python benchmarks/gpu.py                 # on a machine with a CUDA GPU
    python benchmarks/gpu.py --repeats 50    # more timed runs (median)

Prints one Markdown table: forward + backward of the operator at the COCO shape (32 x 17 x 64 x 48, S = 30,
tau = 1, triangular basis) and one training step of the COCO model (SimpleBaseline ResNet-50, batch 32 of
256 x 192 random images, Adam), Soft and Samp.Tri, each as the median time over ``--repeats`` runs after
warm-up (which includes the fused path's compilation, reported separately), the ratio to Soft and the peak of
``torch.cuda.max_memory_allocated`` during a run (ratio to Soft's). The sampling method runs the default
"auto" path, which on CUDA is the fused (torch.compile, Triton) one for calls of 2^20 cell-samples and more.
The project's goal on a GPU: sampling <= 2x soft.

On a machine without a CUDA device it says so and exits with status 0 (nothing to measure).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch


def _timed(fn, repeats: int) -> tuple[float, float, int]:
    """(first call s, median of ``repeats`` calls s, peak bytes of one call) on the current CUDA device."""
    torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    torch.cuda.synchronize()
    first = time.perf_counter() - start
    fn()  # a second warm-up: allocator caches, autotuning
    times = []
    for _ in range(repeats):
        begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        begin.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(begin.elapsed_time(end) / 1e3)
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    fn()
    torch.cuda.synchronize()
    return first, statistics.median(times), torch.cuda.max_memory_allocated() - base


def operator_cases(device):
    from sampling_argmax import sampling_argmax, soft_argmax

    gen = torch.Generator(device).manual_seed(0)
    logits = (torch.randn(32, 17, 64, 48, device=device, generator=gen) * 3).requires_grad_()
    target = torch.rand(32, 17, 2, device=device, generator=gen) * torch.tensor([48.0, 64.0], device=device)

    def soft():
        torch.autograd.grad((soft_argmax(logits) - target).abs().mean(), logits)

    def sampling():
        out = sampling_argmax(logits, 30, 1.0, "triangular", generator=torch.Generator(device).manual_seed(1))
        torch.autograd.grad((out - target[:, :, None]).abs().mean(), logits)

    return soft, sampling


def train_step_cases(device):
    from sampling_argmax.methods import paper_method
    from sampling_argmax.models import ResNetDeconv

    torch.manual_seed(0)
    images = torch.randn(32, 3, 256, 192, device=device)
    target = torch.rand(32, 17, 2, device=device) * torch.tensor([48.0, 64.0], device=device)
    cases = []
    for name in ("soft", "samp_tri"):
        model = ResNetDeconv(depth=50, num_keypoints=17).to(device)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
        method = paper_method(name)

        def step(model=model, optimizer=optimizer, method=method):
            optimizer.zero_grad(set_to_none=True)
            method.loss(method.maps(model(images)), target).backward()
            optimizer.step()

        cases.append(step)
    return cases


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=20, help="timed runs per case (median)")
    parser.add_argument("--device", default="cuda", help="a CUDA device, e.g. cuda:1")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be >= 1")
    if not torch.cuda.is_available():
        print("benchmarks/gpu.py: no CUDA device on this machine (torch.cuda.is_available() is False); nothing to "
              "measure. Run it on a machine with a GPU.")
        return 0
    device = torch.device(args.device)
    torch.cuda.set_device(device)
    print(f"device: {torch.cuda.get_device_name(device)}, torch {torch.__version__}, CUDA {torch.version.cuda}")
    print("| case | method | first call (s) | median (ms) | / soft | peak (MiB) | / soft |\n" + "|---" * 7 + "|")
    for case, (soft, sampling) in (("operator, COCO shape, S = 30", operator_cases(device)),
                                   ("training step, COCO ResNet-50", train_step_cases(device))):
        rows = [(name, *_timed(fn, args.repeats)) for name, fn in (("soft", soft), ("sampling", sampling))]
        for name, first, median, peak in rows:
            print(f"| {case} | {name} | {first:.1f} | {median * 1e3:.2f} | {median / rows[0][2]:.2f} | "
                  f"{peak / 2**20:.0f} | {peak / max(rows[0][3], 1):.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
