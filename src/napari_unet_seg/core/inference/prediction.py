"""One 2D image through the network: normalised, resized to the model's object size if needed, tiled.

:func:`predict_plane` is what every path runs per plane (the pipeline, and
blockwise storage for planes that fit in one block), so they all agree.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import cached_property, partial
from typing import Any

import numpy as np
import torch

from ..common.callbacks import CancelCallback, ProgressCallback
from ..model.modelfile import Model
from .empty import empty_regions, flat_side, suppress
from .layout import WindowView, is_rgb, numeric_image
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
from .resample import resample, size_factors, source_span
from .tiling import predict_tiled

NONFINITE_NOTE = ("the image has NaN or infinite pixels: NaN and -inf were read as its darkest value, +inf as its "
                  "brightest")
BLANK_NOTE = "the image is blank (all its pixels read as one value): there is nothing to segment"


def image_notes(prepared: PreparedImage) -> tuple[str, ...]:
    """What the user should know about an image from its normalisation: blank, or NaN/infinite pixels."""
    normalization = prepared.normalization
    return ((BLANK_NOTE,) if normalization.blank else ()) + ((NONFINITE_NOTE,) if normalization.nonfinite else ())


@dataclass(frozen=True)
class NetworkPrediction:
    """Logits at the size the network saw, and how that size relates to the image's own.

    When the image was enlarged for the network (objects smaller than the
    model knows), shrinking the logits blurs the thin valleys between
    touching nuclei, so two nuclei would come out as one. Their seeds are
    therefore found at the network's size, where the model's settings are
    meant, and grown into outlines at the image's own size.

    A prediction may cover a window of a larger image (blockwise storage):
    ``image_origin`` and ``network_origin`` place it in the whole image and
    in the whole image's resized grid, and every mapping between the two
    uses global coordinates (:mod:`.resample`), so a window gives exactly
    what the whole image gives there.
    """

    logits: np.ndarray  # (classes, h, w)
    scale: float  # how much the image was resized for the network
    image_shape: tuple[int, int]  # (H, W)
    notes: tuple[str, ...] = ()  # what the user should know about the input (e.g. non-finite pixels)
    # (H, W) pixels where no object can be (see .empty), or what computes them when first needed (the labels'
    # thread of a blockwise run, while the next block is in the network); None: not checked
    empty: np.ndarray | Callable[[], np.ndarray] | None = None
    image_origin: tuple[int, int] = (0, 0)  # of this window in the whole image
    network_origin: tuple[int, int] = (0, 0)  # of the logits in the whole image's resized grid
    network_full: tuple[int, int] | None = None  # the whole resized grid's (h, w); None: the logits are all of it
    image_full: tuple[int, int] | None = None  # the whole image's (H, W); None: this prediction is all of it
    # the prepared (C, H, W) image over this window at its own size (often a lazy view): read only by models that
    # drop dim objects (post-processing's ``min_brightness``), so every path measures brightness on the same pixels
    source: Any = field(default=None, repr=False, compare=False)

    @property
    def factors(self) -> tuple[float, float]:
        """Per axis, the whole network grid's size over the whole image's (``scale``, after rounding the sizes)."""
        return size_factors(self.image_full or self.image_shape, self.network_full or self.logits.shape[-2:])

    @property
    def resized(self) -> bool:
        return not (self.scale == 1.0 and tuple(self.logits.shape[-2:]) == self.image_shape)

    @cached_property
    def empty_mask(self) -> np.ndarray | None:
        """The (H, W) pixels where no object can be; None: not checked."""
        return self.empty() if callable(self.empty) else self.empty

    @cached_property
    def image_logits(self) -> np.ndarray:
        """Logits at the image's own size (for probabilities and outlines), with no foreground on empty pixels."""
        if not self.resized:
            return suppress(self.logits, self.empty_mask)
        (y0, x0), (h, w) = self.image_origin, self.image_shape
        (fy, fx), network_full = self.factors, self.network_full or self.logits.shape[-2:]
        resized = resample(self.logits, (1 / fy, 1 / fx), rows=(y0, y0 + h), cols=(x0, x0 + w),
                           origin=self.network_origin, full_shape=network_full)
        return suppress(resized, self.empty_mask)

    @property
    def network_logits(self) -> np.ndarray:
        """Logits at the network's size, with no foreground where the image is empty (the mask resized to them)."""
        if self.empty is None or not self.resized:
            return self.image_logits if self.empty is not None else self.logits
        empty = self.empty_mask
        h, w = self.logits.shape[-2:]
        rows, cols = (np.clip(np.floor((np.arange(n) + origin + 0.5) / f).astype(np.int64) - start, 0, size - 1)
                      for n, origin, start, size, f in zip((h, w), self.network_origin, self.image_origin,
                                                           self.image_shape, self.factors))
        return suppress(self.logits, empty[np.ix_(rows, cols)])

    def brightness(self) -> np.ndarray:
        """The normalised image's mean over channels, (H, W) float32: what ``min_brightness`` compares with."""
        if self.source is None:
            raise ValueError("this prediction does not hold its image, so dim objects cannot be told apart")
        return np.asarray(self.source, np.float32).mean(axis=0)

    def labels(self, model: Model) -> np.ndarray:
        """The model's labels at the image's own size (what :func:`~.pipeline.segment` returns)."""
        seeds_at = None
        if model.task == "instances" and self.scale > 1 and self.resized:
            settings = {k: v for k, v in model.postprocess.items() if k in SEED_SETTINGS}
            points = seed_points_tiled(self.logits, settings, origin=self.network_origin)
            seeds_at = to_image_coordinates(points + self.network_origin, self.factors) - self.image_origin
        brightness = self.brightness() if model.postprocess.get("min_brightness", 0) > 0 else None
        return logits_to_labels(self.image_logits, model.task, model.postprocess, self.scale, seeds_at, brightness)


