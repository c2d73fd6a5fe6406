"""Learned unsupervised keypoints and skeletons on several objects of a class (the supplementary's Figure 6 style).

One row per method, one column per test object: the cloud (grey), the decoded skeleton (segments between
keypoint pairs with their learned offsets, drawn with opacity = activation strength, those below
``--min_strength`` left out) and the K keypoints, keypoint i in the same colour on every object -- consistent
semantic placement across objects is what DAS measures. The row title gives the run's test DAS.

    python experiments/skeleton_figure.py reports/synthetic_skeleton --methods soft samp_gau --seed 0 \
        --samples 0 1 2 3 4 --out docs/skeleton_merger_synthetic.png

Reads ``<report>/runs/<method>/seed<s>/checkpoints/last.ckpt`` and ``<report>/runs.csv``. Also prints, per
method, over the whole test split: the spread of the keypoint maps (mean standard deviation of a map, object
units), the segments active per object, and for each keypoint the semantic id it is most often nearest to (its
share of the objects) and its mean distance to the nearest annotated keypoint in DAS's [-1, 1] frame.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np
import torch

from sampling_argmax.data.synthetic_points import KEYPOINT_NAMES
from sampling_argmax.metrics.das import nearest_semantic_ids, normalize_min_max
from sampling_argmax.training.trained import load_trained

ORDER = ("soft", "soft_vr", "soft_dr", "samp_gau")


@torch.no_grad()
def predict(checkpoint: Path, samples: list[int]) -> dict[str, np.ndarray]:
    module, datamodule = load_trained(checkpoint)
    module.eval()
    datamodule.setup("test")
    dataset = datamodule.test_dataloader().dataset
    batch = torch.utils.data.default_collate([dataset[n] for n in samples])
    points = batch["points"]
    logits, strength = module.model.encode(points)
    keypoints = module.method.predict(logits, points)
    return {"points": points.numpy(), "keypoints": keypoints.numpy(), "strength": strength.numpy(),
            "skeleton": module.model.skeleton(keypoints).numpy()}


@torch.no_grad()
def summarize(checkpoint: Path, min_strength: float) -> str:
    """The test split's keypoint statistics of one run (see the module docstring)."""
    module, datamodule = load_trained(checkpoint)
    module.eval()
    datamodule.setup("test")
    dataset = datamodule.test_dataloader().dataset
    batch = torch.utils.data.default_collate([dataset[n] for n in range(len(dataset))])
    points = batch["points"]
    logits, strength = module.model.encode(points)
    prob = torch.softmax(logits.float(), -1)[..., None]  # (M, K, N, 1)
    mean = (prob * points[:, None]).sum(2, keepdim=True)
    spread = (prob * (points[:, None] - mean).square()).sum((2, 3)).sqrt().mean()
    pred = module.method.predict(logits, points).numpy()
    _, pred, truth = normalize_min_max(points.numpy(), pred, batch["gt_keypoints"].numpy())
    weight = batch["gt_weight"].numpy()
    labels = nearest_semantic_ids(pred, truth, weight)
    distance = np.where(weight[:, None] > 0, np.linalg.norm(pred[:, :, None] - truth[:, None], axis=-1), np.inf).min(-1)
    names = KEYPOINT_NAMES.get(getattr(datamodule, "category", ""), ())
    lines = [f"map std {float(spread):.3f}, segments active (>= {min_strength}) "
             f"{float((strength >= min_strength).float().sum(1).mean()):.1f} of {strength.shape[1]}"]
    for k in range(labels.shape[1]):
        counts = np.bincount(labels[:, k][labels[:, k] >= 0], minlength=1)
        top = int(counts.argmax())
        name = names[top] if top < len(names) else f"id {top}"
        lines.append(f"  keypoint {k}: {name} on {100 * counts[top] / counts.sum():.0f}% of objects, "
                     f"distance {distance[:, k].mean():.2f}")
    return "\n".join(lines)


def test_das(report: Path, method: str, seed: int) -> str:
    runs = report / "runs.csv"
    if not runs.is_file():
        return ""
    with open(runs) as handle:
        for row in csv.DictReader(handle):
            if row.get("method") == method and str(row.get("seed")) == str(seed) and row.get("das"):
                return f"DAS {float(row['das']):.3f} (fwd {float(row['das_forward']):.3f}, bwd {float(row['das_backward']):.3f})"
    return ""


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", type=Path)
    parser.add_argument("--methods", nargs="+", default=list(ORDER))
    parser.add_argument("--samples", type=int, nargs="+", default=[0, 1, 2, 3, 4], help="test objects, one column each")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--min_strength", type=float, default=0.5, help="segments below this activation are hidden")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    checkpoints = {m: args.report / "runs" / m / f"seed{args.seed}" / "checkpoints" / "last.ckpt" for m in args.methods}
    methods = [m for m in args.methods if checkpoints[m].is_file()]
    if not methods:
        raise SystemExit(f"{args.report}/runs/<method>/seed{args.seed}/checkpoints/last.ckpt: none found for {args.methods}")
    results = {m: predict(checkpoints[m], args.samples) for m in methods}
    for m in methods:
        print(f"{m} seed {args.seed}: {summarize(checkpoints[m], args.min_strength)}")
    rows, cols = len(methods), len(args.samples)
    fig = plt.figure(figsize=(3.2 * cols, 2.6 * rows))
    for r, method in enumerate(methods):
        result = results[method]
        colors = plt.get_cmap("tab10")(np.arange(result["keypoints"].shape[1]) % 10)
        for c, n in enumerate(args.samples):
            ax = fig.add_subplot(rows, cols, r * cols + c + 1, projection="3d")
            cloud, keypoints = result["points"][c], result["keypoints"][c]
            # x right, z (front) into the page, y up: ShapeNet's frame
            ax.scatter(cloud[:, 0], cloud[:, 2], cloud[:, 1], color="0.75", s=1, depthshade=False)
            for segment, strength in zip(result["skeleton"][c], result["strength"][c]):
                if strength >= args.min_strength:
                    ax.plot(segment[:, 0], segment[:, 2], segment[:, 1], color="k", alpha=float(strength) * 0.6, lw=0.8)
            ax.scatter(keypoints[:, 0], keypoints[:, 2], keypoints[:, 1], c=colors, s=30, edgecolors="k",
                       linewidths=0.4, depthshade=False)
            lo, hi = cloud.min(0)[[0, 2, 1]], cloud.max(0)[[0, 2, 1]]
            ax.set_xlim(lo[0], hi[0]), ax.set_ylim(lo[1], hi[1]), ax.set_zlim(lo[2], hi[2])
            ax.set_box_aspect(hi - lo, zoom=1.3)  # equal scale on the three axes, the object filling the panel
            ax.view_init(elev=35, azim=-55)
            ax.set_axis_off()
            if c == 0:
                ax.text2D(0.0, 1.0, f"{method} (seed {args.seed})\n{test_das(args.report, method, args.seed)}",
                          transform=ax.transAxes, fontsize=7, va="top")
            else:
                ax.text2D(0.0, 1.0, f"test #{n}", transform=ax.transAxes, fontsize=7, va="top")
    fig.suptitle("unsupervised keypoints (colour = keypoint index, the same on every object) and the skeleton "
                 f"(segments with activation >= {args.min_strength}, opacity = activation)", fontsize=8)
    fig.tight_layout()
    out = args.out or args.report / "skeletons.png"
    fig.savefig(out, dpi=80)
    print(out)


if __name__ == "__main__":
    main()
