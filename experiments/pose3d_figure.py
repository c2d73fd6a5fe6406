"""A 3D-pose figure for a compare report (synthetic_pose3d or h36m): per test sample, one row per method with
the input crop and the predicted (red) vs true (green) 2D skeleton, the 3D skeletons in camera space
(root-aligned, mm, seen from above-front), and the learned volume of one joint as its x-y and x-z
projections (probabilities summed over the other axis) with the true joint marked.

    python experiments/pose3d_figure.py reports/synthetic_pose3d [--samples 0 1] [--methods soft samp_tri]
        [--joint 16] [--seed 0] [--out docs/synthetic_pose3d.png] [--baseline 1000]

Reads ``runs/<method>/seed<s>/checkpoints/last.ckpt`` of the report; writes ``<report>/pose3d.png`` by default.
``--baseline N`` also prints the errors of always predicting the mean root-relative pose of N training samples
(at the true root), the level a model that learned nothing from the image reaches.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from sampling_argmax.data.h36m_files import BONES, JOINT_NAMES
from sampling_argmax.metrics.pose3d import back_project, mpjpe, pa_mpjpe
from sampling_argmax.training.trained import load_trained

LABELS = {"soft": "Soft", "soft_vr": "Soft w/ V.R.", "soft_dr": "Soft w/ D.R.", "samp_uni": "Samp. Uni.",
          "samp_tri": "Samp. Tri.", "samp_gau": "Samp. Gau."}
MEAN, STD = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])


@torch.no_grad()
def predict(checkpoint: Path, samples: list[int]) -> dict:
    module, datamodule = load_trained(checkpoint)
    module.eval()
    datamodule.setup("test")
    dataset = datamodule.test_dataloader().dataset
    batch = torch.utils.data.default_collate([dataset[n] for n in samples])
    out = module.read_out(batch, datamodule)
    logits, grid, uvz = out.logits, out.pred_grid, out.pred.numpy()
    cam = back_project(uvz, batch["root_depth"].numpy(), batch["focal"].numpy(), batch["principal"].numpy())
    prob = torch.softmax(logits.float().flatten(2), -1).reshape(logits.shape).numpy()
    return {"batch": batch, "grid": grid.numpy(), "cam": cam, "prob": prob}


def mean_pose_baseline(checkpoint: Path, count: int) -> tuple[float, float]:
    """MPJPE and PA-MPJPE (17 joints) of predicting the mean root-relative pose of ``count`` training samples."""
    _, datamodule = load_trained(checkpoint)
    train, test = datamodule.dataset("train"), datamodule.dataset("test")
    poses = np.stack([train[i]["joints_cam"].numpy() for i in range(min(count, len(train)))])
    mean = (poses - poses[:, :1]).mean(0)
    truth = np.stack([test[i]["joints_cam"].numpy() for i in range(len(test))])[:, :17]
    guess = np.broadcast_to(mean[:17], truth.shape) + truth[:, :1]
    return float(mpjpe(guess, truth).mean()), float(pa_mpjpe(guess, truth).mean())


def _skeleton(ax, points, colour, **kwargs):
    for a, b in BONES:
        ax.plot(*np.stack([points[a], points[b]]).T, color=colour, **kwargs)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", type=Path)
    parser.add_argument("--samples", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--methods", nargs="+", default=["soft", "samp_tri"])
    parser.add_argument("--joint", type=int, default=16, help=f"joint whose volume is shown (16 = {JOINT_NAMES[16]})")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--baseline", type=int, default=0, help="training samples for the mean-pose errors (0 = skip)")
    args = parser.parse_args(argv)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    checkpoints = {m: args.report / "runs" / m / f"seed{args.seed}" / "checkpoints" / "last.ckpt" for m in args.methods}
    missing = [str(p) for p in checkpoints.values() if not p.is_file()]
    if missing:
        raise SystemExit(f"no checkpoint {missing[0]}: run `sampling-argmax compare` into {args.report} first")
    if args.baseline:
        errors = mean_pose_baseline(next(iter(checkpoints.values())), args.baseline)
        print(f"mean pose of {args.baseline} training samples: MPJPE {errors[0]:.1f} mm, PA-MPJPE {errors[1]:.1f} mm")
    results = {m: predict(p, args.samples) for m, p in checkpoints.items()}
    rows = [(r, m) for r in range(len(args.samples)) for m in args.methods]
    fig = plt.figure(figsize=(11.5, 2.7 * len(rows)))
    k = args.joint
    for i, (r, method) in enumerate(rows):
        res = results[method]
        batch = res["batch"]
        truth_cam = batch["joints_cam"][r].numpy()
        error = mpjpe(res["cam"][r : r + 1, :17], truth_cam[None, :17])[0]
        pixels = np.linalg.norm(res["grid"][r][:17, :2] - batch["target"][r].numpy()[:17, :2], axis=-1).mean()
        image = np.clip(batch["image"][r].numpy().transpose(1, 2, 0) * STD + MEAN, 0, 1)
        size, cells = image.shape[0], res["prob"].shape[-1]
        to_pixels = lambda cell: (cell + 0.5) * size / cells - 0.5  # noqa: E731 (map cells -> crop pixels)
        ax = fig.add_subplot(len(rows), 4, 4 * i + 1)
        ax.imshow(image)
        _skeleton(ax, to_pixels(batch["target"][r].numpy()[:, :2]), "lime", lw=1.5)
        _skeleton(ax, to_pixels(res["grid"][r][:, :2]), "red", lw=1.2)
        pixels *= size / cells  # map cells -> crop pixels
        ax.set_title(f"{LABELS.get(method, method)}, sample {args.samples[r]}: MPJPE {error:.0f} mm, 2D {pixels:.1f} px",
                     fontsize=8)
        ax.set_axis_off()
        ax = fig.add_subplot(len(rows), 4, 4 * i + 2, projection="3d")
        poses = [(pose - pose[0])[:, [0, 2, 1]] * np.array([1, 1, -1]) for pose in (truth_cam, res["cam"][r])]
        for pose, colour in zip(poses, ("green", "red")):  # x right, depth into the page, y up
            _skeleton(ax, pose, colour, lw=1.2)
        reach = max(np.abs(pose).max() for pose in poses)
        ax.set(xlim=(-reach, reach), ylim=(-reach, reach), zlim=(-reach, reach))
        ax.set_box_aspect((1, 1, 1))
        ax.view_init(elev=15, azim=-70)
        ax.set_title("3D, root-aligned (green: true)", fontsize=8)
        ax.tick_params(labelsize=5)
        volume = res["prob"][r, k]  # (D, H, W)
        target = batch["target"][r, k].numpy()
        for c, (marginal, xy, name) in enumerate(((volume.sum(0), target[[0, 1]], "x-y (summed over depth)"),
                                                  (volume.sum(1), target[[0, 2]], "x-z (summed over y)"))):
            ax = fig.add_subplot(len(rows), 4, 4 * i + 3 + c)
            ax.imshow(marginal, cmap="magma", origin="upper" if c == 0 else "lower")
            ax.scatter(*xy, s=40, facecolors="none", edgecolors="lime")
            ax.scatter(*res["grid"][r, k][[0, 1] if c == 0 else [0, 2]], s=30, marker="x", color="cyan")
            ax.set_title(f"{JOINT_NAMES[k]} volume, {name}", fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
    fig.tight_layout()
    out = args.out or args.report / "pose3d.png"
    fig.savefig(out, dpi=90)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
