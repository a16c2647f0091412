"""Live previews while training: labels for the part of an image on screen, normalised as the whole image."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..model.modelfile import Model
from .options import RunOptions
from .prediction import empty_side, predict_at_scale
from .preprocess import PreparedImage


class RegionPredictor:
    """Predicts labels on a window of one image, normalised as the whole image (for live previews).

    ``scale`` is how Segment resizes this image (and training too), so the
    preview shows what Segment will give.
    """

    def __init__(self, image: Any, model: Model, *, rgb: bool = False, scale: float = 1.0) -> None:
        self.prepared = PreparedImage(image, in_channels=model.in_channels,
                                      normalization_settings=model.normalization, rgb=rgb)
        self.scale = scale

    def __call__(self, model: Model, box: tuple[int, int, int, int], margin: int = 32) -> np.ndarray:
        """Labels for ``box`` = (y0, y1, x0, x1), predicted with ``margin`` px of context."""
        _, h, w = self.prepared.shape
        y0, y1, x0, x1 = box
        cy0, cy1, cx0, cx1 = max(y0 - margin, 0), min(y1 + margin, h), max(x0 - margin, 0), min(x1 + margin, w)
        window = self.prepared[:, cy0:cy1, cx0:cx1]
        labels = predict_at_scale(model.net, window, self.scale, RunOptions(),
                                  empty_side=empty_side(model, self.scale)).labels(model)
        return labels[y0 - cy0:y1 - cy0, x0 - cx0:x1 - cx0]
