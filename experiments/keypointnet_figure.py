"""A point-set figure for a compare report: one cloud per row, one method per column; each panel shows the
cloud coloured by one keypoint's per-point probability (log scale), the true keypoints (green circles) and the
predicted ones (crosses), in a 3D view.

    python experiments/keypointnet_figure.py reports/synthetic_points [--sample 0] [--keypoint K] [--seed 0]

Reads ``runs/<method>/seed<s>/checkpoints/last.ckpt`` of each method in the report, writes
``<report>/keypoints_3d.png``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from sampling_argmax.training.trained import load_trained

ORDER = ("soft", "soft_vr", "soft_dr", "samp_uni", "samp_tri", "samp_gau")


@torch.no_grad()
def predict(checkpoint: Path, samples: list[int]):
    module, datamodule = load_trained(checkpoint)
    module.eval()
    datamodule.setup("test")
    dataset = datamodule.test_dataloader().dataset
    batch = torch.utils.data.default_collate([dataset[n] for n in samples])
    out = module.read_out(batch, datamodule)
    prob = torch.softmax(out.logits.float(), -1)
    pred = out.pred_grid
    names = datamodule.references("test").get("categories", [])
    return batch, prob.numpy(), pred.numpy(), names


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", type=Path)
    parser.add_argument("--samples", type=int, nargs="+", default=[0, 1, 2], help="test objects, one row each")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = [m for m in ORDER if (args.report / "runs" / m / f"seed{args.seed}" / "checkpoints" / "last.ckpt").is_file()]
    if not methods:
        raise SystemExit(f"{args.report}/runs/<method>/seed{args.seed}/checkpoints/last.ckpt: none found")
    results = {m: predict(args.report / "runs" / m / f"seed{args.seed}" / "checkpoints" / "last.ckpt", args.samples)
               for m in methods}
    fig = plt.figure(figsize=(3.0 * len(methods), 2.9 * len(args.samples)))
    for r, n in enumerate(args.samples):
        for c, method in enumerate(methods):
            batch, prob, pred, names = results[method]
            cloud, weight = batch["points"][r].numpy(), batch["target_weight"][r].numpy()
            target = batch["target"][r].numpy()
            labeled = np.flatnonzero(weight > 0)
            # the keypoint shown: the labeled one the first method gets most wrong (the same in every column)
            first = results[methods[0]]
            errors = np.linalg.norm(first[2][r] - first[0]["target"][r].numpy(), axis=-1)
            k = int(labeled[np.argmax(errors[labeled])])
            # log scale: 1 at the peak, 0 at 1/1000 of it and below (those points stay grey)
            heat = np.clip(1 + np.log10(np.maximum(prob[r, k] / prob[r, k].max(), 1e-12)) / 3, 0, 1)
            hot = np.flatnonzero(heat > 0)
            hot = hot[np.argsort(heat[hot])]
            ax = fig.add_subplot(len(args.samples), len(methods), r * len(methods) + c + 1, projection="3d")
            # x right, z (front) into the page, y up: ShapeNet's frame
            ax.scatter(cloud[:, 0], cloud[:, 2], cloud[:, 1], color="0.8", s=1, depthshade=False)
            ax.scatter(cloud[hot, 0], cloud[hot, 2], cloud[hot, 1], c=heat[hot], cmap="plasma", vmin=0, vmax=1,
                       s=8, depthshade=False)
            ax.scatter(*target[labeled][:, [0, 2, 1]].T, s=40, facecolors="none", edgecolors="lime", linewidths=1.2)
            ax.scatter(*pred[r][labeled][:, [0, 2, 1]].T, s=25, marker="x", color="cyan")
            ax.scatter(*pred[r][k, [0, 2, 1]], s=60, marker="x", color="red")
            ax.view_init(elev=20, azim=-60)
            ax.set_axis_off()
            category = names[int(batch["category"][r])] if names else ""
            if r == 0:
                ax.set_title(method, fontsize=10)
            ax.text2D(0.0, 0.95, f"#{n} {category} kp {k}", transform=ax.transAxes, fontsize=7)
    fig.suptitle("colour: p / max p of the keypoint named in the panel, log scale 1e-3 (dark) .. 1 (yellow),\ngrey "
                 "below; red x: its prediction; green o: truth; cyan x: the other predictions", fontsize=8)
    fig.tight_layout()
    out = args.out or args.report / "keypoints_3d.png"
    fig.savefig(out, dpi=72)
    print(out)


if __name__ == "__main__":
    main()
