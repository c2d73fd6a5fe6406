"""Reports: the comparison table (Markdown/CSV) and figures of learned probability maps and predictions.

``sampling-argmax visualize --ckpt_path runs/synthetic2d/samp_tri/checkpoints/last.ckpt`` draws the
figures for any trained :class:`~sampling_argmax.training.LocalizationModule`.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from sampling_argmax.data.base import input_key
from sampling_argmax.metrics import binned_by_confidence, instance_confidence, instance_errors, pearson
from sampling_argmax.training.checkpoints import check_output_folder
from sampling_argmax.training.trained import load_trained

__all__ = [
    "Cell",
    "MapSnapshot",
    "snapshot_maps",
    "summarize",
    "format_markdown",
    "write_table",
    "plot_maps",
    "plot_predictions",
    "pick_inputs",
    "calibration_points",
    "plot_calibration",
    "visualize_main",
]


# ---------------------------------------------------------------------------------------------- tables


@dataclass
class Cell:
    """One metric of one method over its runs: mean ± std over the runs where it is a number, and the runs
    where it is not, by reason (``undefined``: reason -> runs; ``unexplained``: NaN without a recorded reason)."""

    mean: float
    std: float
    count: int
    undefined: dict[str, int]
    unexplained: int = 0

    def __iter__(self):  # (mean, std, count), as the tuples this replaced
        return iter((self.mean, self.std, self.count))

    def __getitem__(self, index):
        return (self.mean, self.std, self.count)[index]


def summarize(runs: Sequence[Mapping], methods: Sequence[str], metrics: Sequence[str]) -> dict[str, dict[str, Cell]]:
    """metric -> method -> :class:`Cell` (std with ddof=1; 0 for one run).

    A run's NaN metric counts as undefined when the run records why (``run["undefined"][metric]``, written by
    :class:`~sampling_argmax.training.module.LocalizationModule`), else as unexplained; neither is averaged,
    and both are shown, never dropped silently.
    """
    table: dict[str, dict[str, Cell]] = {}
    for metric in metrics:
        table[metric] = {}
        for method in methods:
            values, undefined, unexplained = [], {}, 0
            for run in runs:
                if run.get("method") != method or metric not in run:
                    continue
                value = float(run[metric]) if run[metric] is not None else math.nan
                if math.isfinite(value):
                    values.append(value)
                elif reason := (run.get("undefined") or {}).get(metric):
                    undefined[reason] = undefined.get(reason, 0) + 1
                else:
                    unexplained += 1
            array = np.array(values, float)
            mean = float(array.mean()) if array.size else math.nan
            std = (float(array.std(ddof=1)) if array.size > 1 else 0.0) if array.size else math.nan
            table[metric][method] = Cell(mean, std, int(array.size), undefined, unexplained)
    return table


def _cell(cell: Cell, digits: int, notes: dict[str, int]) -> str:
    marks = [f"[{notes.setdefault(reason, len(notes) + 1)}]" for reason in cell.undefined]
    if cell.unexplained:
        marks.append(f"[{notes.setdefault(UNEXPLAINED, len(notes) + 1)}]")
    if cell.count == 0:
        return ("undefined " + " ".join(marks)) if marks else "–"
    text = f"{cell.mean:.{digits}f} ± {cell.std:.{digits}f}" if cell.count > 1 else f"{cell.mean:.{digits}f}"
    if marks:
        total = cell.count + sum(cell.undefined.values()) + cell.unexplained
        text += f" ({cell.count} of {total} runs; others undefined {' '.join(marks)})"
    return text


UNEXPLAINED = ("NaN in the run's result without a recorded reason (written by an older version); re-test the run "
               "(compare --resume) to record why")


def format_markdown(table: Mapping[str, Mapping[str, Cell]], methods: Sequence[str],
                    labels: Mapping[str, str] | None = None, digits: int = 3) -> str:
    """The paper's layout: one row per metric, one column per method, mean ± std over seeds; an undefined
    value gets a numbered note below the table saying why."""
    labels = labels or {}
    notes: dict[str, int] = {}
    lines = ["| metric | " + " | ".join(methods) + " |", "|---|" + "---|" * len(methods)]
    for metric, row in table.items():
        cells = [_cell(row[m], digits, notes) for m in methods]
        lines.append(f"| {labels.get(metric, metric)} | " + " | ".join(cells) + " |")
    if notes:
        lines.append("")
        lines += [f"[{number}] undefined: {reason}" for reason, number in notes.items()]
    return "\n".join(lines) + "\n"


def write_table(out: Path, runs: Sequence[Mapping], methods: Sequence[str],
                metrics: Sequence[str], labels: Mapping[str, str] | None = None, header: str = "") -> str:
    """Write table.md, table.csv (same layout, mean and std columns, and why a value is undefined) and
    runs.csv (one row per run)."""
    out.mkdir(parents=True, exist_ok=True)
    table = summarize(runs, methods, metrics)
    markdown = format_markdown(table, methods, labels)
    (out / "table.md").write_text(header + markdown)
    with open(out / "table.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["metric"] + [f"{m}_{s}" for m in methods for s in ("mean", "std")] + ["seeds", "undefined"])
        for metric, row in table.items():
            cells = [f"{v:.6g}" for m in methods for v in (row[m].mean, row[m].std)]
            why = "; ".join(f"{m}: {reason}" for m in methods for reason in row[m].undefined)
            why += "".join(f"; {m}: {UNEXPLAINED}" for m in methods if row[m].unexplained)
            writer.writerow([metric, *cells, max(row[m].count for m in methods), why.strip("; ")])
    keys = list(dict.fromkeys(k for run in runs for k in run))
    with open(out / "runs.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=keys)
        writer.writeheader()
        writer.writerows({k: (json.dumps(v) if isinstance(v, (dict, list)) else v) for k, v in run.items()}
                         for run in runs)
    return markdown


# ---------------------------------------------------------------------------------------------- map snapshots


@dataclass
class MapSnapshot:
    """What the figures need from one trained model on a few fixed inputs (all numpy).

    images (N, C, *grid_in) for grid inputs, or the clouds (N, P, d) for point sets; prob (N, K, *map)
    probability maps (over the P points for point sets); pred, target (N, K, dims) in map units;
    points: True when the inputs are point sets.
    """

    name: str
    images: np.ndarray
    prob: np.ndarray
    pred: np.ndarray
    target: np.ndarray
    points: bool = False


@torch.no_grad()
def snapshot_maps(module, datamodule, num_samples: int = 4, split: str = "val") -> MapSnapshot:
    """Run ``module`` (eval mode, flip test as configured) on the first ``num_samples`` of ``split``."""
    if split not in ("val", "test"):
        raise ValueError(f"split={split!r} must be 'val' or 'test'")
    datamodule.setup("validate" if split == "val" else "test")
    loader = datamodule.val_dataloader() if split == "val" else datamodule.test_dataloader()
    inputs, targets, key = [], [], None
    for batch in loader:
        key = input_key(batch)
        inputs.append(batch[key])
        targets.append(batch["target"])
        if sum(len(i) for i in inputs) >= num_samples:
            break
    was_training = module.training
    module.eval()
    device = next(module.parameters()).device
    batch = {key: torch.cat(inputs)[:num_samples].to(device)}
    target = torch.cat(targets)[:num_samples]
    out = module.read_out(batch, datamodule, check_finite=False)
    module.train(was_training)
    logits = module.method.maps(out.logits)
    size, keypoints = logits.shape[:2]
    prob = torch.softmax(logits.float().reshape(size, keypoints, -1), -1).reshape(logits.shape)
    pred = out.pred_grid
    return MapSnapshot(
        name=getattr(module.method, "name", type(module.method).__name__),
        images=batch[key].float().cpu().numpy(), prob=prob.cpu().numpy(), pred=pred.float().cpu().numpy(),
        target=target.float().cpu().numpy(), points=key == "points",
    )


# ---------------------------------------------------------------------------------------------- figures


def _display(image: np.ndarray) -> np.ndarray:
    """(C, *grid) normalized input -> (*grid) or (*grid, 3) in [0, 1] for imshow."""
    image = image.mean(0) if image.shape[0] != 3 else np.moveaxis(image, 0, -1)
    low, high = np.percentile(image, [1, 99])
    return np.clip((image - low) / max(high - low, 1e-6), 0, 1)


def _to_input(coords: np.ndarray, grid_shape: Sequence[int], input_shape: Sequence[int]) -> np.ndarray:
    """Grid-cell coordinates (x, y, z order) -> input pixels, assuming the map covers the whole input."""
    sizes_xyz = np.array(list(grid_shape)[::-1], float)
    inputs_xyz = np.array(list(input_shape)[::-1], float)
    stride = inputs_xyz / sizes_xyz
    return (coords + 0.5) * stride - 0.5


def _keypoint_colors(count: int):
    import matplotlib.pyplot as plt

    return [plt.get_cmap("tab10")(k % 10) for k in range(count)]


def _panel(ax, snap: MapSnapshot, n: int, keypoint: int | None) -> None:
    """Draw sample n: the input and the map of ``keypoint`` (None = predictions of all keypoints)."""
    if snap.points:
        _points_panel(ax, snap, n, keypoint)
        return
    image, prob = snap.images[n], snap.prob[n]
    pred_cells, target_cells = snap.pred[n], snap.target[n]
    if prob.ndim == 4 and image.ndim == 3:  # volumes read from an image (3D pose): their x-y marginal over depth
        prob, pred_cells, target_cells = prob.sum(axis=1), pred_cells[:, :2], target_cells[:, :2]
    grid_shape, input_shape = prob.shape[1:], image.shape[1:]
    dims = len(grid_shape)
    pred = _to_input(pred_cells, grid_shape, input_shape)
    target = _to_input(target_cells, grid_shape, input_shape)
    colors = _keypoint_colors(prob.shape[0])
    chosen = range(prob.shape[0]) if keypoint is None else [keypoint]
    if dims == 1:
        signal = image.mean(0)
        ax.plot(signal, color="0.6", lw=0.7)
        twin = ax.twinx()
        for k in chosen:
            x = _to_input(np.arange(grid_shape[0], dtype=float)[:, None], grid_shape, input_shape)[:, 0]
            twin.fill_between(x, prob[k], color=colors[k], alpha=0.5)
            ax.axvline(target[k, 0], color=colors[k], ls="--", lw=1)
            ax.axvline(pred[k, 0], color=colors[k], lw=1)
        twin.set_yticks([])
        ax.set_yticks([])
        return
    if dims == 3:  # seen along z: the input's maximum-intensity projection, the map's x-y marginal
        image, prob = image.max(axis=1), prob.sum(axis=1)
        pred, target = pred[:, :2], target[:, :2]
        input_shape = image.shape[1:]
    height, width = input_shape
    extent = (-0.5, width - 0.5, height - 0.5, -0.5)
    ax.imshow(_display(image), cmap="gray", extent=extent)
    if keypoint is not None:
        # square root of p / max p: secondary modes with a few percent of the mass stay visible
        heat = np.sqrt(prob[keypoint] / max(prob[keypoint].max(), 1e-12))
        ax.imshow(heat, cmap="magma", alpha=np.clip(heat, 0, 1) * 0.9, extent=extent, interpolation="nearest")
    for k in chosen:
        ax.scatter(*target[k, :2], s=40, facecolors="none", edgecolors="lime", linewidths=1.2)
        ax.scatter(*pred[k, :2], s=30, marker="x", color=colors[k] if keypoint is None else "cyan", linewidths=1.2)
    ax.set_xticks([])
    ax.set_yticks([])


def _points_panel(ax, snap: MapSnapshot, n: int, keypoint: int | None) -> None:
    """A point set seen from above (x, y): points coloured by one keypoint's probability, or grey."""
    cloud, prob = snap.images[n], snap.prob[n]
    if keypoint is None:
        ax.scatter(cloud[:, 0], cloud[:, 1], s=2, color="0.7")
    else:
        heat = np.sqrt(prob[keypoint] / max(prob[keypoint].max(), 1e-12))
        order = np.argsort(heat)  # the likeliest points on top
        ax.scatter(cloud[order, 0], cloud[order, 1], s=3, c=heat[order], cmap="magma")
    colors = _keypoint_colors(prob.shape[0])
    for k in range(prob.shape[0]) if keypoint is None else [keypoint]:
        ax.scatter(*snap.target[n, k, :2], s=40, facecolors="none", edgecolors="lime", linewidths=1.2)
        ax.scatter(*snap.pred[n, k, :2], s=30, marker="x", color=colors[k] if keypoint is None else "cyan")
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])


