"""What training learns from: annotated pairs as the user gives them, and as the network sees them.

A :class:`TrainingPair` is the user's image and labels (and optionally the
annotated region); a :class:`PreparedPair` is the same pair normalised once
with the model's own settings and resized to the network's scale, exactly as
the pipeline normalises and resizes an image (:func:`~..inference.prediction.resize_for_network`),
so the network learns objects at the size Segment will show them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..inference.layout import is_rgb
from ..inference.object_size import rescale_factor
from ..inference.prediction import is_unscaled, resize_for_network, scaled_size
from ..inference.preprocess import PreparedImage
from ..model.modelfile import Model


@dataclass
class TrainingPair:
    """One annotated image: (H, W), (C, H, W), or colour (H, W, 3|4) with ``rgb``; labels (H, W) of integer ids.

    ``valid`` (optional, same H, W) marks annotated pixels. ``rgb`` None guesses
    colour as :func:`~..inference.pipeline.segment` does (8-bit, 3 or 4 values last).
    """

    image: Any
    labels: np.ndarray
    valid: np.ndarray | None = None
    rgb: bool | None = None
    name: str = ""
    weight: float | None = None  # sampling weight; None = proportional to area
    diameter: float | None = None  # objects' size (px) the pipeline rescales for; None: the image's own scale
    replay: bool = False  # an earlier round's correction: it also judges that training did not forget it
    plane: tuple[int, ...] = ()  # the leading (Z/T) index of the plane of its image's stack, for showing it there
    edited: np.ndarray | None = None  # where the user changed a Segment result (None: unknown): see .rounds

    def __post_init__(self) -> None:
        if self.rgb is None:
            self.rgb = hasattr(self.image, "shape") and is_rgb(self.image)


def input_channels(pair: TrainingPair) -> int:
    """How many channels a new model for this pair takes: 1 for gray and colour (read as gray), else C of (C, H, W)."""
    image = np.asarray(pair.image)
    return 1 if pair.rgb or image.ndim == 2 else int(image.shape[0])


def compact_ids(labels: np.ndarray) -> np.ndarray:
    """Instance ids renumbered 1..N in their order (0 stays background), as int64.

    Targets are built by counting pixels per id; ids such as 2**40 (or uint64
    ids that do not fit int64) would ask for terabytes, or wrap negative.
    """
    values, inverse = np.unique(labels, return_inverse=True)
    return (inverse.reshape(labels.shape) + (1 if values[0] != 0 else 0)).astype(np.int64)


def resize_labels(labels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Labels at another size by nearest neighbour, pixel centre to pixel centre; no object is lost.

    An object too thin to hit any sampled pixel keeps one pixel at its centre,
    so shrinking never silently drops an annotated nucleus.
    """
    labels = np.asarray(labels)
    h, w = labels.shape
    rows = np.clip(np.floor((np.arange(size[0]) + 0.5) * h / size[0]).astype(np.int64), 0, h - 1)
    cols = np.clip(np.floor((np.arange(size[1]) + 0.5) * w / size[1]).astype(np.int64), 0, w - 1)
    out = labels[np.ix_(rows, cols)]
    if labels.dtype == bool or not labels.any():
        return out
    flat = labels.ravel().astype(np.int64)
    counts = np.bincount(flat)
    lost = np.setdiff1d(np.flatnonzero(counts), np.unique(out))
    lost = lost[lost > 0]
    if len(lost):
        ys, xs = np.divmod(np.arange(flat.size), w)
        cy = np.bincount(flat, weights=ys, minlength=len(counts))[lost] / counts[lost]
        cx = np.bincount(flat, weights=xs, minlength=len(counts))[lost] / counts[lost]
        ry = np.clip(np.floor((cy + 0.5) * size[0] / h), 0, size[0] - 1).astype(np.int64)
        rx = np.clip(np.floor((cx + 0.5) * size[1] / w), 0, size[1] - 1).astype(np.int64)
        out[ry, rx] = lost
    return out


class PreparedPair:
    """A pair normalised once, kept in memory as float32 (C, H, W), at its own size and at the network's.

    ``image``, ``labels`` and ``valid`` are at the image's own size (held-out
    scores are computed there, as Segment's result is); ``train_image``,
    ``train_labels`` and ``train_valid`` are resized by ``scale``, the factor
    the pipeline resizes this image by, and are what training crops from.
    """

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
        sparse = labels.size and labels.dtype != bool and (int(labels.max()) >= labels.size or labels.max() >= 2**31)
        self.labels = compact_ids(labels) if model.task == "instances" and sparse else labels.astype(np.int64)
        self.valid = None if pair.valid is None else (np.asarray(pair.valid) > 0)
        if self.valid is not None and self.valid.shape != labels.shape:
            raise ValueError("the annotated-region mask must have the same height and width as the labels")
        self.pair = pair
        self.scale = 1.0 if pair.diameter is None else rescale_factor(model, pair.diameter)
        if is_unscaled(self.scale):
            self.scale = 1.0
            self.train_image, self.train_labels, self.train_valid = self.image, self.labels, self.valid
        else:
            size = scaled_size(self.image.shape, self.scale)
            self.train_image = resize_for_network(self.image, self.scale)
            self.train_labels = resize_labels(self.labels, size)
            self.train_valid = None if self.valid is None else resize_labels(self.valid, size)

    def box(self, margin: int = 32) -> tuple[slice, slice]:
        """The annotated part plus some context: all that evaluation needs to predict."""
        if self.valid is None or not self.valid.any():
            return slice(None), slice(None)
        ys, xs = np.nonzero(self.valid)
        h, w = self.valid.shape
        return (slice(max(int(ys.min()) - margin, 0), min(int(ys.max()) + 1 + margin, h)),
                slice(max(int(xs.min()) - margin, 0), min(int(xs.max()) + 1 + margin, w)))
