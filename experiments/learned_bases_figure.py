"""Figure of issue 18: the learned per-cell laws next to a fixed basis, on the coarse synthetic maps.

For a few test images of a report made by experiments/learned_bases.sh: one landmark's x-marginal density
p(x) = sum_c pi_c f_c(x - c_x) on a fine axis around the target (cells are 4 px), for each checkpoint given,
with the cell centres, the target and the read-out. Thin curves: each column of cells' contribution
(its cells' laws weighted by their probabilities): a fixed basis repeats one shape at every centre; a
learned one shifts and narrows it, so the read-out can sit between centres.

Usage::

    python experiments/learned_bases_figure.py reports/learned_bases samp_tri samp_lgau samp_lspline
    # -> reports/learned_bases/learned_bases.png
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from sampling_argmax.bases import get_basis  # noqa: E402
from sampling_argmax.methods import LearnedBasisMethod  # noqa: E402
from sampling_argmax.training.trained import load_trained  # noqa: E402

NUM_IMAGES, KEYPOINT, SEED = 4, 0, "seed0"


@torch.no_grad()
def densities(checkpoint: Path, num_images: int):
    """Per image: (x axis, mixture density, per-cell weighted laws (M, X), target x, read-out x, cell centres)."""
    module, datamodule = load_trained(checkpoint)
    module.eval()
    datamodule.setup("test")
    batch = next(iter(datamodule.test_dataloader()))
    output = module.evaluation_logits(batch, datamodule)[:num_images, KEYPOINT:KEYPOINT + 1]
    method = module.method
    logits = method.maps(output)  # (N, 1, H, W)
    prob = torch.softmax(logits.flatten(2), -1)[:, 0]  # (N, M)
    height, width = logits.shape[-2:]
    centres_x = torch.arange(width, dtype=torch.float32).repeat(height)  # cell (i, j) -> x centre j
    axis = torch.linspace(-1.0, width, 600)
    offsets = axis[None, :] - centres_x[:, None]  # (M, X)
    if isinstance(method, LearnedBasisMethod):
        params = method._split(output)[1][:, 0, 0]  # x-axis parameters (N, P, H, W)
        params = params.flatten(2).transpose(1, 2)  # (N, M, P)
        laws = method.basis.pdf(params[:, :, None, :].expand(-1, -1, len(axis), -1), offsets[None])
    else:
        basis = get_basis(method.basis, method.sigma or 1.0)
        laws = basis.pdf(offsets)[None].expand(len(prob), -1, -1)
    weighted = prob[:, :, None] * laws  # (N, M, X)
    columns = weighted.unflatten(1, (height, width)).sum(1)  # each column's contribution (N, W, X)
    pred = method.predict(output)[:, 0, 0]
    return axis, weighted.sum(1), columns, batch["target"][:num_images, KEYPOINT, 0], pred, method.name


def main(report: Path, methods: list[str]) -> Path:
    rows = [densities(report / "runs" / m / SEED / "checkpoints" / "last.ckpt", NUM_IMAGES) for m in methods]
    fig, axes = plt.subplots(len(rows), NUM_IMAGES, figsize=(3.2 * NUM_IMAGES, 2.4 * len(rows)), squeeze=False)
    for r, (axis, mixture, weighted, target, pred, name) in enumerate(rows):
        for i in range(NUM_IMAGES):
            ax = axes[r, i]
            lo, hi = float(target[i]) - 2.5, float(target[i]) + 2.5
            keep = (axis >= lo) & (axis <= hi)
            for cell in weighted[i]:
                if float(cell[keep].max()) > 1e-3:
                    ax.plot(axis[keep], cell[keep], lw=0.7, color="0.6")
            ax.plot(axis[keep], mixture[i][keep], lw=1.6, color="C0", label="p(x)")
            for centre in range(int(lo) + 1, int(hi) + 1):
                ax.axvline(centre, color="0.85", lw=0.8, zorder=0)
            ax.axvline(float(target[i]), color="C2", lw=1.4, label="target")
            ax.axvline(float(pred[i]), color="C3", lw=1.4, ls="--", label="read-out")
            ax.set_xlim(lo, hi)
            ax.set_yticks([])
            if i == 0:
                ax.set_ylabel(name)
            if r == 0:
                ax.set_title(f"test image {i}, landmark {KEYPOINT}: x (cells)", fontsize=9)
    axes[0, -1].legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    out = report / "learned_bases.png"
    fig.savefig(out, dpi=110)
    return out


if __name__ == "__main__":
    print(main(Path(sys.argv[1]), sys.argv[2:] or ["samp_tri", "samp_lgau", "samp_lspline"]))
