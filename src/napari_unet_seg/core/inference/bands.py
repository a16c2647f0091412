"""Reading a labels plane a band of rows at a time, and adding up per-id pixel counts over the bands.

The object filters and the frame links both work on finished labels that
may live on disk: bands keep a plane from being whole in memory.
"""

from __future__ import annotations

import numpy as np


def row_bands(height: int, rows: int) -> list[slice]:
    """Slices of ``rows`` rows that cover ``height``."""
    return [slice(y, y + rows) for y in range(0, height, max(rows, 1))]


def add_counts(total: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """``total + counts`` for per-id counts (``np.bincount``) of different lengths."""
    if counts.size > total.size:
        total = np.pad(total, (0, counts.size - total.size))
    total[:counts.size] += counts
    return total
