"""Retina OCT boundary metrics (the paper's Table 4): MAD, signed error and RMSE in µm, per boundary and overall.

Predictions arrive as the contract's ``(N, 9·W, 1)`` rows in the crop (keypoint ``k = b·W + c``); the
evaluator reshapes them to ``(N, 9, W)``, imposes the topology and maps them back to original rows with the
samples' ``row_offset`` before comparing with ``truth`` (original rows, NaN = unlabeled).

Topology: **non-negative gaps** (:func:`ordered_boundaries`). The read-out of boundary ``b`` is replaced by
``s_b = s_{b-1} + max(0, r_b - s_{b-1})``, i.e. the running maximum down the column: every gap between
consecutive boundaries is non-negative, so boundary b+1 is never above boundary b. This is He et al.'s
construction (surface = previous surface + ReLU(gap)) applied to the read-outs; it leaves ordered predictions
unchanged and is applied identically to every method (it is not part of any method's loss).

Errors are ``pred − truth`` in rows times the axial pixel size (µm, from the file header, 3.9 µm by default):
MAD = mean |error| over all labeled (B-scan, A-scan) pairs of a boundary, signed = mean error (positive =
predicted below the truth), RMSE = root of the mean squared error; the overall values average the 9
boundaries (the paper's table: MAD averaged over boundaries).

Example:
    >>> truth = np.zeros((1, 2, 3)); pred = np.array([[[1.0, -1.0, 0.0], [0.0, 0.0, 2.0]]])
    >>> table = boundary_errors(pred, truth, pixel_um=np.array([4.0]))
    >>> table["mad"].tolist(), table["signed"].tolist()
    ([2.6666666666666665, 2.6666666666666665], [0.0, 2.6666666666666665])
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence

import numpy as np

from sampling_argmax.metrics.base import EvaluationContext, Evaluator, require

__all__ = ["ordered_boundaries", "boundary_errors", "columns_to_boundaries", "OCTEvaluator"]


def ordered_boundaries(rows: np.ndarray) -> np.ndarray:
    """Non-negative gaps: ``(..., num_boundaries, W)`` rows -> the running maximum over the boundary axis."""
    rows = np.asarray(rows, dtype=np.float64)
    if rows.ndim < 2:
        raise ValueError(f"rows of shape {rows.shape} must be (..., num_boundaries, W)")
    return np.maximum.accumulate(rows, axis=-2)


def columns_to_boundaries(pred: np.ndarray, num_boundaries: int) -> np.ndarray:
    """The contract's ``(N, num_boundaries·W, 1)`` keypoints (k = b·W + c) -> ``(N, num_boundaries, W)`` rows."""
    pred = np.asarray(pred, dtype=np.float64)
    if pred.ndim != 3 or pred.shape[-1] != 1 or pred.shape[1] % num_boundaries:
        raise ValueError(f"predictions of shape {pred.shape} must be (N, {num_boundaries}·W, 1) rows: one 1D map per "
                         "(boundary, A-scan)")
    return pred[..., 0].reshape(pred.shape[0], num_boundaries, -1)


