"""The coordinate convention: corner cells read out their index; converters round-trip and match grid_sample."""

import itertools

import pytest
import torch
import torch.nn.functional as F

from sampling_argmax import sampling_argmax, soft_argmax
from sampling_argmax.coords import (
    authors_to_cells,
    cells_to_authors,
    cells_to_normalized,
    cells_to_pixels,
    grid_size_xyz,
    normalized_to_cells,
    pixels_to_cells,
)

GRIDS = [(5,), (4, 6), (3, 4, 5)]  # tensor layout (W,), (H, W), (D, H, W)


def _peaked(grid, cell):
    logits = torch.full((1, 1, *grid), -1e4)
    logits[(0, 0, *cell)] = 0.0
    return logits


@pytest.mark.parametrize("grid", GRIDS, ids=["1d", "2d", "3d"])
def test_corner_cells_read_out_their_index(grid):
    for corner in itertools.product(*[(0, n - 1) for n in grid]):
        expected = torch.tensor([list(reversed(corner))], dtype=torch.float32)  # x, y, z order
        coords = soft_argmax(_peaked(grid, corner))
        torch.testing.assert_close(coords[0], expected, atol=1e-5, rtol=0)
        # a near-hard relaxed sample sits inside the corner cell's basis support (uniform: +-1/2)
        samples = sampling_argmax(_peaked(grid, corner), num_samples=8, tau=1e-3, basis="uniform",
                                  generator=torch.Generator().manual_seed(0))
        assert ((samples[0, 0] - expected).abs() <= 0.5 + 1e-4).all()


@pytest.mark.parametrize("grid", GRIDS, ids=["1d", "2d", "3d"])
def test_corner_cells_normalize_to_the_documented_ends(grid):
    size = grid_size_xyz(grid, len(grid))
    first = torch.zeros(1, len(grid))
    last = torch.tensor([[n - 1.0 for n in size]])
    assert torch.allclose(cells_to_normalized(first, size, align_corners=True), torch.full_like(first, -1.0))
    assert torch.allclose(cells_to_normalized(last, size, align_corners=True), torch.ones_like(last))
    n = torch.tensor(size, dtype=torch.float32)
    assert torch.allclose(cells_to_normalized(first, size, align_corners=False), -1 + 1 / n)
    assert torch.allclose(cells_to_normalized(last, size, align_corners=False), 1 - 1 / n)
    assert torch.allclose(cells_to_authors(first, size), torch.full_like(first, -0.5))


@pytest.mark.parametrize("align_corners", [False, True])
def test_normalized_coordinates_agree_with_grid_sample(align_corners):
    h, w = 5, 7
    image = torch.arange(h * w, dtype=torch.float32).view(1, 1, h, w)
    cells = torch.tensor([[0.0, 0.0], [6.0, 4.0], [3.0, 2.0], [2.5, 1.0]])  # x, y
    grid = cells_to_normalized(cells, (w, h), align_corners=align_corners).view(1, 1, -1, 2)
    values = F.grid_sample(image, grid, mode="bilinear", align_corners=align_corners).flatten()
    expected = cells[:, 1] * w + cells[:, 0]  # the bilinear interpolation of a linear ramp
    torch.testing.assert_close(values, expected)


@pytest.mark.parametrize("align_corners", [False, True])
def test_converters_round_trip(align_corners):
    coords = torch.rand(4, 3, 3, dtype=torch.float64) * 40 - 5
    size = (48, 64, 17)
    torch.testing.assert_close(normalized_to_cells(cells_to_normalized(coords, size, align_corners), size,
                                                   align_corners), coords)
    torch.testing.assert_close(authors_to_cells(cells_to_authors(coords, size), size), coords)
    torch.testing.assert_close(pixels_to_cells(cells_to_pixels(coords, size, (192, 256, 34)), size,
                                               (192, 256, 34)), coords)


def test_cells_to_pixels_keeps_the_outer_edges():
    # a 64x48 heatmap over a 256x192 input: 4 pixels per cell; cell edge -0.5 is pixel edge -0.5
    edges = torch.tensor([[-0.5, -0.5], [47.5, 63.5]])
    pixels = cells_to_pixels(edges, (48, 64), (192, 256))
    torch.testing.assert_close(pixels, torch.tensor([[-0.5, -0.5], [191.5, 255.5]]))
    torch.testing.assert_close(cells_to_pixels(torch.zeros(1, 2), (48, 64), (192, 256)), torch.full((1, 2), 1.5))


def test_converters_reject_mismatched_sizes():
    with pytest.raises(ValueError, match="size"):
        cells_to_normalized(torch.zeros(2, 2), (4, 5, 6))
    with pytest.raises(ValueError, match="align_corners"):
        cells_to_normalized(torch.zeros(2, 1), (1,), align_corners=True)
