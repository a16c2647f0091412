"""One 2D image through the network: normalised, resized to the model's object size if needed, tiled.

:func:`predict_plane` is what every path runs per plane (the pipeline, and
blockwise storage for planes that fit in one block), so they all agree.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..common.callbacks import CancelCallback, ProgressCallback
from ..model.modelfile import Model
from .empty import empty_regions, flat_side, suppress
from .object_size import (
    MIN_MEASURING_SIDE,
    auto_diameter_applies,
    consistent_diameter,
    fits_measuring_crop,
    measuring_crop,
    median_diameter,
    needs_rescale,
    rescale_factor,
)
from .options import RunOptions
from .postprocess import SEED_SETTINGS, logits_to_labels, seed_points_tiled
from .preprocess import PreparedImage
from .tiling import predict_tiled

NONFINITE_NOTE = ("the image has NaN or infinite pixels: NaN and -inf were read as its darkest value, +inf as its "
                  "brightest")


@dataclass(frozen=True)
class NetworkPrediction:
    """Logits at the size the network saw, and how that size relates to the image's own.

    When the image was enlarged for the network (objects smaller than the
    model knows), shrinking the logits blurs the thin valleys between
    touching nuclei, so two nuclei would come out as one. Their seeds are
    therefore found at the network's size, where the model's settings are
    meant, and grown into outlines at the image's own size.
    """

    logits: np.ndarray  # (classes, h, w)
    scale: float  # how much the image was resized for the network
    image_shape: tuple[int, int]  # (H, W)
    notes: tuple[str, ...] = ()  # what the user should know about the input (e.g. non-finite pixels)
    empty: np.ndarray | None = None  # (H, W) pixels where no object can be (see .empty); None: not checked

    @cached_property
    def image_logits(self) -> np.ndarray:
        """Logits at the image's own size (for probabilities and outlines), with no foreground on empty pixels."""
        if tuple(self.logits.shape[-2:]) == self.image_shape:
            return suppress(self.logits, self.empty)
        resized = F.interpolate(torch.from_numpy(self.logits)[None], size=self.image_shape, mode="bilinear",
                                align_corners=False)
        return suppress(resized[0].numpy(), self.empty)

    @property
    def network_logits(self) -> np.ndarray:
        """Logits at the network's size, with no foreground where the image is empty (the mask resized to them)."""
        if self.empty is None or tuple(self.logits.shape[-2:]) == self.image_shape:
            return self.image_logits if self.empty is not None else self.logits
        rows = np.minimum((np.arange(self.logits.shape[-2]) + 0.5) * self.image_shape[0] / self.logits.shape[-2],
                          self.image_shape[0] - 1).astype(np.int64)
        cols = np.minimum((np.arange(self.logits.shape[-1]) + 0.5) * self.image_shape[1] / self.logits.shape[-1],
                          self.image_shape[1] - 1).astype(np.int64)
        return suppress(self.logits, self.empty[np.ix_(rows, cols)])

    def labels(self, model: Model) -> np.ndarray:
        """The model's labels at the image's own size (what :func:`~.pipeline.segment` returns)."""
        seeds_at = None
        if model.task == "instances" and self.scale > 1 and tuple(self.logits.shape[-2:]) != self.image_shape:
            settings = {k: v for k, v in model.postprocess.items() if k in SEED_SETTINGS}
            seeds_at = to_image_coordinates(seed_points_tiled(self.logits, settings), self.logits.shape[-2:],
                                            self.image_shape)
        return logits_to_labels(self.image_logits, model.task, model.postprocess, self.scale, seeds_at)


def to_image_coordinates(points: np.ndarray, network_shape: tuple[int, ...], image_shape: tuple[int, int]) -> np.ndarray:
    """(row, col) points on the network's grid -> the image's grid, pixel centre to pixel centre.

    The same geometry as the bilinear resizing (``align_corners=False``): the
    ratio is per axis, from the actual sizes (which were rounded).
    """
    factor = np.asarray(image_shape, np.float64) / np.asarray(network_shape, np.float64)
    return (np.asarray(points, np.float64) + 0.5) * factor - 0.5


def run_network(net: torch.nn.Module, image: Any, options: RunOptions, *, progress: ProgressCallback | None = None,
                cancel: CancelCallback | None = None) -> np.ndarray:
    """:func:`~.tiling.predict_tiled` with the run's window, batch, device and precision."""
    return predict_tiled(net, image, tile_size=options.tile_size, batch_size=options.batch_size,
                         device=options.device, precision=options.precision, progress=progress, cancel=cancel,
                         flip_average=options.flip_average)


def measure_diameter(model: Model, prepared: Any, options: RunOptions = RunOptions(), *,
                     cancel: CancelCallback | None = None, first: NetworkPrediction | None = None) -> float | None:
    """The measuring pass: median object diameter (px) in a central crop (the whole image when small).

    Measured at the image's own size and shrunk by 2, 4, 8..., and taken at
    the finest scale that agrees with itself (:func:`~.object_size.consistent_diameter`):
    a network that splits big textured nuclei into fragments measures the
    fragments at their own size, but sees the nuclei whole once they are
    shrunk. ``first`` is a pass at the image's own size already made over
    the crop (reused). None when the model cannot measure (not an instance
    model with a known object size) or finds too few objects.
    """
    if not auto_diameter_applies(model):
        return None
    crop = measuring_crop(prepared)
    cache: dict[int, float | None] = {}

    def at_level(level: int) -> float | None:
        if level not in cache:
            scale = 0.5 ** level
            if level == 0 and first is not None:
                cache[level] = median_diameter(first.image_logits)
            elif min(crop.shape[-2:]) * scale < MIN_MEASURING_SIDE:
                cache[level] = None
            else:
                pass_ = predict_at_scale(model.net, crop, scale, options, cancel=cancel,
                                         empty_side=empty_side(model, scale))
                measured = median_diameter(pass_.network_logits)
                cache[level] = None if measured is None else measured / pass_.scale
        return cache[level]

    return consistent_diameter(at_level, float(model.object_diameter))


