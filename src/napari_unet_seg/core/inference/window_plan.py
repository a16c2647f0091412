"""Where the windows go: aligned to the network's grid, each keeping its centre, the kept parts tiling the image.

Every kept pixel lies at least ``margin`` (the receptive radius, on the grid)
from its window's inner edges, and every window starts on the ``2**depth``
grid, so each output pixel sees exactly what it would see in one whole-image
pass. :func:`split_window` keeps both rules when a window must be made smaller.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Window:
    """One network input (``y0:y1, x0:x1`` in padded coordinates) and the part of its output kept."""

    y0: int
    y1: int
    x0: int
    x1: int
    keep_y0: int
    keep_y1: int
    keep_x0: int
    keep_x1: int


Side = int | tuple[int, int]  # a window's side, or its (height, width)


def sides(window: Side) -> tuple[int, int]:
    """(height, width) of a window given as one side or as both."""
    return (window, window) if isinstance(window, int) else (int(window[0]), int(window[1]))


def padded(length: int, grid: int) -> int:
    """``length`` rounded up to the grid: the image is virtually padded to this."""
    return math.ceil(max(length, 1) / grid) * grid


def axis_windows(length: int, window: int, margin: int, grid: int) -> list[tuple[int, int, int, int]]:
    """Start/end of windows along one padded axis and the output range each keeps.

    Kept ranges tile ``[0, length)`` exactly; every kept pixel is at least
    ``margin`` from its window's edge unless that edge is the image border.
    """
    if window >= length:
        return [(0, length, 0, length)]
    step = window - 2 * margin
    out = []
    keep_start = 0
    while keep_start < length:
        start = min(max(keep_start - margin, 0), length - window)
        start -= start % grid
        end = start + window
        keep_end = length if end >= length else end - margin
        out.append((start, end, keep_start, keep_end))
        keep_start = keep_end
        assert step > 0
    return out


def plan_windows(height: int, width: int, window: Side, margin: int, grid: int) -> tuple[int, int, list[Window]]:
    """Padded size and the windows (``window`` px a side, or (height, width)) covering a height x width image."""
    window_h, window_w = sides(window)
    padded_h, padded_w = padded(height, grid), padded(width, grid)
    rows = axis_windows(padded_h, window_h, margin, grid)
    cols = axis_windows(padded_w, window_w, margin, grid)
    windows = [Window(y0, y1, x0, x1, ky0, ky1, kx0, kx1) for y0, y1, ky0, ky1 in rows for x0, x1, kx0, kx1 in cols]
    return padded_h, padded_w, windows


def _split_axis(start: int, end: int, keep_start: int, keep_end: int, window: int, margin: int,
                grid: int) -> list[tuple[int, int, int, int]]:
    """:func:`axis_windows` over the context the kept range needs, inside ``start:end``, cut to the kept range.

    The context reaches ``margin`` past the kept range except at an edge of
    the window where the window itself had less, which is the image border.
    """
    low, high = max(keep_start - margin, start), min(keep_end + margin, end)
    out = []
    for y0, y1, k0, k1 in axis_windows(high - low, window, margin, grid):
        k0, k1 = max(low + k0, keep_start), min(low + k1, keep_end)
        if k0 < k1:
            out.append((low + y0, low + y1, k0, k1))
    return out


def split_window(win: Window, window: Side, margin: int, grid: int) -> list[Window]:
    """Windows of at most ``window`` px whose kept parts tile ``win``'s kept part, with the same margins and grid.

    ``window`` is on the grid and at least ``2 * margin + grid``; a window
    already that small comes back as the context its kept part needs.
    """
    window_h, window_w = sides(window)
    rows = _split_axis(win.y0, win.y1, win.keep_y0, win.keep_y1, window_h, margin, grid)
    cols = _split_axis(win.x0, win.x1, win.keep_x0, win.keep_x1, window_w, margin, grid)
    return [Window(y0, y1, x0, x1, ky0, ky1, kx0, kx1) for y0, y1, ky0, ky1 in rows for x0, x1, kx0, kx1 in cols]