def boundary_errors(pred: np.ndarray, truth: np.ndarray, pixel_um: np.ndarray | float) -> dict[str, np.ndarray]:
    """Per-boundary errors in µm over the labeled entries (finite ``truth``).

    Args:
        pred, truth: (N, num_boundaries, W) rows (same frame).
        pixel_um: (N,) or scalar axial pixel size in µm.

    Returns:
        {"mad", "signed", "rmse", "count"}: (num_boundaries,) arrays (NaN where a boundary has no label).
    """
    pred, truth = np.asarray(pred, np.float64), np.asarray(truth, np.float64)
    if pred.shape != truth.shape or pred.ndim != 3:
        raise ValueError(f"pred {pred.shape} and truth {truth.shape} must both be (N, num_boundaries, W)")
    scale = np.broadcast_to(np.asarray(pixel_um, np.float64).reshape(-1, 1, 1), pred.shape)
    error = (pred - truth) * scale
    labeled = np.isfinite(truth)
    count = labeled.sum(axis=(0, 2))
    safe = np.where(labeled, error, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return {
            "mad": np.abs(safe).sum(axis=(0, 2)) / count,
            "signed": safe.sum(axis=(0, 2)) / count,
            "rmse": np.sqrt((safe**2).sum(axis=(0, 2)) / count),
            "count": count.astype(np.float64),
        }


class OCTEvaluator(Evaluator):
    """MAD / signed error / RMSE (µm) per boundary and averaged, after the non-negative-gaps topology.

    Reads the gathered ``pred_grid`` (N, 9·W, 1), ``row_offset`` (N, W), ``truth`` (N, 9, W) and ``pixel_um`` (N,).
    Metrics: ``mad_um`` (the paper's number), ``signed_um``, ``rmse_um``, ``mad_um_<boundary>`` for each
    boundary, and ``order_violations`` (fraction of adjacent pairs the raw read-outs had in the wrong order,
    before the topology was imposed). Writes ``oct_<stage>_boundaries.csv`` and ``.md`` (the per-boundary table)
    to ``context.output_dir``.

    Args:
        boundary_names: names of the boundaries, top to bottom (None = the data module's, from its references'
            ``boundary_names``).
        topology: impose non-negative gaps (True, the task's read-out); False measures the raw read-outs.
    """

    def __init__(self, boundary_names: Sequence[str] | None = None, topology: bool = True) -> None:
        self.names = tuple(boundary_names) if boundary_names is not None else None
        self.topology = topology

    def __call__(self, outputs: Mapping[str, np.ndarray], context: EvaluationContext) -> dict[str, float]:
        require(outputs, ("pred_grid", "row_offset", "truth", "pixel_um"), "OCTEvaluator")
        names = self.names or tuple(context.references.get("boundary_names", ()))
        if not names:
            raise ValueError("OCTEvaluator needs the boundary names: give boundary_names, or a data module whose "
                             "references(stage) hold 'boundary_names'")
        count = len(names)
        raw = columns_to_boundaries(outputs["pred_grid"], count)
        truth = np.asarray(outputs["truth"], np.float64)
        if truth.shape != raw.shape:
            raise ValueError(f"truth {truth.shape} and predictions {raw.shape} disagree; the data module's 'truth' must "
                             f"be (N, {count}, W) in the same columns as the model's maps")
        violations = float(np.mean(np.diff(raw, axis=1) < 0))
        crop_rows = ordered_boundaries(raw) if self.topology else raw
        pred = crop_rows + np.asarray(outputs["row_offset"], np.float64)[:, None, :]
        table = boundary_errors(pred, truth, np.asarray(outputs["pixel_um"], np.float64).reshape(-1))
        metrics = {"mad_um": float(np.nanmean(table["mad"])), "signed_um": float(np.nanmean(table["signed"])),
                   "rmse_um": float(np.nanmean(table["rmse"])), "order_violations": violations}
        metrics.update({f"mad_um_{name}": float(v) for name, v in zip(names, table["mad"])})
        if context.output_dir is not None:
            self._write(context, table, names)
        return metrics

    def _write(self, context: EvaluationContext, table: Mapping[str, np.ndarray], names: Sequence[str]) -> None:
        folder = context.output_dir
        folder.mkdir(parents=True, exist_ok=True)
        stem = folder / f"oct_{context.stage}_boundaries"
        with open(stem.with_suffix(".csv"), "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["boundary", "mad_um", "signed_um", "rmse_um", "count"])
            for i, name in enumerate(names):
                writer.writerow([name, *(f"{table[k][i]:.4f}" for k in ("mad", "signed", "rmse")),
                                 int(table["count"][i])])
        lines = ["| boundary | MAD (µm) | signed (µm) | RMSE (µm) |", "|---|---|---|---|"]
        lines += [f"| {name} | {table['mad'][i]:.2f} | {table['signed'][i]:+.2f} | {table['rmse'][i]:.2f} |"
                  for i, name in enumerate(names)]
        lines.append(f"| mean | {np.nanmean(table['mad']):.2f} | {np.nanmean(table['signed']):+.2f} | "
                     f"{np.nanmean(table['rmse']):.2f} |")
        stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
