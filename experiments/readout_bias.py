"""Read-out bias of sampling-argmax's relaxed expected-error objective toward cell centres.

Setting: free logits (no network), a broad initial map (zeros), Adam with a cosine-decayed learning
rate until the read-out stops moving, at a *constant* temperature τ. The exact expected error is
linear in π and is minimised by a one-hot map on the nearest cell; the Gumbel relaxation (τ > 0) is
what lets the expectation sit between cells, so as τ falls the converged read-out (the
soft-argmax expectation used at test time) is pulled toward the nearest cell centre. Soft-argmax,
which trains the read-out itself, has no such bias.

Usage::

    python experiments/readout_bias.py                  # 1D (W=16, target 7.3) and 2D (16x16, target (7.3, 5.6))
    python experiments/readout_bias.py --steps 300 --no-write   # quick look

Prints a Markdown table and writes it (with the command and machine) to .readme_parts/readout_bias.md.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import torch

from sampling_argmax import ConstantTemperature, soft_argmax
from sampling_argmax.methods import SamplingArgmaxMethod, SoftArgmaxMethod

BASES = ("uniform", "triangular", "gaussian")
TAUS = (2.0, 1.0, 0.5, 0.2)
# grid in tensor layout, target in x, y order. For 7.3 the nearest cell centre and the grid's middle (7.5)
# lie on opposite sides; for 6.7 and y = 5.6 on the same side: a pull toward the middle (relaxed samples
# are contracted toward it at high τ) would show up as opposite signs, a pull toward the cell centre not.
# 2D stays 16×16: on 32×32 at τ = 0.2 a flat start often collapses onto a neighbouring cell.
CASES = {"1D": ((16,), (7.3,)), "1D ": ((16,), (6.7,)), "2D": ((16, 16), (7.3, 5.6))}


def converged_readout(method, grid, target, steps, lr, seed) -> torch.Tensor:
    """Fit free logits on ``grid`` to ``target`` with ``method``; return the final read-out (dims,)."""
    logits = torch.zeros(1, 1, *grid, requires_grad=True)
    target_t = torch.tensor([[target]])
    optimizer = torch.optim.Adam([logits], lr=lr)
    # decaying lr: the stochastic objective's noise averages out and the read-out settles
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        loss = method.loss(logits, target_t, generator=generator)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
    return soft_argmax(logits.detach())[0, 0]


def median_readout(method, grid, target, args) -> tuple[torch.Tensor, int, float]:
    """Median read-out of ``args.seeds`` fits; the number of fits that collapsed elsewhere (> 0.5 cell
    from the median on some axis: a neighbouring cell); the largest deviation among the others."""
    runs = torch.stack([converged_readout(method, grid, target, args.steps, args.lr, args.seed + s)
                        for s in range(args.seeds)])
    median = runs.median(0).values
    deviation = (runs - median).abs().amax(-1)
    collapsed = deviation > 0.5
    spread = deviation[~collapsed].max().item()
    return median, int(collapsed.sum()), spread


def fmt(readout: torch.Tensor, target) -> str:
    return ", ".join(f"{v:.2f} ({v - t:+.2f})" for v, t in zip(readout.tolist(), target))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=1000, help="Adam steps per fit")
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--seeds", type=int, default=3, help="fits per cell; the median is reported")
    parser.add_argument("--num-samples", type=int, default=30, help="N_s per step")
    parser.add_argument("--gumbel", choices=("paper", "authors"), default="paper")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / ".readme_parts" / "readout_bias.md")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # tiny problems: threads only add overhead on a shared machine

    start = time.time()
    worst, collapses = 0.0, 0
    header = "| case (target) | method | " + " | ".join(f"τ = {tau:g}" for tau in TAUS) + " |"
    lines = [header, "|" + "---|" * (2 + len(TAUS))]
    for case, (grid, target) in CASES.items():
        label = f"{case.strip()} {'×'.join(map(str, grid))} ({', '.join(f'{t:g}' for t in target)})"
        soft, collapsed, spread = median_readout(SoftArgmaxMethod(), grid, target, args)
        worst, collapses = max(worst, spread), collapses + collapsed
        lines.append(f"| {label} | soft (no τ) | {fmt(soft, target)} |" + " |" * (len(TAUS) - 1))
        for basis in BASES:
            cells = []
            for tau in TAUS:
                method = SamplingArgmaxMethod(basis=basis, num_samples=args.num_samples,
                                              schedule=ConstantTemperature(tau), gumbel=args.gumbel)
                readout, collapsed, spread = median_readout(method, grid, target, args)
                worst, collapses = max(worst, spread), collapses + collapsed
                cells.append(fmt(readout, target) + "*" * collapsed)
                print(f"  {case} {basis} τ={tau:g}: {cells[-1]}  [{time.time() - start:.0f}s]", file=sys.stderr)
            lines.append(f"| {label} | samp {basis} | " + " | ".join(cells) + " |")
    table = "\n".join(lines)
    elapsed = time.time() - start
    print(table)
    print(f"largest deviation of one seed from the median: {worst:.3f} cells; {collapses} collapsed fits",
          file=sys.stderr)

    if not args.no_write:
        command = "python experiments/readout_bias.py" + ("" if argv is None and len(sys.argv) == 1 else
                                                          " " + " ".join(sys.argv[1:] if argv is None else argv))
        machine = f"{torch.get_num_threads()}-thread CPU run on a 2-core machine ({platform.machine()}), torch {torch.__version__}"
        text = f"""### Read-out bias of sampling-argmax toward cell centres

Free logits fitted with Adam to a target between cell centres at a constant temperature τ, until the
read-out stops moving ({args.steps} steps, cosine-decayed lr {args.lr}, N_s = {args.num_samples},
Gumbel "{args.gumbel}"), from a flat map (zero logits). Each cell is the converged read-out (the expectation
used at test time), the median of {args.seeds} seeds (the others within {worst:.2f} cells of it; each `*` marks
a seed that collapsed onto a neighbouring cell instead, {collapses} in all), and, in brackets, its error; for 2D,
x then y.

```bash
{command}
```
Machine: {machine}; {elapsed:.0f} s.

{table}

Training on the expected error pulls the read-out toward the nearest cell centre, the more the lower τ:
with the uniform and triangular bases the converged read-out sits 0.1–0.2 cell off the target, toward the
centre, at τ = 1 to 0.5 (the paper's schedule ends at 0.5), and on the centre itself at τ = 0.2 (the exact
expected error is minimised by a one-hot map; only the Gumbel relaxation lets the expectation sit between
cells). The Gaussian basis (σ = 1 cell) is nearly unbiased at τ = 1 to 0.5, but not at τ = 0.2, and at τ = 2
in 2D it overshoots by 0.4 cell on the axis whose target lies far from the grid's middle. Soft-argmax,
which trains the read-out itself, is unbiased. For users: the bias is a fraction of a *cell*, so it matters
on coarse heatmaps; use a finer grid (the same bias is fewer pixels), keep τ at the schedule's floor of 0.5
rather than annealing further, or prefer the Gaussian basis with τ between 0.5 and 1.
"""
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
        print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
