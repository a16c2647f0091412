"""The whole segmentation pipeline: image -> normalised windows -> logits -> labels.

Every path (widget, menu, CLI, batch, Python) calls these functions, so they
all preprocess from the model's metadata and give identical results.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..model.modelfile import Model

from ..model.registry import load_model
from .postprocess import MEASURING_SETTINGS, SEED_SETTINGS, instance_labels, logits_to_labels, seed_points_tiled
from .preprocess import PreparedImage
from ..common.callbacks import CancelCallback, ProgressCallback
from .tiling import predict_tiled


def is_rgb(image: Any) -> bool:
    """Guess whether the last axis holds colour: (..., H, W, 3|4) of 8-bit data."""
    return image.ndim >= 3 and image.shape[-1] in (3, 4) and np.dtype(image.dtype) == np.uint8


MAX_ENLARGEMENT = 8  # a tiny diameter by mistake must not ask for a 40x larger image (and hang or run out of memory)


def rescale_factor(model: Model, diameter: float | None) -> float:
    """How much to resize the image so its objects look the size the model knows."""
    if not diameter or not model.object_diameter:
        return 1.0
    if not (math.isfinite(diameter) and diameter > 0):
        raise ValueError("the object diameter must be a positive number of pixels")
    factor = float(model.object_diameter) / float(diameter)
    if factor > MAX_ENLARGEMENT:
        smallest = float(model.object_diameter) / MAX_ENLARGEMENT
        raise ValueError(f"an object diameter of {diameter:g} px would enlarge the image {factor:.0f}x; give at least "
                         f"{smallest:.1f} px (this model's objects are {float(model.object_diameter):g} px across)")
    return factor


AUTO_CROP = 1024  # side of the central crop that estimates object size on large images


class _Crop:
    """A (C, h, w) window of a lazy image, itself sliceable like an image."""

    def __init__(self, image: Any, ys: slice, xs: slice) -> None:
        self.image, self.ys, self.xs = image, ys, xs
        self.shape = (image.shape[0], ys.stop - ys.start, xs.stop - xs.start)

    def __getitem__(self, index: tuple) -> np.ndarray:
        ys, xs = index[-2], index[-1]
        y0, x0 = self.ys.start, self.xs.start
        return self.image[:, y0 + (ys.start or 0):y0 + (self.shape[1] if ys.stop is None else ys.stop),
                          x0 + (xs.start or 0):x0 + (self.shape[2] if xs.stop is None else xs.stop)]


def _median_diameter(logits: np.ndarray) -> float | None:
    """Diameter of the object a typical foreground pixel belongs to (area-weighted median).

    Weighting by area keeps a few large objects from being outvoted by
    fragments when the network sees objects far bigger than it knows. The
    measuring pass uses fixed post-processing (``MEASURING_SETTINGS``), not
    the model's tuned settings, so tuning those never changes which images
    get rescaled.
    """
    labels = instance_labels(logits, **MEASURING_SETTINGS)
    areas = np.bincount(labels.ravel().astype(np.int64))[1:]
    areas = np.sort(areas[areas > 0])
    if len(areas) < 3:
        return None
    cumulative = np.cumsum(areas)
    median_area = areas[np.searchsorted(cumulative, cumulative[-1] / 2)]
    return float(2 * np.sqrt(median_area / np.pi))


def needs_rescale(model: Model, diameter: float | None) -> bool:
    """Whether a measured diameter is outside the model's band (``Model.auto_band``)."""
    if diameter is None:
        return False
    low, high = model.auto_band
    return not low <= diameter / float(model.object_diameter) <= high


def auto_diameter_applies(model: Model) -> bool:
    """Only instance models that know their training object size can rescale themselves."""
    return model.task == "instances" and bool(model.object_diameter)


