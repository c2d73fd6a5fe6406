"""The mode count of experiments/map_statistics.py (the map statistic of the ambiguity sweep)."""

import importlib.util
from pathlib import Path

import pytest
import torch

_PATH = Path(__file__).resolve().parents[2] / "experiments" / "map_statistics.py"
_SPEC = importlib.util.spec_from_file_location("map_statistics", _PATH)
map_statistics = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(map_statistics)


def _bumps(shape, centres, heights, width=0.8):
    """Log of a sum of Gaussian bumps on a grid: logits whose softmax has one mode per bump."""
    axes = torch.meshgrid(*[torch.arange(n, dtype=torch.float64) for n in shape], indexing="ij")
    density = torch.full(shape, 1e-12, dtype=torch.float64)
    for centre, height in zip(centres, heights):
        r2 = sum((a - c) ** 2 for a, c in zip(axes, centre))
        density = density + height * torch.exp(-r2 / (2 * width**2))
    return density.log()


def test_counts_separated_bumps_above_the_fraction():
    maps = torch.stack([
        _bumps((24, 24), [(5, 5)], [1.0]),
        _bumps((24, 24), [(5, 5), (5, 15), (18, 10)], [1.0, 0.5, 0.3]),
        _bumps((24, 24), [(5, 5), (15, 15)], [1.0, 0.05]),  # the second is under a tenth of the peak
    ])[None]  # (1, 3, 24, 24)
    assert map_statistics.count_modes(maps).tolist() == [[1.0, 3.0, 1.0]]
    assert map_statistics.count_modes(maps, fraction=0.01).tolist() == [[1.0, 3.0, 2.0]]


@pytest.mark.parametrize("shape", [(30,), (12, 12, 12)])
def test_1d_and_3d_maps_and_corner_modes(shape):
    corner = (0,) * len(shape)  # a mode on the border is still a mode (padding never wins)
    far = tuple(n - 3 for n in shape)
    logits = _bumps(shape, [corner, far], [1.0, 0.8])[None, None]
    assert map_statistics.count_modes(logits).item() == 2


def test_flat_map_counts_every_cell_and_bad_fraction_is_named():
    # a uniform map has no single peak: every cell ties with its neighbours (the count says "no mode")
    assert map_statistics.count_modes(torch.zeros(2, 1, 6, 6)).tolist() == [[36.0], [36.0]]
    with pytest.raises(ValueError, match="fraction"):
        map_statistics.count_modes(torch.zeros(1, 1, 4, 4), fraction=0.0)


def test_report_reads_finished_runs_only(tmp_path, monkeypatch, capsys):
    # an unfinished run (checkpoints, no result.json) holds mid-training weights: it must not enter the table
    for method, seed, finished in [("soft", 0, True), ("soft", 1, False), ("samp_gau", 0, True)]:
        run = tmp_path / "runs" / method / f"seed{seed}"
        (run / "checkpoints").mkdir(parents=True)
        (run / "checkpoints" / "last.ckpt").write_bytes(b"")
        if finished:
            (run / "result.json").write_text("{}")
    read = []

    def fake(checkpoint):
        read.append(f"{checkpoint.parents[2].name}/{checkpoint.parents[1].name}")
        stats = {name: float(len(read)) for name in map_statistics.METRICS}
        return stats, (torch.zeros(1).numpy(), torch.zeros(1).numpy())

    monkeypatch.setattr(map_statistics, "map_statistics", fake)
    monkeypatch.setattr(map_statistics, "plot_calibration", lambda points, path: None)
    text = map_statistics.main(tmp_path)
    assert sorted(read) == ["samp_gau/seed0", "soft/seed0"]
    assert "soft/seed1" in capsys.readouterr().err
    assert "1 seed(s)" in text
    (tmp_path / "runs" / "soft" / "seed0" / "result.json").unlink()
    (tmp_path / "runs" / "samp_gau" / "seed0" / "result.json").unlink()
    with pytest.raises(SystemExit, match="no finished run"):
        map_statistics.main(tmp_path)
