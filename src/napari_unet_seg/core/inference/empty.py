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
  flat, is smaller than that and stays).

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
DEFAULT_FLAT_SIDE = 64  # px, when the model does not know its objects' size
EMPTY_LOGIT = -60.0  # what the network's foreground and centre logits become on empty pixels


def flat_squares(image: np.ndarray, side: int) -> np.ndarray:
    """(H, W) pixels covered by a ``side`` x ``side`` square of one value in every channel of a (C, H, W) image.

    Squares must lie inside the image: an area at the edge is judged by the
    pixels it has, never by invented ones.
    """
    return _covered_by_squares(*_equal_neighbours(np.asarray(image)), side)


def _equal_neighbours(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(H, W - 1) pixels equal to their right-hand neighbour, (H - 1, W) to the one below, in every channel."""
    return (image[:, :, 1:] == image[:, :, :-1]).all(axis=0), (image[:, 1:, :] == image[:, :-1, :]).all(axis=0)


def _covered_by_squares(same_across: np.ndarray, same_down: np.ndarray, side: int) -> np.ndarray:
    """Pixels covered by a flat ``side`` x ``side`` square, from the equal-neighbour maps.

    Exact, and fast where flat areas are rare: every flat square contains a
    flat cell of a coarse grid (cells of about half its side), so only the
    neighbourhoods of flat cells are searched, with running sums.
    """
    side = max(int(side), 2)
    h, w = same_down.shape[0] + 1, same_across.shape[1] + 1
    out = np.zeros((h, w), bool)
    if h < side or w < side or not same_across.any():
        return out
    cell = max((side + 1) // 2, 1)  # a side x side square always holds one whole aligned cell x cell cell
    flat_cells = _flat_cells(same_across, same_down, cell)
    if not flat_cells.any():
        return out
    regions, _ = ndi.label(ndi.binary_dilation(flat_cells, iterations=int(np.ceil(side / cell))))
    boxes = [(max(b[0].start * cell - side, 0), min(b[0].stop * cell + side, h),
              max(b[1].start * cell - side, 0), min(b[1].stop * cell + side, w)) for b in ndi.find_objects(regions)]
    if sum((y1 - y0) * (x1 - x0) for y0, y1, x0, x1 in boxes) > h * w // 2 or len(boxes) > 256:
        return _squares_in(same_across, same_down, side)  # flat areas everywhere: one search of the whole image
    for y0, y1, x0, x1 in boxes:
        out[y0:y1, x0:x1] |= _squares_in(same_across[y0:y1, x0:x1 - 1], same_down[y0:y1 - 1, x0:x1], side)
    return out


def _flat_cells(same_across: np.ndarray, same_down: np.ndarray, cell: int) -> np.ndarray:
    """(H // cell, W // cell): aligned cells whose pixels are all one value."""
    h, w = same_down.shape[0] + 1, same_across.shape[1] + 1
    ch, cw = h // cell, w // cell
    if cell == 1:
        return np.ones((h, w), bool)
    across = np.ones((h, w), bool)
    across[:, :-1] = same_across
    across[:, cell - 1::cell] = True  # a cell's last column need not equal the next cell's first
    down = np.ones((h, w), bool)
    down[:-1] = same_down
    down[cell - 1::cell] = True
    both = (across & down)[:ch * cell, :cw * cell].reshape(ch, cell, cw, cell)
    return both.all(axis=(1, 3))


def _squares_in(same_across: np.ndarray, same_down: np.ndarray, side: int) -> np.ndarray:
    """Pixels covered by a flat ``side`` x ``side`` square (the whole search, with running sums)."""
    h, w = same_down.shape[0] + 1, same_across.shape[1] + 1
    if h < side or w < side:
        return np.zeros((h, w), bool)
    rows = _window_sums(same_across, side - 1, axis=1) == side - 1  # (H, W - side + 1): [x, x + side) is flat
    column = _window_sums(same_down[:, :w - side + 1], side - 1, axis=0) == side - 1  # a square's first column
    corners = (_window_sums(rows, side, axis=0) == side) & column  # (H - side + 1, W - side + 1): top-left corners
    if not corners.any():
        return np.zeros((h, w), bool)
    padded = np.zeros((h + side - 1, w + side - 1), bool)
    padded[side - 1:side - 1 + corners.shape[0], side - 1:side - 1 + corners.shape[1]] = corners
    return _window_sums(_window_sums(padded, side, axis=0) > 0, side, axis=1) > 0


def _window_sums(values: np.ndarray, length: int, axis: int) -> np.ndarray:
    """Sums of ``length`` consecutive values along ``axis`` of a 2D array (one per full window), as int32."""
    total = np.zeros((values.shape[0] + 1, values.shape[1]) if axis == 0 else (values.shape[0], values.shape[1] + 1),
                     np.int32)
    if axis == 0:
        np.cumsum(values, axis=0, dtype=np.int32, out=total[1:])
        return total[length:] - total[:-length]
    np.cumsum(values, axis=1, dtype=np.int32, out=total[:, 1:])
    return total[:, length:] - total[:, :-length]


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
    empty = _covered_by_squares(same_across & dark[:, 1:], same_down & dark[1:], DARK_SIDE)
    return empty | _covered_by_squares(same_across, same_down, side)


def suppress(logits: np.ndarray, empty: np.ndarray | None) -> np.ndarray:
    """Instance logits (foreground, centre, ...) with no foreground and no centre on ``empty`` pixels."""
    if empty is None or not empty.any():
        return logits
    out = logits.copy()
    out[:2, empty] = EMPTY_LOGIT
    return out
