"""Bilinear resizing on the whole image's grid, so a window resized alone equals that part of the whole image resized.

Resizing each block window of a large image on its own grid (what
``F.interpolate`` does) samples slightly different points than resizing the
whole image, so blockwise results drifted from in-memory ones whenever the
image was resized for the model. Here every output pixel's taps and weights
are computed from its *global* index, the scale and the *global* length
alone, and summed in a fixed order: a window gives, bit for bit, the values
the whole image gives at the same pixels, as long as it holds every tap
(:func:`source_span` says which input pixels that takes).

The filter is the one ``F.interpolate(mode="bilinear", align_corners=False)``
uses (pixel centre to pixel centre; per-axis factors from the whole image's
sizes, :func:`size_factors`, reproduce its ``size=`` form), widened by the shrink factor when
``antialias`` (as ``antialias=True`` does), with weights normalised over the
taps inside the image (which is how both clamp at the borders).
"""

from __future__ import annotations

import math

import numpy as np


def _support(factor: float, antialias: bool) -> float:
    """Half-width of the filter in input pixels: wider when shrinking with antialiasing."""
    return 1.0 / factor if antialias and factor < 1 else 1.0


def _sources(start: int, stop: int, factor: float) -> np.ndarray:
    """Where output pixels ``start..stop`` sample the input (pixel centre to pixel centre)."""
    return (np.arange(start, stop, dtype=np.float64) + 0.5) / factor - 0.5


def source_span(start: int, stop: int, factor: float, length: int, *, antialias: bool) -> tuple[int, int]:
    """The input range ``[a, b)`` holding every tap of output pixels ``start..stop`` (input ``length`` long)."""
    support = _support(factor, antialias)
    first, last = _sources(start, stop, factor)[[0, -1]]
    return max(math.floor(first - support), 0), min(math.floor(last + support) + 1, length)


def _taps(start: int, stop: int, factor: float, length: int, antialias: bool) -> tuple[np.ndarray, np.ndarray]:
    """(n, k) global input indices and float32 weights of output pixels ``start..stop``."""
    support = _support(factor, antialias)
    centres = _sources(start, stop, factor)
    k = math.ceil(2 * support) + 1
    index = np.floor(centres - support)[:, None].astype(np.int64) + np.arange(1, k + 1)
    weights = np.maximum(0.0, 1.0 - np.abs(index - centres[:, None]) / support)
    weights[(index < 0) | (index >= length)] = 0.0
    total = weights.sum(axis=1, keepdims=True)
    nearest = np.clip(np.rint(centres), 0, length - 1).astype(np.int64)  # beyond the border: the edge pixel
    none = total[:, 0] == 0
    index[none, 0], weights[none, 0], total[none] = nearest[none], 1.0, 1.0
    return index, (weights / total).astype(np.float32)


def _resample_axis(x: np.ndarray, axis: int, start: int, stop: int, factor: float, *, origin: int, length: int,
                   antialias: bool) -> np.ndarray:
    index, weights = _taps(start, stop, factor, length, antialias)
    local = index - origin
    used = weights > 0
    if used.any() and (local[used].min() < 0 or local[used].max() >= x.shape[axis]):
        raise ValueError(f"the window [{origin}, {origin + x.shape[axis]}) lacks taps of outputs [{start}, {stop})")
    local = np.clip(local, 0, x.shape[axis] - 1)
    shape = [1] * x.ndim
    shape[axis] = stop - start
    out = None
    for t in range(index.shape[1]):  # a fixed order of sums: every window gets the same bits
        if not weights[:, t].any():  # a tap no output uses (bilinear enlarging's third): it only adds zeros
            continue
        taken = np.take(x, local[:, t], axis=axis)  # a new array: multiplied and summed in place, no temporaries
        np.multiply(taken, weights[:, t].reshape(shape), out=taken)
        if out is None:
            out = taken  # 0 + w * x is w * x: the same bits as summing from zeros
        else:
            np.add(out, taken, out=out)
    if out is None:
        return np.zeros(x.shape[:axis] + (stop - start,) + x.shape[axis + 1:], np.float32)
    return out


def resample(x: np.ndarray, factor: float | tuple[float, float], *, rows: tuple[int, int], cols: tuple[int, int],
             origin: tuple[int, int] = (0, 0), full_shape: tuple[int, int] | None = None,
             antialias: bool = False) -> np.ndarray:
    """Output pixels ``rows`` x ``cols`` (global) of the (..., H, W) image resized by ``factor`` (or per axis).

    ``x`` is the part of that image starting at global ``origin``;
    ``full_shape`` is the whole image's (H, W) (default: ``x`` is the whole
    image). Output pixel ``j`` samples input ``(j + 0.5) / factor - 0.5``.
    """
    x = np.asarray(x, np.float32)
    fy, fx = factor if isinstance(factor, tuple) else (factor, factor)
    full_h, full_w = full_shape if full_shape is not None else x.shape[-2:]
    out = _resample_axis(x, x.ndim - 2, *rows, fy, origin=origin[0], length=full_h, antialias=antialias)
    return _resample_axis(out, x.ndim - 1, *cols, fx, origin=origin[1], length=full_w, antialias=antialias)


def size_factors(source: tuple[int, int], target: tuple[int, int]) -> tuple[float, float]:
    """Per-axis factors that take a ``source``-sized image to exactly ``target`` (as ``F.interpolate(size=)`` does)."""
    return target[0] / source[0], target[1] / source[1]
