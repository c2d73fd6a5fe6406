"""compare's figures for volumes read from an image (3D pose): the x-y marginal over depth on the input."""

import numpy as np

from sampling_argmax.training.report import MapSnapshot, plot_maps, plot_predictions


def test_volume_maps_over_images_are_drawn(tmp_path, drawn):
    rng = np.random.default_rng(0)
    prob = rng.random((3, 2, 4, 8, 8))  # (N, K, D, H, W) volumes from (N, 3, 16, 16) crops
    prob /= prob.reshape(3, 2, -1).sum(-1)[:, :, None, None, None]
    gray = np.repeat(rng.random((3, 1, 16, 16)), 3, axis=1)  # gray crops: every coloured pixel is drawn by the plot
    snap = MapSnapshot("soft", images=gray, prob=prob, pred=rng.random((3, 2, 3)) * 7, target=rng.random((3, 2, 3)) * 7)
    # the heat maps cover about half the figure (0.54; 0.002 with all-zero maps); the markers ~0.4 %
    for plot, name, least in ((plot_maps, "maps.png", 0.2), (plot_predictions, "predictions.png", 0.002)):
        path = plot([snap, snap], tmp_path / name, count=2)
        assert drawn(path) > least, (name, drawn(path))
