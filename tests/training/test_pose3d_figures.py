"""compare's figures for volumes read from an image (3D pose): the x-y marginal over depth on the input."""

import numpy as np

from sampling_argmax.training.report import MapSnapshot, plot_maps, plot_predictions


def test_volume_maps_over_images_are_drawn(tmp_path):
    rng = np.random.default_rng(0)
    prob = rng.random((3, 2, 4, 8, 8))  # (N, K, D, H, W) volumes from (N, 3, 16, 16) crops
    prob /= prob.reshape(3, 2, -1).sum(-1)[:, :, None, None, None]
    snap = MapSnapshot("soft", images=rng.random((3, 3, 16, 16)), prob=prob,
                       pred=rng.random((3, 2, 3)) * 7, target=rng.random((3, 2, 3)) * 7)
    for plot, name in ((plot_maps, "maps.png"), (plot_predictions, "predictions.png")):
        path = plot([snap, snap], tmp_path / name, count=2)
        assert path.is_file() and path.stat().st_size > 1000
