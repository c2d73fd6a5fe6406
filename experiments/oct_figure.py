"""Figure of a synthetic-OCT comparison report: one B-scan with the true and predicted boundaries of each method,
and the per-column probability maps of one boundary (rows x A-scans) for every method.

    python experiments/oct_figure.py reports/synthetic_oct docs/synthetic_oct.png [--sample 0] [--boundary 8]

Reads each method's seed-0 checkpoint (runs/<method>/seed0/checkpoints/last.ckpt) and configs/synthetic_oct.yaml.
Predictions are the soft-argmax read-out of every map with the non-negative-gaps topology (as evaluated).
"""

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import yaml  # noqa: E402

from sampling_argmax.data.oct import BOUNDARY_NAMES  # noqa: E402
from sampling_argmax.data.synthetic_oct import SyntheticOCTDataModule  # noqa: E402
from sampling_argmax.methods import PAPER_METHODS  # noqa: E402
from sampling_argmax.metrics.oct import ordered_boundaries  # noqa: E402
from sampling_argmax.models.oct_net import OCTBoundaryNet  # noqa: E402


def map_statistics(prob: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Mean over all (B-scan, boundary, A-scan) maps: std and peak of p, mass within 1.5 rows of the truth, MADs."""
    n, k, h = prob.shape
    grid = np.arange(h)
    mean = (prob * grid).sum(-1)
    std = np.sqrt((prob * (grid - mean[..., None]) ** 2).sum(-1))
    target = truth.reshape(n, k)
    near = np.abs(grid[None, None] - target[..., None]) <= 1.5
    raw = mean.reshape(truth.shape)
    return {"std": float(std.mean()), "peak": float(prob.max(-1).mean()), "truth_mass": float((prob * near).sum(-1).mean()),
            "raw_mad_um": float(np.abs(raw - truth).mean() * 3.9),
            "mad_um": float(np.abs(ordered_boundaries(raw) - truth).mean() * 3.9)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--config", type=Path, default=Path("configs/synthetic_oct.yaml"))
    parser.add_argument("--sample", type=int, default=0, help="test B-scan to show")
    parser.add_argument("--boundary", type=int, default=8, help="boundary whose maps are shown (8 = BM)")
    args = parser.parse_args()
    config = yaml.safe_load(args.config.read_text())
    data = SyntheticOCTDataModule(**config["data"]["init_args"])
    item = data._materialized("test")[args.sample]
    image, truth = item["image"][None], item["truth"].numpy()
    width = truth.shape[1]
    test = data._materialized("test")
    images = torch.stack([test[i]["image"] for i in range(len(test))])
    truths = np.stack([test[i]["truth"].numpy() for i in range(len(test))])
    methods = [m for m in PAPER_METHODS if (args.report / "runs" / m / "seed0" / "checkpoints" / "last.ckpt").is_file()]
    rows, maps, stats = {}, {}, {}
    for method in methods:
        state = torch.load(args.report / "runs" / method / "seed0" / "checkpoints" / "last.ckpt", map_location="cpu",
                           weights_only=False)["state_dict"]
        net = OCTBoundaryNet(**config["model"]["model"]["init_args"])
        net.load_state_dict({k.removeprefix("model."): v for k, v in state.items() if k.startswith("model.")})
        with torch.no_grad():
            every = torch.softmax(net.eval()(images).double(), -1).numpy()  # (N, 9·W, H)
        prob = every[args.sample]
        stats[method] = map_statistics(every, truths)
        expectation = (prob * np.arange(prob.shape[-1])).sum(-1).reshape(9, width)
        rows[method] = ordered_boundaries(expectation)
        maps[method] = prob.reshape(9, width, -1)[args.boundary].T  # (H, W)
    fig, axes = plt.subplots(4, 3, figsize=(12, 10.5))
    scan = image[0, 0].numpy()
    for ax, method in zip(axes[:2].ravel(), methods):
        ax.imshow(scan, cmap="gray", aspect="auto", vmin=np.percentile(scan, 1), vmax=np.percentile(scan, 99.5))
        mad = np.abs(rows[method] - truth).mean() * 3.9
        for b in range(9):
            ax.plot(truth[b], color="lime", lw=0.9, ls="--")
            ax.plot(rows[method][b], color="red", lw=0.9)
        ax.set_title(f"{method}: MAD {mad:.1f} µm on this B-scan (green: truth, red: predicted)", fontsize=8)
        ax.set_xticks([])
    for ax, method in zip(axes[2:].ravel(), methods):
        p = maps[method]
        ax.imshow(np.log10(np.maximum(p, 1e-4)), cmap="magma", vmin=-4, vmax=0, aspect="auto", interpolation="nearest")
        ax.plot(truth[args.boundary], color="lime", lw=0.8, ls="--")
        ax.set_ylim(min(127.5, truth[args.boundary].max() + 20), max(-0.5, truth[args.boundary].min() - 20))
        spread = np.sqrt((p * (np.arange(p.shape[0])[:, None] - (p * np.arange(p.shape[0])[:, None]).sum(0)) ** 2)
                         .sum(0)).mean()
        ax.set_title(f"{method}: {BOUNDARY_NAMES[args.boundary]} maps per A-scan, log10 p in [-4, 0]; "
                     f"mean std {spread:.1f} rows", fontsize=8)
    for ax in axes.ravel()[len(methods):6]:
        ax.axis("off")
    fig.suptitle("Synthetic OCT test B-scan (128 rows x 64 A-scans, 3.9 µm/row): boundaries (rows 1-2) and the "
                 "learned per-column probability maps of one boundary (rows 3-4), seed 0", fontsize=9)
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=60)
    print("| over the test B-scans | " + " | ".join(methods) + " |")
    print("|---|" + "---|" * len(methods))
    for key, label in (("std", "map std (rows)"), ("peak", "map peak"), ("truth_mass", "mass within 1.5 rows of truth"),
                       ("raw_mad_um", "MAD without topology (µm)"), ("mad_um", "MAD (µm)")):
        print(f"| {label} | " + " | ".join(f"{stats[m][key]:.3f}" for m in methods) + " |")
    print(f"wrote {args.out} ({args.out.stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main()