def pick_inputs(snapshots: Sequence[MapSnapshot], count: int) -> list[tuple[int, int, str]]:
    """Columns to show: (sample, keypoint, label).

    Half "typical" (the first samples, keypoint = column mod K), half "hard" (the samples whose worst
    keypoint has the largest median error over the methods, that keypoint shown), so the figure shows
    both the usual maps and how each method's map behaves where the input is ambiguous.
    """
    samples, keypoints = snapshots[0].pred.shape[:2]
    count = min(count, samples)
    typical = [(n, n % keypoints, "typical") for n in range((count + 1) // 2)]
    errors = np.stack([np.linalg.norm(s.pred - s.target, axis=-1) for s in snapshots])  # (methods, N, K)
    median = np.median(errors, axis=0)
    chosen = {n for n, _, _ in typical}
    hard = [(int(n), int(median[n].argmax()), "hard") for n in np.argsort(-median.max(1)) if n not in chosen]
    return typical + hard[: count - len(typical)]


def plot_maps(snapshots: Sequence[MapSnapshot], path: Path, count: int = 6, title: str = "") -> Path:
    """Rows: methods; columns: inputs (see :func:`pick_inputs`), each with one keypoint's map.

    Green circle = ground truth, cyan cross = prediction (the map's expectation).
    """
    return _grid_figure(
        snapshots, path, pick_inputs(snapshots, count),
        title or "Learned probability maps, sqrt(p / max p) (green o: target, cyan x: prediction)", with_map=True,
    )


def plot_predictions(snapshots: Sequence[MapSnapshot], path: Path, count: int = 6, title: str = "") -> Path:
    """Rows: methods; columns: the same inputs as :func:`plot_maps` with every keypoint (x) and truth (o)."""
    return _grid_figure(snapshots, path, pick_inputs(snapshots, count),
                        title or "Predictions (x) and ground truth (o)", with_map=False)


def _grid_figure(snapshots: Sequence[MapSnapshot], path: Path, picks: Sequence[tuple[int, int, str]], title: str,
                 with_map: bool) -> Path:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    if not snapshots:
        raise ValueError("no snapshots to plot; train at least one model first")
    rows, cols = len(snapshots), len(picks)
    dims = 2 if snapshots[0].points else snapshots[0].prob.ndim - 2
    cell = (3.2, 1.3) if dims == 1 else (2.0, 2.0)
    fig, axes = plt.subplots(rows, cols, figsize=(cell[0] * cols + 0.8, cell[1] * rows + 0.6), squeeze=False)
    for r, snap in enumerate(snapshots):
        for c, (sample, keypoint, label) in enumerate(picks):
            _panel(axes[r, c], snap, sample, keypoint if with_map else None)
            if r == 0:
                axes[r, c].set_title(f"{label} #{sample}" + (f", kp {keypoint}" if with_map else ""), fontsize=8)
        axes[r, 0].set_ylabel(snap.name, fontsize=9)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


# ---------------------------------------------------------------------------------------------- calibration


def calibration_points(outputs: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Per instance: (mean keypoint confidence (N,), mean keypoint error in grid cells (N,)).

    From the gathered evaluation outputs of :class:`~sampling_argmax.training.LocalizationModule`
    ("confidence", "pred_grid", "target", optional "target_weight"); grid cells, so every task
    draws the same figure.
    """
    weight = outputs.get("target_weight")
    return (instance_confidence(outputs["confidence"], weight),
            instance_errors(outputs["pred_grid"], outputs["target"], weight))


def plot_calibration(points: Mapping[str, Sequence[tuple[np.ndarray, np.ndarray]]], path: Path, bins: int = 10,
                     title: str = "") -> Path:
    """Error against confidence, one line per method (its runs pooled), ``bins`` equal-count groups.

    Left: by confidence rank (methods whose confidences live on different scales side by side);
    right: against the confidence value. A calibrated confidence gives a falling curve; the legend
    gives the Pearson correlation of confidence with −error over all instances.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    if not points:
        raise ValueError("no calibration points to plot; evaluate at least one model first")
    fig, (by_rank, by_value) = plt.subplots(1, 2, figsize=(10, 3.8))
    for name, runs in points.items():
        confidence = np.concatenate([c for c, _ in runs])
        error = np.concatenate([e for _, e in runs])
        mean_conf, mean_err = binned_by_confidence(confidence, error, bins)
        label = f"{name} (r = {pearson(confidence, -error):+.2f})"
        ranks = (np.arange(len(mean_err)) + 0.5) / len(mean_err) * 100
        by_rank.plot(ranks, mean_err, marker="o", ms=3, label=label)
        by_value.plot(mean_conf, mean_err, marker="o", ms=3, label=name)
    by_rank.set_xlabel(f"confidence percentile ({bins} equal-count groups, least confident left)")
    by_value.set_xlabel("mean confidence of the group")
    by_value.set_xscale("log")
    for ax in (by_rank, by_value):
        ax.set_ylabel("mean error (heatmap cells)")
        ax.set_yscale("log")  # a collapsed method's errors would otherwise flatten every other curve
        ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        ax.yaxis.set_minor_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        ax.grid(alpha=0.3, which="both")
    by_rank.legend(fontsize=7)
    fig.suptitle(title or "Calibration: error of each prediction against its confidence (test split)", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


# ---------------------------------------------------------------------------------------------- visualize


def visualize_main(argv: Sequence[str] | None = None) -> list[Path]:
    parser = argparse.ArgumentParser(
        prog="sampling-argmax visualize",
        description="Draw the learned probability maps and predictions of trained checkpoints "
        "(several checkpoints: one row each, on the inputs of the first one's datamodule).",
    )
    parser.add_argument("--ckpt_path", "--checkpoint", dest="ckpt_path", type=Path, nargs="+", required=True,
                        help=".ckpt file(s) written by fit or compare (--checkpoint: the deprecated older name)")
    parser.add_argument("--config", type=Path, default=None,
                        help="YAML of the run (only needed when the checkpoint does not record its datamodule)")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: beside the first checkpoint)")
    parser.add_argument("--num_samples", type=int, default=6, help="columns of the figures")
    parser.add_argument("--pool", type=int, default=64, help="inputs searched for the 'hard' columns")
    parser.add_argument("--split", choices=("val", "test"), default="val")
    args = parser.parse_args(argv)
    if args.num_samples < 1 or args.pool < 1:
        parser.error(f"--num_samples ({args.num_samples}) and --pool ({args.pool}) must be >= 1")
    out = check_output_folder(args.out or args.ckpt_path[0].parent.parent / "figures", "--out")
    snapshots, datamodule = [], None
    if any(a == "--checkpoint" or a.startswith("--checkpoint=") for a in map(str, sys.argv[1:] if argv is None else argv)):
        warnings.warn("visualize --checkpoint is deprecated; use --ckpt_path like fit/test/predict/export",
                      FutureWarning, stacklevel=2)
    for checkpoint in args.ckpt_path:
        module, own_datamodule = load_trained(checkpoint, args.config)
        datamodule = datamodule or own_datamodule
        snapshots.append(snapshot_maps(module, datamodule, max(args.pool, args.num_samples), args.split))
    paths = [plot_maps(snapshots, out / "maps.png", args.num_samples),
             plot_predictions(snapshots, out / "predictions.png", args.num_samples)]
    for path in paths:
        print(path)
    return paths