def estimate_diameter(model: Model, prepared: Any, options: RunOptions = RunOptions(), *,
                      cancel: CancelCallback | None = None) -> float | None:
    """The measured diameter if it is far enough from the model's to matter, else None (no rescaling)."""
    diameter = measure_diameter(model, prepared, options, cancel=cancel)
    return diameter if needs_rescale(model, diameter) else None


def is_unscaled(scale: float) -> bool:
    """Factors this close to 1 leave the image as it is."""
    return abs(scale - 1.0) < 1e-3


def scaled_size(shape: tuple[int, ...], scale: float) -> tuple[int, int]:
    """The (h, w) an image of (..., H, W) ``shape`` has at the network's scale."""
    h, w = shape[-2:]
    return max(1, round(h * scale)), max(1, round(w * scale))


def resize_for_network(prepared: Any, scale: float) -> np.ndarray:
    """A prepared (C, H, W) image resized by ``scale`` as the network sees it (bilinear, antialiased when shrinking).

    Training resizes its pairs with this same function, so the network learns
    objects at the size it is shown them at prediction.
    """
    size = scaled_size(prepared.shape, scale)
    return F.interpolate(torch.from_numpy(np.asarray(prepared, np.float32))[None], size=size, mode="bilinear",
                         align_corners=False, antialias=scale < 1)[0].numpy()


def empty_side(model: Model, scale: float) -> int | None:
    """The flat-square side that marks empty areas for this model at this scale; None: not checked.

    Only instance models are checked: a class model may have learnt a class
    for exactly such areas.
    """
    return flat_side(model.object_diameter, scale) if model.task == "instances" else None


def predict_at_scale(net: torch.nn.Module, prepared: Any, scale: float, options: RunOptions, *,
                     progress: ProgressCallback | None = None, cancel: CancelCallback | None = None,
                     empty_side: int | None = None) -> NetworkPrediction:
    """Run the network on a prepared (C, H, W) image resized by ``scale``.

    ``empty_side`` (see :func:`empty_side`) also marks the image's empty
    areas, where the prediction then has no foreground.
    """
    _, h, w = prepared.shape
    if is_unscaled(scale):
        logits = run_network(net, prepared, options, progress=progress, cancel=cancel)
        scale = 1.0
    else:
        prepared = np.asarray(prepared, np.float32)  # normalised once, for the resizing and the empty areas
        logits = run_network(net, resize_for_network(prepared, scale), options, progress=progress, cancel=cancel)
    empty = None if empty_side is None else empty_regions(prepared, empty_side)
    return NetworkPrediction(logits, scale, (h, w), empty=empty)


def pipeline_diameter(model: Model, prepared: Any, options: RunOptions = RunOptions(), *,
                      cancel: CancelCallback | None = None) -> float | None:
    """The object diameter the pipeline resizes this image for (None: it keeps the image's own size).

    The decision :func:`predict_plane` makes: the given diameter, else the
    measured one when it is far from the model's size.
    """
    if options.diameter is not None:
        return options.diameter
    if not auto_diameter_applies(model):
        return None
    return estimate_diameter(model, prepared, options, cancel=cancel)


def prepare(model: Model, plane: Any, *, rgb: bool) -> PreparedImage:
    """A plane normalised with the model's own settings (a lazy view)."""
    return PreparedImage(plane, in_channels=model.in_channels, normalization_settings=model.normalization, rgb=rgb)


def predict_plane(model: Model, plane: Any, options: RunOptions, *, rgb: bool = False,
                  progress: ProgressCallback | None = None, cancel: CancelCallback | None = None) -> NetworkPrediction:
    """The network's logits for one 2D plane, resized first if its objects are far from the model's size."""
    prepared = prepare(model, plane, rgb=rgb)
    notes = (NONFINITE_NOTE,) if prepared.normalization.nonfinite else ()
    diameter = options.diameter
    if diameter is None and auto_diameter_applies(model):
        if fits_measuring_crop(prepared):  # the measuring pass is the whole image: reuse it
            whole = predict_at_scale(model.net, prepared, 1.0, options, progress=progress, cancel=cancel,
                                     empty_side=empty_side(model, 1.0))
            measured = measure_diameter(model, prepared, options, cancel=cancel, first=whole)
            if not needs_rescale(model, measured):
                return replace(whole, notes=notes)
            diameter = measured
        else:
            diameter = estimate_diameter(model, prepared, options, cancel=cancel)
    scale = rescale_factor(model, diameter)
    prediction = predict_at_scale(model.net, prepared, scale, options, progress=progress, cancel=cancel,
                                  empty_side=empty_side(model, scale))
    return replace(prediction, notes=notes) if notes else prediction


def predict_network(
    model: Model,
    image: Any,
    *,
    rgb: bool = False,
    diameter: float | None = None,
    tile_size: int | None = None,
    batch_size: int | None = None,
    device: str = "auto",
    precision: str = "auto",
    progress: ProgressCallback | None = None,
    cancel: CancelCallback | None = None,
) -> NetworkPrediction:
    """The network's logits for one 2D image, resized first if its objects are far from the model's size.

    ``prediction.labels(model)`` gives what :func:`~.pipeline.segment` would,
    ``prediction.image_logits`` the logits at the image's own size.
    """
    options = RunOptions(diameter=diameter, tile_size=tile_size, batch_size=batch_size, device=device,
                         precision=precision)
    return predict_plane(model, image, options, rgb=rgb, progress=progress, cancel=cancel)
