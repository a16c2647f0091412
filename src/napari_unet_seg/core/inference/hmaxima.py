"""The seeds' h-maxima, exactly as scikit-image computes them, at a fraction of the cost.

``skimage.morphology.h_maxima`` reconstructs the whole image by dilation:
two sorts of twice the image's pixels and a pass over all of them. It was
three quarters of post-processing time (3.7 of 4.7 s on a 2048² block of the
sample mosaic), and post-processing, not the network, is what a GPU user
waits for. Seeds are only wanted inside the foreground, and only a local
maximum can be an h-maximum, so this module decides each foreground local
maximum on its own, from a small window around it.

The rule, for a pixel p (``s = image - h - resolution``, as scikit-image
shifts it): p is an h-maximum when ``image[p] - rec[p] >= h``, and the
reconstruction ``rec[p]`` exceeds a value T exactly when the 8-connected
component of ``image > T`` that holds p also holds a pixel with ``s > T``.
With T the largest value that still passes the test (subtracted in the
image's dtype and compared as scikit-image compares), that is a labelling of
one small window, grown until the component is closed. A pixel with a
neighbour clearly higher is never an h-maximum. The result is the very same
mask (tests compare it with scikit-image on random, tied, real, degenerate
and boundary-value images). scikit-image itself runs when there are too many
local maxima to be worth it (wide flat plateaus), when their windows grow
too large, and for dtypes other than native float32 and float64.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import ndimage as ndi
from skimage.morphology import h_maxima

EIGHT = np.ones((3, 3), bool)  # scikit-image's default footprint: 8-connected
FIRST_RADIUS = 16  # px: the first window around a maximum (a nucleus's top fits at the network's scale)
MAX_SHARE = 0.01  # more local maxima than this share of the pixels: the whole-image reconstruction is cheaper
MAX_WORK = 2  # pixels labelled in grown windows, in images' worth, before handing over (wide high plateaus)
FAST_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))  # native order; others go to scikit-image itself


def h_maxima_within(image: np.ndarray, h: float, where: np.ndarray) -> np.ndarray:
    """``skimage.morphology.h_maxima(image, h).astype(bool) & where``, computed only where it can be true.

    Raises ValueError for NaN or infinite values (image or ``h``), on which
    scikit-image crashes the process.
    """
    image = np.asarray(image)
    where = np.asarray(where, bool)
    if not np.isfinite(h):
        raise ValueError(f"the seed prominence must be a finite number, not {h}")
    if np.issubdtype(image.dtype, np.floating) and not np.isfinite(image).all():
        raise ValueError("the centre map holds NaN or infinite values")
    # other dtypes, and an h that is 0 in the image's dtype (every pixel passes), are scikit-image's alone
    if image.ndim != 2 or image.dtype not in FAST_DTYPES or image.size == 0 or not (np.zeros(1, image.dtype) < h)[0]:
        return _reference(image, h, where)
    if h > np.ptp(image):  # as scikit-image: no h-maxima at all
        return np.zeros(image.shape, bool)
    resolution = 2 * np.finfo(image.dtype).resolution * np.abs(image)
    # scikit-image's seed, to the last bit: it reconstructs in the image's float type, whatever type h has
    shifted = (image - h - resolution).astype(image.dtype, copy=False)
    # a neighbour higher by more than float noise and the shift's tolerance gives a higher reconstruction
    tolerance = 1e-4 * float(np.max(np.abs(image)))
    candidates = where & (image >= ndi.maximum_filter(image, footprint=EIGHT, mode="nearest") - tolerance)
    rows, cols = np.nonzero(candidates)
    if len(rows) > MAX_SHARE * image.size:
        return _reference(image, h, where)
    out = np.zeros(image.shape, bool)
    budget = [MAX_WORK * image.size]
    for y, x in zip(rows.tolist(), cols.tolist()):
        verdict = _is_h_maximum(image, shifted, h, y, x, budget)
        if verdict is None:
            return _reference(image, h, where)
        out[y, x] = verdict
    return out


def _reference(image: np.ndarray, h: float, where: np.ndarray) -> np.ndarray:
    return h_maxima(image, h).astype(bool) & where


def _threshold(value: np.ndarray, h: float) -> np.ndarray | None:
    """The largest T (the image's dtype) for which ``value - T >= h`` in that dtype's arithmetic, as (1,) array.

    The difference only falls as T rises, so T is the last value that
    passes: first a few steps from ``value - h``; where the difference is
    coarser than T's own steps (T near 0), a bisection over the dtype's
    ordered values.
    """
    def passes(t: np.ndarray) -> bool:
        return bool(((value - t) >= h)[0])  # compared as scikit-image compares its residue

    t = value - np.asarray(h, value.dtype)
    for _ in range(4):
        if passes(t):
            up = np.nextafter(t, np.inf)
            if not passes(up):
                return t
            t = up
        else:
            t = np.nextafter(t, -np.inf)
    return _bisect(passes, value, h)


def _bisect(passes: Callable[[np.ndarray], bool], value: np.ndarray, h: float) -> np.ndarray | None:
    """The last passing value between one that passes and ``value`` (which cannot: h > 0), by ordered bits."""
    dtype = value.dtype
    low = value - np.asarray(2 * abs(h) + 1, dtype)  # passes: the difference is more than h
    if not np.isfinite(low).all() or not passes(low) or passes(value):
        return None
    ints = np.dtype(f"i{dtype.itemsize}")

    def key(x: np.ndarray) -> int:  # floats in order -> integers in order
        i = int(x.view(ints)[0])
        return i if i >= 0 else -(i & np.iinfo(ints).max)

    def unkey(k: int) -> np.ndarray:
        i = k if k >= 0 else -k | np.iinfo(ints).min
        return np.array([i], ints).view(dtype)

    lo, hi = key(low), key(value)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if passes(unkey(mid)):
            lo = mid
        else:
            hi = mid
    return unkey(lo)


def _is_h_maximum(image: np.ndarray, shifted: np.ndarray, h: float, y: int, x: int,
                  budget: list[int]) -> bool | None:
    """Whether (y, x) is an h-maximum; None when its threshold could not be pinned down or ``budget`` ran out.

    ``budget`` holds the pixels all calls may still label: maxima whose
    component spans the image (equal peaks on a ramp, h above their height)
    would each label the whole image, where one reconstruction does it once.
    """
    t = _threshold(image[y:y + 1, x], h)
    if t is None:
        return None
    threshold = t[0]
    height, width = image.shape
    radius = FIRST_RADIUS
    while True:
        y0, y1 = max(y - radius, 0), min(y + radius + 1, height)
        x0, x1 = max(x - radius, 0), min(x + radius + 1, width)
        if radius > FIRST_RADIUS:  # the first windows are bounded by MAX_SHARE; the grown ones by the budget
            budget[0] -= (y1 - y0) * (x1 - x0)
            if budget[0] < 0:
                return None
        above = image[y0:y1, x0:x1] > threshold
        labels, _ = ndi.label(above, structure=EIGHT)
        component = labels == labels[y - y0, x - x0]
        if (shifted[y0:y1, x0:x1][component] > threshold).any():
            return False  # a higher seed reaches p above the threshold: the reconstruction is higher
        closed = not ((y0 > 0 and component[0].any()) or (y1 < height and component[-1].any())
                      or (x0 > 0 and component[:, 0].any()) or (x1 < width and component[:, -1].any()))
        if closed:
            return True
        radius *= 2
