"""Training targets made from annotations.

Instance models learn two maps: foreground, and a *centre map* -- each
object's distance to its edge divided by that object's largest distance.
The centre map is 1 at every object's middle and 0 at its border whatever
the object's size, which is what makes seeds for touching objects
scale-independent (see :mod:`.postprocess`).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi
from skimage.segmentation import find_boundaries

IGNORE = -1


def centre_map(labels: np.ndarray) -> np.ndarray:
    """Per-object normalised distance to the edge, float32 in [0, 1]."""
    labels = np.asarray(labels)
    inside = labels > 0
    if not inside.any():
        return np.zeros(labels.shape, np.float32)
    interior = inside & ~find_boundaries(labels, mode="inner")
    dist = ndi.distance_transform_edt(interior).astype(np.float32)
    ids, inverse = np.unique(labels, return_inverse=True)
    peak = ndi.maximum(dist, labels, ids).astype(np.float32)
    peak = np.maximum(peak, 1.0)
    out = dist / peak[inverse.reshape(labels.shape)]
    out[~inside] = 0
    # the middle pixel of a 1-2 px thin object still gets a centre
    out[inside & (dist == 0)] = np.maximum(out[inside & (dist == 0)], 0.0)
    return out


def instance_targets(labels: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """(3, H, W) float32: foreground, centre map, and a 0/1 weight (0 = not annotated)."""
    fg = (labels > 0).astype(np.float32)
    weight = np.ones_like(fg) if valid is None else (np.asarray(valid) > 0).astype(np.float32)
    return np.stack([fg, centre_map(labels), weight])


def semantic_targets(labels: np.ndarray, valid: np.ndarray | None = None, scribbles: bool = False) -> np.ndarray:
    """(H, W) int64 class ids with :data:`IGNORE` for pixels that must not teach anything.

    Scribbles: 0 = not annotated, v > 0 = class v - 1 (so 1 = background).
    """
    target = np.asarray(labels).astype(np.int64)
    if scribbles:
        target = target - 1  # 0 -> IGNORE
    if valid is not None:
        target = np.where(np.asarray(valid) > 0, target, IGNORE)
    return target
