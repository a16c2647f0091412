"""Small helpers shared by tests (import as `from helpers import ...`)."""

from __future__ import annotations

import numpy as np
import torch


def randomize_batchnorm(net: torch.nn.Module, seed: int = 0) -> None:
    """Give BatchNorm layers non-trivial eval statistics, so tests see their effect."""
    g = torch.Generator().manual_seed(seed)
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.rand(n, generator=g) - 0.5)
            m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
            m.bias.data.copy_(torch.rand(n, generator=g) - 0.5)


def synthetic_nuclei(shape=(96, 128), n=12, radius=(5, 9), seed=0, touching=False):
    """Bright disks on a dark noisy background, with their instance labels."""
    rng = np.random.default_rng(seed)
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w]
    labels = np.zeros(shape, np.uint16)
    image = rng.normal(10, 2, shape)
    k = 0
    for _ in range(n * 20):
        if k == n:
            break
        r = rng.uniform(*radius)
        cy, cx = rng.uniform(r, h - r), rng.uniform(r, w - r)
        disk = (yy - cy) ** 2 + (xx - cx) ** 2 <= r**2
        if not touching and (labels[disk] > 0).any():
            continue
        k += 1
        labels[disk & (labels == 0)] = k
        image[disk] += rng.uniform(80, 150)
    return np.clip(image, 0, 255).astype(np.uint8), labels