def measure_diameter(model: Model, prepared: Any, **run: Any) -> float | None:
    """The measuring pass: median object diameter (px) in a central crop (the whole image when small).

    None when the model cannot measure (not an instance model with a known
    object size) or finds fewer than 3 objects.
    """
    if not auto_diameter_applies(model):
        return None
    _, h, w = prepared.shape
    y0, x0 = max((h - AUTO_CROP) // 2, 0), max((w - AUTO_CROP) // 2, 0)
    crop = _Crop(prepared, slice(y0, min(y0 + AUTO_CROP, h)), slice(x0, min(x0 + AUTO_CROP, w)))
    run = {k: v for k, v in run.items() if k not in ("progress",)}
    return _median_diameter(predict_tiled(model.net, crop, **run))


def estimate_diameter(model: Model, prepared: Any, **run: Any) -> float | None:
    """Median object diameter (px) found in a central crop, if far enough from the model's to matter.

    This is how the default settings cope with objects from ~8 to ~80 px (as
    Cellpose does): one quick pass measures the objects, and only images
    whose objects are far from the training size are rescaled.
    """
    diameter = measure_diameter(model, prepared, **run)
    return diameter if needs_rescale(model, diameter) else None


def predict_logits(model: Model, image: Any, **options: Any) -> np.ndarray:
    """Logits (classes, H, W) for one 2D image: (H, W), (H, W, 3|4) with ``rgb``, or (C, H, W).

    ``diameter=None`` measures the objects first and rescales only when they
    are far from the size the model was trained on (see :func:`estimate_diameter`).
    Options as for :func:`predict_network`.
    """
    return predict_scaled(model, image, **options)[0]


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

    @cached_property
    def image_logits(self) -> np.ndarray:
        """Logits at the image's own size (for probabilities and outlines)."""
        if tuple(self.logits.shape[-2:]) == self.image_shape:
            return self.logits
        resized = F.interpolate(torch.from_numpy(self.logits)[None], size=self.image_shape, mode="bilinear",
                                align_corners=False)
        return resized[0].numpy()

    def labels(self, model: Model) -> np.ndarray:
        """The model's labels at the image's own size (what :func:`segment` returns)."""
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


def predict_resized(net: torch.nn.Module, prepared: Any, scale: float, **run: Any) -> NetworkPrediction:
    """Run the network on a prepared (C, H, W) image resized by ``scale``."""
    _, h, w = prepared.shape
    if abs(scale - 1.0) < 1e-3:
        return NetworkPrediction(predict_tiled(net, prepared, **run), 1.0, (h, w))
    size = (max(1, round(h * scale)), max(1, round(w * scale)))
    resized = F.interpolate(torch.from_numpy(np.asarray(prepared))[None], size=size, mode="bilinear",
                            align_corners=False, antialias=scale < 1)[0].numpy()
    return NetworkPrediction(predict_tiled(net, resized, **run), scale, (h, w))


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

    ``prediction.labels(model)`` gives what :func:`segment` would,
    ``prediction.image_logits`` the logits at the image's own size.
    """
    prepared = PreparedImage(image, in_channels=model.in_channels, normalization_settings=model.normalization, rgb=rgb)
    run = dict(tile_size=tile_size, batch_size=batch_size, device=device, precision=precision, cancel=cancel,
               progress=progress)
    _, h, w = prepared.shape
    if diameter is None and auto_diameter_applies(model):
        if h <= AUTO_CROP and w <= AUTO_CROP:  # the measuring pass is the whole image: reuse it
            logits = predict_tiled(model.net, prepared, **run)
            measured = _median_diameter(logits)
            if not needs_rescale(model, measured):
                return NetworkPrediction(logits, 1.0, (h, w))
            diameter = measured
        else:
            diameter = estimate_diameter(model, prepared, **run)
    return predict_resized(model.net, prepared, rescale_factor(model, diameter), **run)


def predict_scaled(model: Model, image: Any, **options: Any) -> tuple[np.ndarray, float]:
    """Logits at the image's own size, and the factor the image was resized by for the network.

    Options as for :func:`predict_network`; for labels use that function's
    ``prediction.labels(model)``, which post-processes where it is most exact.
    """
    prediction = predict_network(model, image, **options)
    return prediction.image_logits, prediction.scale


def segment(
    image: Any,
    model: Model | str | None = None,
    *,
    rgb: bool | None = None,
    channel_axis: int | None = None,
    diameter: float | None = None,
    tile_size: int | None = None,
    batch_size: int | None = None,
    device: str = "auto",
    precision: str = "auto",
    progress: ProgressCallback | None = None,
    cancel: CancelCallback | None = None,
) -> np.ndarray:
    """Segment an image with a model (default: the built-in ``nuclei`` model).

    2D images give (H, W) labels. Stacks (Z or T leading axes) are segmented
    slice by slice and give labels of the same leading shape. ``rgb=None``
    guesses colour from an 8-bit trailing axis of 3 or 4; ``channel_axis``
    names the channel axis of multichannel images.
    """
    model = model if isinstance(model, Model) else load_model(model)
    if channel_axis is not None:
        image = np.moveaxis(image, channel_axis, -3) if isinstance(image, np.ndarray) else _moveaxis(image, channel_axis)
        rgb = False
    if rgb is None:
        rgb = is_rgb(image) and channel_axis is None
    plane_ndim = 3 if (rgb or channel_axis is not None) else 2
    if image.ndim < plane_ndim:
        raise ValueError(f"image of shape {tuple(image.shape)} has too few dimensions")
    lead = tuple(image.shape[:-plane_ndim])
    planes = int(np.prod(lead)) if lead else 1
    out = None
    for index, idx in enumerate(np.ndindex(*lead) if lead else [()]):
        plane = image[idx] if idx else image

        def plane_progress(done: int, total: int, _i: int = index) -> None:
            if progress is not None:
                progress(_i * total + done, planes * total)

        labels = predict_network(
            model, plane, rgb=rgb, diameter=diameter, tile_size=tile_size, batch_size=batch_size,
            device=device, precision=precision, progress=plane_progress, cancel=cancel,
        ).labels(model)
        if not lead:
            return labels
        if out is None:
            out = np.zeros(lead + labels.shape, dtype=np.uint32 if model.task == "instances" else labels.dtype)
        out[idx] = labels
    return _smallest_dtype(out)


def _smallest_dtype(labels: np.ndarray) -> np.ndarray:
    if labels.dtype == np.uint32 and labels.max(initial=0) < 2**16:
        return labels.astype(np.uint16)
    return labels


def _moveaxis(array: Any, axis: int) -> Any:
    import dask.array as da

    return da.moveaxis(da.asarray(array), axis, -3)


