"""The one coordinate convention of this package, and converters to the others.

Cell-index units: the centre of cell ``i`` is at coordinate ``i``; cell ``i`` covers ``[i - 0.5, i + 0.5]``.
A map that is peaked at cell ``i`` therefore reads out exactly ``i``, and coordinates of a W-cell axis
lie in ``[0, W - 1]`` (a read-out can never leave that range, samples can leave it by up to one basis width)::

    coordinate:   -0.5    0    0.5    1    1.5    2    2.5         W-1.5  W-1  W-0.5
                    |  cell 0  |  cell 1  |  cell 2  |     ...     |  cell W-1  |
    align_corners=False  -1 ...................................................  +1   (grid_sample default, dsntnn)
    align_corners=True         -1 ..........................................  +1         (kornia normalized meshgrid)
    authors' code  index/size - 0.5: cell 0 -> -0.5, cell W-1 -> 0.5 - 1/W

Coordinates are ``(..., dims)`` in x, y, z order; ``size`` is given in the same order: ``(W,)``, ``(W, H)``
or ``(W, H, D)`` -- note the reverse of the tensor layout ``(B, K, D, H, W)``.
Pixels of an image are the same convention on a finer grid (pixel centre ``p`` at coordinate ``p``), which is
what :func:`cells_to_pixels` converts to.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = [
    "POINT_CELL",
    "grid_size_xyz",
    "cell_centers",
    "cells_to_normalized",
    "normalized_to_cells",
    "cells_to_authors",
    "authors_to_cells",
    "cells_to_pixels",
    "pixels_to_cells",
]

#: The point-set analogue of one grid cell: the mean neighbour spacing of a normalized 2048-point object,
#: the scale of the paper's point-cloud Gaussian basis (σ = 0.01). Point-set defaults are stated in it.
POINT_CELL = 0.01


def grid_size_xyz(logits_or_shape: Tensor | Sequence[int], spatial_dims: int | None = None) -> tuple[int, ...]:
    """Axis lengths in x, y, z order of a ``(B, K, *grid)`` tensor (or its shape).

    >>> grid_size_xyz(torch.zeros(2, 3, 64, 48))
    (48, 64)
    """
    shape = tuple(logits_or_shape.shape) if isinstance(logits_or_shape, Tensor) else tuple(logits_or_shape)
    grid = shape[2:] if spatial_dims is None else shape[len(shape) - spatial_dims :]
    return tuple(int(n) for n in reversed(grid))


def cell_centers(n: int, device=None, dtype: torch.dtype = torch.float32) -> Tensor:
    """Coordinates of the ``n`` cell centres of one axis: ``0, 1, ..., n - 1``."""
    return torch.arange(n, device=device, dtype=dtype)


def _sizes(coords: Tensor, size: Sequence[int] | int) -> Tensor:
    sizes = [int(size)] * coords.shape[-1] if isinstance(size, int) else [int(s) for s in size]
    if len(sizes) != coords.shape[-1]:
        raise ValueError(
            f"size has {len(sizes)} entries but coords have {coords.shape[-1]} dims in the last axis; "
            "pass one size per axis in x, y, z order, e.g. size=(W, H)"
        )
    if min(sizes) < 1:
        raise ValueError(f"size must be positive per axis, got {tuple(sizes)}")
    dtype = coords.dtype if coords.is_floating_point() else torch.float32
    return torch.tensor(sizes, device=coords.device, dtype=dtype)


def _check_align(size_t: Tensor, align_corners: bool) -> None:
    if align_corners and bool((size_t < 2).any()):
        raise ValueError("align_corners=True needs at least 2 cells per axis (the two ends are cell centres); "
                         "use align_corners=False for 1-cell axes")


def cells_to_normalized(coords: Tensor, size: Sequence[int] | int, align_corners: bool = False) -> Tensor:
    """Cell-index coordinates -> ``[-1, 1]`` normalized coordinates.

    ``align_corners=False`` (``grid_sample`` default, dsntnn): -1 and +1 are the outer *edges* of the first
    and last cells. ``align_corners=True`` (kornia ``normalized_coordinates``): they are the first and last
    cell *centres*.

    >>> cells_to_normalized(torch.tensor([[0.0, 63.0]]), size=(48, 64), align_corners=True)
    tensor([[-1.,  1.]])
    """
    n = _sizes(coords, size)
    _check_align(n, align_corners)
    if align_corners:
        return coords * (2.0 / (n - 1)) - 1.0
    return (2.0 * coords + 1.0) / n - 1.0


def normalized_to_cells(coords: Tensor, size: Sequence[int] | int, align_corners: bool = False) -> Tensor:
    """Inverse of :func:`cells_to_normalized`."""
    n = _sizes(coords, size)
    _check_align(n, align_corners)
    if align_corners:
        return (coords + 1.0) * ((n - 1) / 2.0)
    return ((coords + 1.0) * n - 1.0) / 2.0


def cells_to_authors(coords: Tensor, size: Sequence[int] | int) -> Tensor:
    """Cell-index coordinates -> the authors' normalized coordinates ``index / size - 0.5``."""
    return coords / _sizes(coords, size) - 0.5


def authors_to_cells(coords: Tensor, size: Sequence[int] | int) -> Tensor:
    """Inverse of :func:`cells_to_authors`."""
    return (coords + 0.5) * _sizes(coords, size)


def cells_to_pixels(coords: Tensor, grid_size: Sequence[int] | int, image_size: Sequence[int] | int) -> Tensor:
    """Cell coordinates of a grid laid over an image -> that image's pixel coordinates (pixel centres).

    Both use the cell-centre convention, so the outer edges coincide: ``p = (c + 0.5) * image/grid - 0.5``
    (a 64x48 heatmap over a 256x192 input maps cell 0 to pixel 1.5).
    """
    scale = _sizes(coords, image_size) / _sizes(coords, grid_size)
    return (coords + 0.5) * scale - 0.5


def pixels_to_cells(coords: Tensor, grid_size: Sequence[int] | int, image_size: Sequence[int] | int) -> Tensor:
    """Inverse of :func:`cells_to_pixels`."""
    scale = _sizes(coords, image_size) / _sizes(coords, grid_size)
    return (coords + 0.5) / scale - 0.5
