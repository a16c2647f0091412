"""Training batches: batch k depends only on the run's seed and k, whoever makes it.

Drawing and augmenting crops is numpy work on the CPU, about 20 ms per 256²
crop with every augmentation. Beside a CPU network that is noise, but beside a
GPU it, not the network, limits the steps per second. So batches can be made
ahead by worker processes (a torch ``DataLoader``), and because each batch draws
from its own random generator, seeded by ``(seed, k)``, a run gives the same
batches with any number of workers, or none.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Generator, Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch

from .augment import add_empty_regions, augment_intensity, flip_rotate, random_crop
from .config import TrainConfig
from .data import PreparedPair
from .focus import ErrorFocus
from .targets import instance_targets, semantic_targets


def sample_crop(
    prepared: PreparedPair | CropSource, task: str, config: TrainConfig, rng: np.random.Generator,
    focus: ErrorFocus | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """One augmented crop of ``prepared`` and its training targets, drawn with ``rng``."""
    lo, hi = config.augment.scale_range
    scale = float(np.exp(rng.uniform(math.log(lo), math.log(hi))))
    stretch = config.augment.anisotropy
    aspect = float(np.exp(rng.uniform(-math.log(stretch), math.log(stretch)))) if stretch > 1 else 1.0
    valid = prepared.train_valid if focus is None else focus.weights
    centre = None
    if focus is not None and len(focus.centres) and rng.random() < config.focus_errors:
        centre = tuple(focus.centres[rng.integers(len(focus.centres))])
    # prefer crops that contain annotation when the annotated region is small
    for _ in range(5):
        img, lab, val = random_crop(prepared.train_image, prepared.train_labels, valid, config.crop_size,
                                    scale, rng, aspect, centre)
        if config.scribbles:
            annotated = (lab > 0) & (val > 0)
        else:
            annotated = val > 0
        if annotated.any():
            break
    if config.augment.flips:
        img, lab, val = flip_rotate([img, lab, val], rng)
    if task == "instances":
        if config.augment.intensity:
            # per-object augmentation sees annotated objects only: unannotated labels teach nothing
            img = augment_intensity(img, np.where(val > 0, lab, 0), config.augment, rng)
        if config.augment.empty_regions and rng.random() < config.augment.empty_regions:
            img, lab = add_empty_regions(img, lab, rng)
        return img, instance_targets(lab, val, config.contact_weight)
    if config.augment.intensity:
        img = augment_intensity(img, None, replace(config.augment, dim_objects=False, texture=False), rng)
    return img, semantic_targets(lab, val, scribbles=config.scribbles)


@dataclass(frozen=True)
class CropSource:
    """What crops are drawn from: a pair's arrays at the network's scale, nothing else (workers get only these)."""

    train_image: np.ndarray
    train_labels: np.ndarray
    train_valid: np.ndarray | None

    @classmethod
    def of(cls, prepared: PreparedPair) -> CropSource:
        return cls(prepared.train_image, prepared.train_labels, prepared.train_valid)


class BatchMaker(torch.utils.data.Dataset):
    """Batch ``k`` of a run: which pairs (by their sampling weights) and their crops, from ``rng(seed, k)``.

    It holds the arrays crops are drawn from, not the network or the user's
    images, so worker processes never see the model's weights, its device or
    more data than they need (where workers are spawned, it is pickled).
    """

    def __init__(self, prepared: Sequence[PreparedPair], focus: Sequence[ErrorFocus | None], weights: np.ndarray,
                 task: str, config: TrainConfig, length: int) -> None:
        self.sources = [CropSource.of(p) for p in prepared]
        self.focus, self.weights = list(focus), weights
        self.task, self.config = task, config
        self.length = min(length, sys.maxsize)  # a step count only bounded by time is still a valid length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        config = self.config
        rng = np.random.default_rng([config.seed, k])
        picks = rng.choice(len(self.sources), size=config.batch_size, p=self.weights)
        samples = [sample_crop(self.sources[i], self.task, config, rng, self.focus[i]) for i in picks]
        x = torch.from_numpy(np.stack([s[0] for s in samples]))
        y = torch.from_numpy(np.stack([s[1] for s in samples]))
        return x, y


Batches = Generator[tuple[torch.Tensor, torch.Tensor], None, None]


def batches(maker: BatchMaker, workers: int = 0, pin_memory: bool = False) -> Batches:
    """Batches 0, 1, 2, … in order: made here (``workers=0``) or ahead by that many worker processes.

    Closing the generator (or its failing) stops the workers at once: a
    traceback kept by the caller must not keep them running.
    """
    if workers <= 0:
        for k in range(len(maker)):
            yield maker[k]
        return
    # its own generator for the workers' base seed, so the global torch generator is left as it was
    loader = torch.utils.data.DataLoader(maker, batch_size=None, shuffle=False, num_workers=workers,
                                         prefetch_factor=4, pin_memory=pin_memory,
                                         generator=torch.Generator().manual_seed(maker.config.seed))
    stream = iter(loader)
    try:
        yield from stream
    finally:
        shutdown = getattr(stream, "_shutdown_workers", None)  # torch's own clean-up, also run when it is freed
        if shutdown is not None:
            shutdown()
