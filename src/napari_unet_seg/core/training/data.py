"""What training learns from: annotated pairs as the user gives them, and as the network sees them.

A :class:`TrainingPair` is the user's image and labels (and optionally the
annotated region); a :class:`PreparedPair` is the same pair normalised once
with the model's own settings, exactly as the pipeline normalises an image.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..inference.preprocess import PreparedImage
from ..model.modelfile import Model


@dataclass
class TrainingPair:
    """One annotated image. ``valid`` (optional, same H, W) marks annotated pixels."""

    image: Any
    labels: np.ndarray
    valid: np.ndarray | None = None
    rgb: bool = False
    name: str = ""
    weight: float | None = None  # sampling weight; None = proportional to area


class PreparedPair:
    """A pair normalised once, kept in memory as float32 (C, H, W)."""

    def __init__(self, pair: TrainingPair, model: Model) -> None:
        prepared = PreparedImage(
            pair.image, in_channels=model.in_channels,
            normalization_settings=model.normalization, rgb=pair.rgb,
        )
        self.image = np.asarray(prepared)
        labels = np.asarray(pair.labels)
        if labels.shape != self.image.shape[1:]:
            raise ValueError(
                f"labels {pair.name or ''} have shape {labels.shape} but the image is {self.image.shape[1:]}"
            )
        self.labels = labels.astype(np.int64)
        self.valid = None if pair.valid is None else (np.asarray(pair.valid) > 0)
        if self.valid is not None and self.valid.shape != labels.shape:
            raise ValueError("the annotated-region mask must have the same height and width as the labels")
        self.pair = pair

    def box(self, margin: int = 32) -> tuple[slice, slice]:
        """The annotated part plus some context: all that evaluation needs to predict."""
        if self.valid is None or not self.valid.any():
            return slice(None), slice(None)
        ys, xs = np.nonzero(self.valid)
        h, w = self.valid.shape
        return (slice(max(int(ys.min()) - margin, 0), min(int(ys.max()) + 1 + margin, h)),
                slice(max(int(xs.min()) - margin, 0), min(int(xs.max()) + 1 + margin, w)))