def to_image_coordinates(points: np.ndarray, factors: tuple[float, float]) -> np.ndarray:
    """(row, col) points on the network's grid -> the image's grid, pixel centre to pixel centre.

    The same geometry as the resizing (:mod:`.resample`): network pixel
    ``j`` samples image position ``(j + 0.5) / factor - 0.5`` on each axis.
    """
    return (np.asarray(points, np.float64) + 0.5) / np.asarray(factors, np.float64) - 0.5


def run_network(net: torch.nn.Module, image: Any, options: RunOptions, *, progress: ProgressCallback | None = None,
                cancel: CancelCallback | None = None, max_window_pixels: int | None = None) -> np.ndarray:
    """:func:`~.tiling.predict_tiled` with the run's window, batch, device and precision."""
    return predict_tiled(net, image, tile_size=options.tile_size, batch_size=options.batch_size,
                         device=options.device, precision=options.precision, progress=progress, cancel=cancel,
                         flip_average=options.flip_average, max_window_pixels=max_window_pixels)


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
    h, w = scaled_size(prepared.shape, scale)
    return resample(prepared, size_factors(prepared.shape[-2:], (h, w)), rows=(0, h), cols=(0, w),
                    antialias=scale < 1)


def empty_side(model: Model, scale: float) -> int | None:
    """The flat-square side that marks empty areas for this model at this scale; None: not checked.

    Only instance models are checked: a class model may have learnt a class
    for exactly such areas.
    """
    return flat_side(model.object_diameter, scale) if model.task == "instances" else None


def predict_at_scale(net: torch.nn.Module, prepared: Any, scale: float, options: RunOptions, *,
                     progress: ProgressCallback | None = None, cancel: CancelCallback | None = None,
                     empty_side: int | None = None, max_window_pixels: int | None = None) -> NetworkPrediction:
    """Run the network on a prepared (C, H, W) image resized by ``scale``.

    ``empty_side`` (see :func:`empty_side`) also marks the image's empty
    areas, where the prediction then has no foreground. ``max_window_pixels``
    caps the network's automatic windows (see :func:`~.tiling.predict_tiled`).
    """
    _, h, w = prepared.shape
    source = prepared  # kept as given (a lazy view stays lazy): only models that drop dim objects read it
    if is_unscaled(scale):
        logits = run_network(net, prepared, options, progress=progress, cancel=cancel,
                             max_window_pixels=max_window_pixels)
        scale = 1.0
    else:
        prepared = np.asarray(prepared, np.float32)  # normalised once, for the resizing and the empty areas
        logits = run_network(net, resize_for_network(prepared, scale), options, progress=progress, cancel=cancel,
                             max_window_pixels=max_window_pixels)
    empty = None if empty_side is None else empty_regions(prepared, empty_side)
    return NetworkPrediction(logits, scale, (h, w), empty=empty, source=source)


