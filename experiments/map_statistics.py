"""What the trained maps of a ``sampling-argmax compare`` report look like, method by method.

For every ``runs/<method>/seed<s>/checkpoints/last.ckpt`` of a report, evaluates the test split once
and prints, averaged over test keypoints (mean ± std over seeds):

- error: Euclidean read-out error in heatmap cells;
- peak: the largest probability of the map (the confidence of the paper's calibration);
- spread: the map's standard deviation, sqrt(Var_x + Var_y), in cells;
- modes: local maxima of the map (largest in their 3 x 3 neighbourhood) holding at least a tenth of its
  peak probability: 1 for a unimodal map, more where a map keeps mass on look-alikes;
- snap: distance of the read-out from the nearest cell centre, per axis, in cells. A map that puts
  all its mass on one cell reads out a cell centre (snap 0); a read-out that can sit anywhere
  between cells has snap 0.25 on average.

The last two tell whether a method's error is bounded by the grid: a one-hot read-out on a grid
whose cells are a sizeable fraction of the inter-ocular distance cannot be more accurate than the
cell quantization allows (on average 0.38 cells of Euclidean error for a target uniform in the cell).
For faces (a test split with "interocular" distances, MTFL) it also says how large one cell is
against the distance between the eyes, measured on the targets in cells.

Usage::

    python experiments/map_statistics.py reports/mtfl_cpu   # prints; writes map_statistics.md and calibration.png there
"""

from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

from sampling_argmax.functional import grid_probabilities, grid_variance, peak_confidence
from sampling_argmax.methods import METHODS
from sampling_argmax.training.report import calibration_points, plot_calibration
from sampling_argmax.training.trained import load_trained

METRICS = ("error", "peak", "spread", "modes", "snap")
#: A local maximum counts as a mode when it holds at least this fraction of its map's peak probability.
MODE_FRACTION = 0.1


def count_modes(logits: torch.Tensor, fraction: float = MODE_FRACTION) -> torch.Tensor:
    """Modes of each map: ``(B, K, *grid)`` logits (1-3 grid dims) -> ``(B, K)`` float counts.

    A mode is a cell whose probability is the largest of its 3^d neighbourhood (ties count each cell) and
    at least ``fraction`` of the map's peak probability.
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction={fraction} must be in (0, 1]")
    probs = grid_probabilities(logits)
    batch, keypoints, *grid = probs.shape
    pool = {1: torch.nn.functional.max_pool1d, 2: torch.nn.functional.max_pool2d,
            3: torch.nn.functional.max_pool3d}[len(grid)]
    flat = probs.reshape(batch * keypoints, 1, *grid)
    local_max = flat >= pool(flat, kernel_size=3, stride=1, padding=1)
    peak = flat.flatten(1).amax(-1).view(-1, *([1] * (len(grid) + 1)))
    return (local_max & (flat >= fraction * peak)).flatten(1).sum(-1).view(batch, keypoints).float()



@torch.no_grad()
def map_statistics(checkpoint: Path) -> tuple[dict[str, float], tuple[np.ndarray, np.ndarray]]:
    """(the averages above, calibration points of the test split) of one checkpoint."""
    module, datamodule = load_trained(checkpoint)
    module.eval()
    datamodule.setup("test")
    sums: dict[str, float] = defaultdict(float)
    count = 0.0
    outputs: dict[str, list[np.ndarray]] = defaultdict(list)
    eye_cells: list[np.ndarray] = []
    for batch in datamodule.test_dataloader():
        out = module.read_out(batch, datamodule)
        logits = module.method.maps(out.logits)  # a learned-basis output also carries the laws' parameters
        pred = out.pred_grid
        weight = batch["target_weight"].float()
        per_keypoint = {
            "error": torch.linalg.vector_norm(pred - batch["target"], dim=-1),
            "peak": peak_confidence(logits).float(),
            "spread": grid_variance(logits).float().sum(-1).sqrt(),
            "modes": count_modes(logits),
            "snap": (pred - pred.round()).abs().mean(-1),
        }
        for name, value in per_keypoint.items():
            sums[name] += float((value * weight).sum())
        count += float(weight.sum())
        if "interocular" in batch:  # MTFL order: left eye 0, right eye 1
            eye_cells.append(torch.linalg.vector_norm(batch["target"][:, 0] - batch["target"][:, 1], dim=-1).numpy())
        for name, value in (("confidence", out.confidence), ("pred_grid", pred),
                            ("target", batch["target"]), ("target_weight", weight)):
            outputs[name].append(value.float().numpy())
    points = calibration_points({name: np.concatenate(chunks) for name, chunks in outputs.items()})
    statistics = {name: sums[name] / count for name in METRICS}
    if eye_cells:
        eyes = np.concatenate(eye_cells)
        statistics |= {"eye_distance_cells": float(np.median(eyes)), "cell_percent_of_eyes": float((100 / eyes).mean())}
    return statistics, points


def main(report: Path) -> str:
    order = {name: i for i, name in enumerate(METHODS)}
    found = sorted(report.glob("runs/*/seed*/checkpoints/last.ckpt"),
                   key=lambda c: (order.get(c.parents[2].name, len(order)), c.parents[2].name, str(c)))
    # a run is finished once compare wrote its result.json; before that last.ckpt holds mid-training weights
    checkpoints = [c for c in found if (c.parents[1] / "result.json").is_file()]
    unfinished = [f"{c.parents[2].name}/{c.parents[1].name}" for c in found if c not in checkpoints]
    if unfinished:
        print(f"left out (unfinished, no result.json): {', '.join(unfinished)}", file=sys.stderr)
    if not checkpoints:
        raise SystemExit(f"no finished run (runs/<method>/seed<s>/ with result.json and checkpoints/last.ckpt) under "
                         f"{report}; run `sampling-argmax compare --out {report}` first (with --resume to finish one)")
    per_method: dict[str, list[dict[str, float]]] = defaultdict(list)
    points: dict[str, list[tuple[np.ndarray, np.ndarray]]] = defaultdict(list)
    for checkpoint in checkpoints:
        method = checkpoint.parents[2].name
        statistics, calibration = map_statistics(checkpoint)
        per_method[method].append(statistics)
        points[method].append(calibration)
        print(f"{method} {checkpoint.parents[1].name}: {per_method[method][-1]}", file=sys.stderr)
    lines = ["| method | error (cells) | peak probability | spread (cells) | modes | snap (cells) |",
             "|---|---|---|---|---|---|"]
    for method, rows in per_method.items():
        cells = []
        for name in METRICS:
            values = np.array([r[name] for r in rows])
            cells.append(f"{values.mean():.3f} ± {values.std(ddof=1):.3f}" if len(values) > 1 else f"{values.mean():.3f}")
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    seeds = max(len(rows) for rows in per_method.values())
    text = "\n".join(lines) + f"\n\nTest split of {report}, final weights, mean ± std over {seeds} seed(s).\n"
    first = next(iter(per_method.values()))[0]
    if "eye_distance_cells" in first:
        text += (f"The eyes are {first['eye_distance_cells']:.2f} cells apart in the median test face; one cell is "
                 f"{first['cell_percent_of_eyes']:.1f} % of the inter-ocular distance on average.\n")
    (report / "map_statistics.md").write_text(text)
    plot_calibration(points, report / "calibration.png")  # the same figure compare draws, from the checkpoints
    return text


if __name__ == "__main__":
    torch.set_flush_denormal(True)
    print(main(Path(sys.argv[1] if len(sys.argv) > 1 else "reports/mtfl_cpu")))
