"""The paper's Figure 1 claim as a test: on free logits, soft-argmax only fixes the mean of the map,
sampling-argmax (expected error) concentrates the map around the target."""

import pytest
import torch

from sampling_argmax import grid_probabilities, grid_variance, soft_argmax
from sampling_argmax.methods import paper_method

TARGET = (13.3, 18.6)  # x, y in cells: between cell centres on both axes




def fit_free_logits(name: str, steps: int = 300, seed: int = 0):
    """Adam on a broad 1×1×32×32 map (small random logits) toward TARGET; τ annealed as in the paper."""
    method = paper_method(name, num_samples=8) if name.startswith("samp") else paper_method(name)
    init = 0.1 * torch.randn(1, 1, 32, 32, generator=torch.Generator().manual_seed(seed))
    logits = init.requires_grad_(True)
    target = torch.tensor([[TARGET]])
    optimizer = torch.optim.Adam([logits], lr=0.1)
    generator = torch.Generator().manual_seed(seed)
    for step in range(steps):
        method.set_epoch(step * 50 // steps)  # the whole schedule, τ from 2 down to its floor 0.5
        loss = method.loss(logits, target, generator=generator)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    logits = logits.detach()
    probs = grid_probabilities(logits)[0, 0]
    x0, y0 = int(TARGET[0]), int(TARGET[1])
    mass_next_to_target = probs[y0 : y0 + 2, x0 : x0 + 2].sum().item()  # the 2×2 cells around it
    error = (soft_argmax(logits)[0, 0] - target[0, 0]).abs().max().item()
    return error, grid_variance(logits)[0, 0], mass_next_to_target


def test_sampling_argmax_concentrates_soft_argmax_stays_spread(one_thread):
    soft_error, soft_var, soft_mass = fit_free_logits("soft")
    tri_error, tri_var, tri_mass = fit_free_logits("samp_tri")

    # soft-argmax reaches the target read-out ...
    assert soft_error < 0.1
    # ... with a map that stays spread out (the objective never asked for a shape)
    assert torch.all(soft_var > 15.0), soft_var  # 20.1 and 17.6 cell² (docs/methods.md: "≈ 20")

    # sampling-argmax concentrates its mass on the cells next to the target
    # docs/methods.md: "> 99% of the mass on the 2×2 cells around the target (variance < 0.3 cell²)";
    # measured 0.9977 and (0.069, 0.229) at seed 0, 0.9973 / 0.9978 with variances <= 0.27 at seeds 1 and 2
    assert tri_mass > 0.99, tri_mass
    assert torch.all(tri_var < 0.3), tri_var
    assert tri_mass > soft_mass
    # and still reads out near the target (within the cell-centre bias, see experiments/readout_bias.py)
    assert tri_error < 0.5
