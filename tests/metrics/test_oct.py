"""OCT metrics: non-negative-gaps topology, MAD/signed/RMSE in µm, the evaluator's reshaping and offsets."""

import numpy as np
import pytest

from sampling_argmax.data.oct import BOUNDARY_NAMES

from sampling_argmax.metrics.base import EvaluationContext
from sampling_argmax.metrics.oct import OCTEvaluator, boundary_errors, columns_to_boundaries, ordered_boundaries


def test_non_negative_gaps_orders_and_leaves_ordered_rows_alone():
    rows = np.array([[10.0, 10.0], [8.0, 12.0], [15.0, 11.0]])  # (3 boundaries, 2 columns)
    out = ordered_boundaries(rows)
    assert out.tolist() == [[10.0, 10.0], [10.0, 12.0], [15.0, 12.0]]
    assert np.all(np.diff(out, axis=0) >= 0)
    ordered = np.sort(np.random.default_rng(0).normal(size=(4, 9, 7)), axis=1)
    assert np.array_equal(ordered_boundaries(ordered), ordered)


def test_boundary_errors_in_micrometres_ignore_unlabeled_entries():
    truth = np.array([[[0.0, 0.0, np.nan], [5.0, 5.0, 5.0]]])
    pred = np.array([[[1.0, -3.0, 100.0], [5.0, 5.0, 7.0]]])
    table = boundary_errors(pred, truth, pixel_um=3.9)
    assert table["mad"] == pytest.approx([2.0 * 3.9, 2.0 / 3 * 3.9])
    assert table["signed"] == pytest.approx([-1.0 * 3.9, 2.0 / 3 * 3.9])
    assert table["rmse"] == pytest.approx([np.sqrt(5.0) * 3.9, np.sqrt(4.0 / 3) * 3.9])
    assert table["count"].tolist() == [2.0, 3.0]


def test_columns_to_boundaries_is_boundary_major():
    pred = np.arange(2 * 3 * 4, dtype=float).reshape(2, 12, 1)  # 3 boundaries x 4 columns
    out = columns_to_boundaries(pred, 3)
    assert out.shape == (2, 3, 4) and out[1, 2, 1] == pred[1, 2 * 4 + 1, 0]
    with pytest.raises(ValueError, match=r"must be \(N, 3·W, 1\)"):
        columns_to_boundaries(np.zeros((2, 10, 1)), 3)


def test_evaluator_maps_back_with_offsets_imposes_topology_and_writes_the_table(tmp_path):
    rng = np.random.default_rng(0)
    truth = np.sort(rng.uniform(100, 300, size=(3, 9, 5)), axis=1)
    offset = rng.integers(50, 150, size=(3, 5)).astype(float)
    crop = truth - offset[:, None, :] + 0.5  # predictions half a row low everywhere
    crop[0, 4, 2] = crop[0, 3, 2] - 2.0  # one swapped pair: the topology lifts it onto boundary 3
    outputs = {"pred_grid": crop.reshape(3, 45, 1), "row_offset": offset, "truth": truth,
               "pixel_um": np.full(3, 4.0)}
    names = {"boundary_names": BOUNDARY_NAMES}  # the data module's references name the boundaries
    metrics = OCTEvaluator()(outputs, EvaluationContext("test", tmp_path, names))
    assert metrics["mad_um_ILM"] == pytest.approx(2.0) and metrics["signed_um"] > 0
    assert metrics["order_violations"] == pytest.approx(1 / (3 * 8 * 5))
    lifted = abs((truth[0, 3, 2] + 0.5) - truth[0, 4, 2]) * 4.0  # boundary 4 read as boundary 3's row
    assert metrics["mad_um_OPL-ONL"] == pytest.approx((14 * 2.0 + lifted) / 15)
    raw = OCTEvaluator(BOUNDARY_NAMES, topology=False)(outputs, EvaluationContext("test"))
    assert raw["mad_um_OPL-ONL"] == pytest.approx((14 * 2.0 + abs(crop[0, 4, 2] + offset[0, 2] - truth[0, 4, 2]) * 4) / 15)
    table = (tmp_path / "oct_test_boundaries.md").read_text()
    assert "| ILM | 2.00 | +2.00 | 2.00 |" in table and "| mean |" in table
    assert (tmp_path / "oct_test_boundaries.csv").read_text().splitlines()[0] == "boundary,mad_um,signed_um,rmse_um,count"
    with pytest.raises(ValueError, match=r"OCTEvaluator needs the batch keys \['row_offset'\]"):
        OCTEvaluator()({k: v for k, v in outputs.items() if k != "row_offset"}, EvaluationContext("val"))
    with pytest.raises(ValueError, match="OCTEvaluator needs the boundary names"):
        OCTEvaluator()(outputs, EvaluationContext("val"))
