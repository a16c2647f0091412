"""The automatic object size: measure the objects, and rescale only images far from the model's size.

This is how the default settings cope with objects from ~8 to ~120 px (as
Cellpose does): one quick pass over a central crop measures the objects, and
only images whose objects are far from the training size are resized.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

from ..model.modelfile import Model
from .layout import central_window
from .postprocess import MEASURING_SETTINGS, instance_labels

MAX_ENLARGEMENT = 8  # a tiny diameter by mistake must not ask for a 40x larger image (and hang or run out of memory)
MAX_SHRINKING = 16  # nor a huge one for an image shrunk to a few pixels
AUTO_CROP = 1024  # side of the central crop that estimates object size on large images
MIN_MEASURING_SIDE = 64  # px: the measuring pass never shrinks the crop below this
SIZES_IT_SEES_WHOLE = (0.6, 2.0)  # objects this many times the model's diameter are measured whole, not in pieces
AGREEMENT = 1.4  # two scales agree when their estimates are within this factor
MAX_LEVEL = 4  # shrink by up to 2**4 = 16 to measure


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
    if factor < 1 / MAX_SHRINKING:
        largest = float(model.object_diameter) * MAX_SHRINKING
        raise ValueError(f"an object diameter of {diameter:g} px would shrink the image {1 / factor:.3g}x; give at "
                         f"most {largest:.0f} px (this model's objects are {float(model.object_diameter):g} px across)")
    return factor


def median_diameter(logits: np.ndarray) -> float | None:
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


def size_in_words(objects: int | None, mean_area: float, given: float | None) -> str:
    """The objects' typical diameter in pixels, to type as the object size ("" without objects).

    A user left with "auto" learns what was found (and the figure to start
    from if it is wrong); a diameter given is shown beside what came out.
    """
    if not objects or not mean_area > 0:
        return ""
    found = f"about {2 * np.sqrt(mean_area / np.pi):.0f} px across"
    return f"{found} (object size given: {given:g} px)" if given is not None else f"{found} (object size: auto)"


def consistent_diameter(at_level: Callable[[int], float | None], model_diameter: float) -> float | None:
    """The object diameter (image px) at the finest scale that agrees with itself.

    ``at_level(k)`` is the diameter measured with the image shrunk by
    ``2**k``, in the image's own pixels. Level ``k`` is trusted when the
    objects looked a size the network knows there (``SIZES_IT_SEES_WHOLE``)
    and the next coarser level, which sees them smaller still, measures the
    same (within ``AGREEMENT``). Big textured nuclei fail at their own size:
    split into fragments, they measure small, and the coarser level sees them
    whole and larger. When no level agrees, the image's own size decides, as
    a single pass did before.
    """
    low, high = SIZES_IT_SEES_WHOLE
    for level in range(MAX_LEVEL):
        diameter = at_level(level)
        if diameter is None:
            break
        looks = diameter * 0.5 ** level / model_diameter
        if not low <= looks <= high:
            continue
        coarser = at_level(level + 1)
        if coarser is not None and 1 / AGREEMENT <= coarser / diameter <= AGREEMENT:
            return diameter
    return at_level(0)


def needs_rescale(model: Model, diameter: float | None) -> bool:
    """Whether a measured diameter is outside the model's band (``Model.auto_band``)."""
    if diameter is None:
        return False
    low, high = model.auto_band
    return not low <= diameter / float(model.object_diameter) <= high


def auto_diameter_applies(model: Model) -> bool:
    """Only instance models that know their training object size can rescale themselves."""
    return model.task == "instances" and bool(model.object_diameter)


def measuring_crop(prepared: Any) -> Any:
    """The part of a prepared (C, H, W) image the measuring pass sees."""
    return central_window(prepared, AUTO_CROP)


def fits_measuring_crop(prepared: Any) -> bool:
    """True when the measuring pass sees the whole image (so its logits can be reused)."""
    _, h, w = prepared.shape
    return h <= AUTO_CROP and w <= AUTO_CROP
