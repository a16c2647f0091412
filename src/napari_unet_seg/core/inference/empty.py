"""Where nothing can be: black gaps, padding, saturated and constant areas.

Stitched scans have black (zero) gaps between rows of tiles, images are
padded with zeros, detectors saturate, masked areas are filled with one
value. No nucleus is exactly flat over a large square, and none is darker
than the background, so:

- a pixel in a flat ``DARK_SIDE`` x ``DARK_SIDE`` square at or below the
  bottom of the intensity window (after inversion: the background end) is
  empty;
- a pixel in a flat square of any value at least twice as wide as the
  objects expected at this scale is empty (a saturated nucleus, clipped
  flat, is smaller than that and stays);
- so is a pixel in a flat stripe ``DARK_SIDE`` px wide and five object
  diameters long, across or down (a saturated line or seam: no nucleus is
  that long and flat).

The pipeline forces the network's foreground to 0 there, so the model's
output cannot grow objects in such areas whatever it learnt. The mask is
computed on the normalised image, window by window identically, so tiles
and blocks agree with the whole image.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage as ndi

DARK_SIDE = 5  # px: the smallest flat dark square counted as empty
FLAT_OBJECTS = 2.0  # a flat square of any value this many object diameters wide is empty
STRIPE_LENGTH = 2.5  # a flat stripe DARK_SIDE px wide and this many times longer than that square is empty
DEFAULT_FLAT_SIDE = 64  # px, when the model does not know its objects' size
EMPTY_LOGIT = -60.0  # what the network's foreground and centre logits become on empty pixels


def flat_squares(image: np.ndarray, side: int) -> np.ndarray:
    """(H, W) pixels covered by a ``side`` x ``side`` square of one value in every channel of a (C, H, W) image.

    Squares must lie inside the image: an area at the edge is judged by the
    pixels it has, never by invented ones.
    """
    return flat_rectangles(image, side, side)


def flat_rectangles(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """(H, W) pixels covered by a ``height`` x ``width`` rectangle of one value in every channel."""
    return _covered(*_equal_neighbours(np.asarray(image)), height, width)


def _equal_neighbours(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(H, W - 1) pixels equal to their right-hand neighbour, (H - 1, W) to the one below, in every channel."""
    return (image[:, :, 1:] == image[:, :, :-1]).all(axis=0), (image[:, 1:, :] == image[:, :-1, :]).all(axis=0)


def _covered(same_across: np.ndarray, same_down: np.ndarray, height: int, width: int) -> np.ndarray:
    """Pixels covered by a flat ``height`` x ``width`` rectangle, from the equal-neighbour maps.

    Exact, and fast where flat areas are rare: every flat rectangle contains a
    flat cell of a coarse grid (cells of about half its sides), so only the
    neighbourhoods of flat cells are searched, with running sums.
    """
    height, width = max(int(height), 2), max(int(width), 2)
    h, w = same_down.shape[0] + 1, same_across.shape[1] + 1
    out = np.zeros((h, w), bool)
    if h < height or w < width or not same_across.any():
        return out
    # a rectangle always holds one whole aligned cell of half its sides (rounded up)
    cell_h, cell_w = (height + 1) // 2, (width + 1) // 2
    flat_cells = _flat_cells(same_across, same_down, cell_h, cell_w)
    if not flat_cells.any():
        return out
    reach = np.ones((2 * int(np.ceil(height / cell_h)) + 1, 2 * int(np.ceil(width / cell_w)) + 1), bool)
    regions, _ = ndi.label(ndi.binary_dilation(flat_cells, reach))
    boxes = [(max(b[0].start * cell_h - height, 0), min(b[0].stop * cell_h + height, h),
              max(b[1].start * cell_w - width, 0), min(b[1].stop * cell_w + width, w))
             for b in ndi.find_objects(regions)]
    if sum((y1 - y0) * (x1 - x0) for y0, y1, x0, x1 in boxes) > h * w // 2 or len(boxes) > 256:
        return _rectangles_in(same_across, same_down, height, width)  # flat areas everywhere: one search
    for y0, y1, x0, x1 in boxes:
        out[y0:y1, x0:x1] |= _rectangles_in(same_across[y0:y1, x0:x1 - 1], same_down[y0:y1 - 1, x0:x1], height, width)
    return out