def predict_region(net: torch.nn.Module, prepared: Any, scale: float, options: RunOptions, *,
                   rows: tuple[int, int], cols: tuple[int, int], progress: ProgressCallback | None = None,
                   cancel: CancelCallback | None = None, empty_side: int | None = None,
                   max_window_pixels: int | None = None) -> NetworkPrediction:
    """:func:`predict_at_scale` of the whole prepared (C, H, W) image, over the window ``rows`` x ``cols`` only.

    Only the window and the context its resizing needs are read and run. The
    window is resized on the whole image's grid, and its network window starts
    on the whole grid's ``size_multiple``, so pixels far enough from the
    window's edges (the network's receptive radius, at its scale) get exactly
    the whole image's values. ``rows[0]`` and ``cols[0]`` must lie on that
    multiple when the image is not resized.
    """
    (y0, y1), (x0, x1) = rows, cols
    if is_unscaled(scale):
        return replace(predict_at_scale(net, WindowView(prepared, y0, y1, x0, x1), 1.0, options, progress=progress,
                                        cancel=cancel, empty_side=empty_side, max_window_pixels=max_window_pixels),
                       image_origin=(y0, x0))
    height, width = prepared.shape[-2:]
    full = scaled_size(prepared.shape, scale)
    grid = net.size_multiple
    factors = size_factors((height, width), full)
    network = []  # the network pixels the window's pixels are mapped back from, from a multiple of the grid
    for (start, stop), n, f, length in zip((rows, cols), full, factors, (height, width)):
        a, b = source_span(start, stop, 1 / f, n, antialias=False)
        network.append((a // grid * grid, n if stop == length else b))  # the border: as the whole grid ends
    source = [source_span(a, b, f, length, antialias=scale < 1)
              for (a, b), length, f in zip(network, (height, width), factors)]
    (sy0, sy1), (sx0, sx1) = [(min(a, start), max(b, stop)) for (a, b), (start, stop) in zip(source, (rows, cols))]
    slab = np.asarray(WindowView(prepared, sy0, sy1, sx0, sx1), np.float32)
    resized = resample(slab, factors, rows=network[0], cols=network[1], origin=(sy0, sx0),
                       full_shape=(height, width), antialias=scale < 1)
    logits = run_network(net, resized, options, progress=progress, cancel=cancel, max_window_pixels=max_window_pixels)
    empty = None
    if empty_side is not None:  # found by whoever makes the labels: a block's, beside the next block's network
        empty = partial(empty_regions, slab[:, y0 - sy0:y1 - sy0, x0 - sx0:x1 - sx0], empty_side)
    return NetworkPrediction(logits, scale, (y1 - y0, x1 - x0), empty=empty, image_origin=(y0, x0),
                             network_origin=(network[0][0], network[1][0]), network_full=full,
                             image_full=(height, width), source=WindowView(prepared, y0, y1, x0, x1))


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
    notes = image_notes(prepared)
    diameter = options.diameter
    if diameter is None and auto_diameter_applies(model):
        if fits_measuring_crop(prepared):  # the measuring pass is the whole image: reuse it
            # it reports nothing (it measures; a second pass at another scale may follow, and a count that
            # restarts would run backwards), then done at once when it is the pass kept
            whole = predict_at_scale(model.net, prepared, 1.0, options, cancel=cancel,
                                     empty_side=empty_side(model, 1.0))
            measured = measure_diameter(model, prepared, options, cancel=cancel, first=whole)
            if not needs_rescale(model, measured):
                if progress is not None:
                    progress(1, 1)
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
    rgb: bool | None = None,
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
    ``prediction.image_logits`` the logits at the image's own size. ``rgb=None``
    guesses colour as :func:`~.pipeline.segment` does (8-bit, 3 or 4 values last).
    """
    if not isinstance(model, Model):
        raise TypeError(f"predict_network takes a loaded model (load_model({model!r}) gives one), not "
                        f"{type(model).__name__}")
    image = numeric_image(image)
    rgb = is_rgb(image) if rgb is None else rgb
    options = RunOptions(diameter=diameter, tile_size=tile_size, batch_size=batch_size, device=device,
                         precision=precision)
    return predict_plane(model, image, options, rgb=rgb, progress=progress, cancel=cancel)
