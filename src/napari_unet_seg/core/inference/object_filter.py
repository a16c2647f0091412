"""Object filters the user asks for: a smallest and a largest area, and no objects cut by the image's edge.

Counting and measuring often want whole cells of a plausible size only:
debris and clumps skew the statistics, and a nucleus cut by the field of
view's edge measures small. The filters run on each plane's finished labels,
where every object is whole (blocks already joined), so labels in memory and
on disk agree. Dropped objects become background; the others keep their ids,
the ids an unfiltered run gives them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .bands import add_counts, row_bands
from .options import RunOptions

ROWS_PER_PASS = 512  # rows of a plane read at once: a band of chunks of a store on disk (its CHUNK)


@dataclass(frozen=True)
class ObjectFilter:
    """Keep objects of ``min_area`` px or more, of ``max_area`` px or less (0: no limit), and, with
    ``exclude_border``, only those that do not touch the plane's edge. Areas are in the image's pixels."""

    min_area: int = 0
    max_area: int = 0
    exclude_border: bool = False

    @classmethod
    def of(cls, options: RunOptions) -> ObjectFilter:
        return cls(options.min_area, options.max_area, options.exclude_border)

    @property
    def active(self) -> bool:
        return self.min_area > 0 or self.max_area > 0 or self.exclude_border

    def kept(self, areas: np.ndarray, on_border: np.ndarray) -> np.ndarray:
        """Which ids to keep, from each id's area and whether it touches the edge (0, background, never)."""
        keep = areas > 0
        if self.min_area > 0:
            keep &= areas >= self.min_area
        if self.max_area > 0:
            keep &= areas <= self.max_area
        if self.exclude_border:
            keep &= ~on_border
        keep[0] = False
        return keep

    def describe(self) -> str:
        """``"objects of 50-5000 px, not touching the border"`` (empty when no filter is set)."""
        parts = []
        if self.min_area and self.max_area == self.min_area:
            parts.append(f"objects of {self.min_area} px exactly")
        elif self.min_area and self.max_area:
            parts.append(f"objects of {self.min_area}-{self.max_area} px")
        elif self.min_area:
            parts.append(f"objects of {self.min_area} px or more")
        elif self.max_area:
            parts.append(f"objects of {self.max_area} px or less")
        if self.exclude_border:
            parts.append("not touching the border" if parts else "objects not touching the border")
        return ", ".join(parts)


def check_object_filter(options: RunOptions, task: str) -> None:
    """Refuse filters that cannot work, before any time is spent: they need objects, and a sane size range."""
    found = ObjectFilter.of(options)
    if not found.active:
        return
    if task != "instances":
        raise ValueError("object filters (smallest/largest area, border) apply to objects, and this is a class model "
                         "(its output is a class per pixel): use an instance model such as 'nuclei', or clear the "
                         "filters")
    if options.output != "instances":
        raise ValueError("object filters (smallest/largest area, border) apply to objects: choose instances output, "
                         "or clear the filters")
    if found.max_area and found.max_area < found.min_area:
        raise ValueError(f"the largest area ({found.max_area} px) is below the smallest ({found.min_area} px): "
                         "no object could be kept")


def filter_plane(out: Any, lead: tuple[int, ...], found: ObjectFilter,
                 rows_per_pass: int = ROWS_PER_PASS) -> tuple[int, float, int]:
    """Drop the objects of the plane ``out[lead]`` (numpy or zarr) that ``found`` rejects, in place.

    Reads the plane in bands of ``rows_per_pass`` rows (twice: areas and
    edges, then the rewrite, only where something is dropped), so a plane on
    disk is never whole in memory. Returns the objects kept, their area and
    the number dropped.
    """
    height, width = out.shape[-2:]
    areas = np.zeros(1, np.int64)
    edge_ids: list[np.ndarray] = []
    for rows in row_bands(height, rows_per_pass):
        band = np.asarray(out[lead + (rows, slice(None))])
        areas = add_counts(areas, np.bincount(band.ravel().astype(np.int64, copy=False)))
        edge_ids += [band[:, 0], band[:, -1]]
        if rows.start == 0:
            edge_ids.append(band[0])
        if rows.stop >= height:
            edge_ids.append(band[-1])
    on_border = np.zeros(areas.size, bool)
    on_border[np.concatenate(edge_ids).astype(np.int64)] = True
    keep = found.kept(areas, on_border)
    kept, dropped = int(keep.sum()), int((areas[1:] > 0).sum()) - int(keep.sum())
    if dropped:
        table = np.where(keep, np.arange(areas.size), 0).astype(out.dtype)
        for rows in row_bands(height, rows_per_pass):
            where = lead + (rows, slice(None))
            out[where] = table[np.asarray(out[where])]
    return kept, float(areas[keep].sum()), dropped


def dropped_note(found: ObjectFilter, dropped: int) -> str:
    """What the filters did, for the run's notes: "12 objects dropped (kept: objects of 50 px or more)"."""
    return f"{dropped} object{'s' if dropped != 1 else ''} dropped (kept: {found.describe()})"