def _flat_cells(same_across: np.ndarray, same_down: np.ndarray, cell_h: int, cell_w: int) -> np.ndarray:
    """(H // cell_h, W // cell_w): aligned cells whose pixels are all one value."""
    h, w = same_down.shape[0] + 1, same_across.shape[1] + 1
    ch, cw = h // cell_h, w // cell_w
    across = np.ones((h, w), bool)
    across[:, :-1] = same_across
    across[:, cell_w - 1::cell_w] = True  # a cell's last column need not equal the next cell's first
    down = np.ones((h, w), bool)
    down[:-1] = same_down
    down[cell_h - 1::cell_h] = True
    both = (across & down)[:ch * cell_h, :cw * cell_w].reshape(ch, cell_h, cw, cell_w)
    return both.all(axis=(1, 3))


def _rectangles_in(same_across: np.ndarray, same_down: np.ndarray, height: int, width: int) -> np.ndarray:
    """Pixels covered by a flat ``height`` x ``width`` rectangle (the whole search, with running sums)."""
    h, w = same_down.shape[0] + 1, same_across.shape[1] + 1
    if h < height or w < width:
        return np.zeros((h, w), bool)
    rows = _all_in_windows(same_across, width - 1, axis=1)  # (H, W - width + 1): [x, x + width) is flat
    column = _all_in_windows(same_down[:, :w - width + 1], height - 1, axis=0)  # the first column too
    corners = _all_in_windows(rows, height, axis=0) & column  # top-left corners of flat rectangles
    if not corners.any():
        return np.zeros((h, w), bool)
    padded = np.zeros((h + height - 1, w + width - 1), bool)
    padded[height - 1:height - 1 + corners.shape[0], width - 1:width - 1 + corners.shape[1]] = corners
    return _any_in_windows(_any_in_windows(padded, height, axis=0), width, axis=1)


def _all_in_windows(values: np.ndarray, length: int, axis: int) -> np.ndarray:
    """Whether all ``length`` consecutive values along ``axis`` of a 2D bool array are true (one per full window).

    A running minimum (scipy's, whose cost does not grow with the window) of
    the bytes: running sums of int32 (``cumsum``) were two thirds of the
    empty-area search, a third of a second a 2048² block.
    """
    return _in_windows(ndi.minimum_filter1d, values, length, axis)


def _any_in_windows(values: np.ndarray, length: int, axis: int) -> np.ndarray:
    """Whether any of ``length`` consecutive values along ``axis`` is true (one per full window)."""
    return _in_windows(ndi.maximum_filter1d, values, length, axis)


def _in_windows(running: Any, values: np.ndarray, length: int, axis: int) -> np.ndarray:
    """``running`` (scipy's running minimum or maximum) over each full window of ``length`` (>= 1) along ``axis``."""
    n = values.shape[axis]
    if n < length:
        shape = list(values.shape)
        shape[axis] = 0
        return np.zeros(shape, bool)
    filtered = running(np.ascontiguousarray(values).view(np.uint8), length, axis=axis, mode="nearest")
    first = length // 2  # the filter centres its window: the one starting at s is centred at s + length // 2
    kept = (slice(None),) * axis + (slice(first, first + n - length + 1),)
    return filtered[kept].view(bool)


def flat_side(object_diameter: float | None, scale: float) -> int:
    """The side (image px) of a flat square too large to be one object, for objects of this size at this scale."""
    if not object_diameter:
        return DEFAULT_FLAT_SIDE
    return int(round(FLAT_OBJECTS * float(object_diameter) / scale))


def empty_regions(normalised: Any, side: int) -> np.ndarray:
    """(H, W) bool: pixels of a normalised (C, H, W) image where no object can be (see the module's docstring)."""
    image = np.asarray(normalised, np.float32)
    same_across, same_down = _equal_neighbours(image)
    if not same_across.any():
        return np.zeros(image.shape[1:], bool)
    dark = (image <= 0).all(axis=0)
    empty = _covered(same_across & dark[:, 1:], same_down & dark[1:], DARK_SIDE, DARK_SIDE)
    empty |= _covered(same_across, same_down, side, side)
    stripe = int(round(STRIPE_LENGTH * side))
    return empty | _covered(same_across, same_down, DARK_SIDE, stripe) | _covered(same_across, same_down, stripe, DARK_SIDE)


def suppress(logits: np.ndarray, empty: np.ndarray | None) -> np.ndarray:
    """Instance logits (foreground, centre, ...) with no foreground and no centre on ``empty`` pixels."""
    if empty is None or not empty.any():
        return logits
    out = logits.copy()
    out[:2, empty] = EMPTY_LOGIT
    return out
