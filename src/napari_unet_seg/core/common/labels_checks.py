"""Noticing an intensity image given where labels belong, the commonest slip when picking files.

Shared by every place that takes labels from the user (measuring, training),
so they warn alike. A warning only: the user judges; nothing is refused.
"""

from __future__ import annotations

from typing import Any

import numpy as np

WINDOW = 512  # the side of the central window looked at: enough pixels to judge, never a whole large image
SAME_NEIGHBOURS = 0.8  # labels: most neighbours share their value (objects and background are flat)


def looks_like_an_intensity_image(labels: Any, window: int = WINDOW) -> bool:
    """Label images are piecewise constant; a microscope image's values change from pixel to pixel.

    Judged on the first plane of a stack and, in a large plane, on a central
    ``window``, so a lazy (zarr, dask) array is read only there.
    """
    if len(labels.shape) < 2 or min(labels.shape[-2:]) < 2:
        return False
    plane = labels[(0,) * (len(labels.shape) - 2)]
    height, width = plane.shape
    top, left = max(0, (height - window) // 2), max(0, (width - window) // 2)
    plane = np.asarray(plane[top:top + window, left:left + window])
    same = np.count_nonzero(plane[:, 1:] == plane[:, :-1]) + np.count_nonzero(plane[1:] == plane[:-1])
    return same / (plane[:, 1:].size + plane[1:].size) < SAME_NEIGHBOURS
