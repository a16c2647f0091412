"""Whether an objects table still describes its labels: labels corrected after measuring make it stale.

An export that attached a stale table to edited labels gave QuPath and
OME-Zarr an area of 639 px for an object now 1,600 px, and rows for objects
that no longer exist; the table's ids and areas are checked against the
labels as they are now before it travels with them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .measurements import ObjectTable


def stale_table_reason(table: ObjectTable, labels: Any) -> str | None:
    """Why ``table`` (rows of label, area, centroid and, for stacks, the plane's index) does not describe
    ``labels``; None when every object has its row with its area and centroid now."""
    data = np.asarray(labels)
    if "label" not in table or "area" not in table:
        return None  # not an objects table of ours: nothing to compare
    lead = data.shape[:-2]
    planes = data.reshape((-1, *data.shape[-2:]))
    index_column = next((c for c in ("slice", "frame", "axis0") if c in table), None) if lead else None
    now: dict[tuple[int, int], tuple[int, float, float]] = {}  # (plane, id): area, centroid y, x
    for k, plane in enumerate(planes):
        ids = plane.ravel().astype(np.int64)
        areas = np.bincount(ids)
        rows, cols = np.indices(plane.shape)
        ys, xs = np.bincount(ids, rows.ravel()), np.bincount(ids, cols.ravel())
        now.update({(k, int(i)): (int(a), ys[i] / a, xs[i] / a) for i, a in enumerate(areas) if i and a})
    plane_of = np.asarray(table[index_column], np.int64) if index_column else np.zeros(len(table["label"]), np.int64)
    centroids = zip(table["centroid_y"], table["centroid_x"]) if {"centroid_y", "centroid_x"} <= table.keys() \
        else ((None, None) for _ in plane_of)
    recorded = {(int(p), int(i)): (int(round(float(a))), cy, cx)
                for p, i, a, (cy, cx) in zip(plane_of, table["label"], table["area"], centroids)}
    gone = sorted(set(recorded) - set(now))
    new = sorted(set(now) - set(recorded))
    changed = [key for key in sorted(set(now) & set(recorded)) if now[key][0] != recorded[key][0]]
    moved = [key for key in sorted(set(now) & set(recorded)) if key not in changed and recorded[key][1] is not None
             and max(abs(now[key][1] - float(recorded[key][1])), abs(now[key][2] - float(recorded[key][2]))) > 0.01]
    if not (gone or new or changed or moved):
        return None
    parts = []
    if changed:
        k, i = changed[0]
        parts.append(f"object {i} has {recorded[(k, i)][0]} px in the table and {now[(k, i)][0]} px now"
                     + (f" ({len(changed) - 1} more changed)" if len(changed) > 1 else ""))
    if moved:
        parts.append(f"{len(moved)} object(s) moved (e.g. {moved[0][1]})")
    if gone:
        parts.append(f"{len(gone)} object(s) of the table are gone (e.g. {gone[0][1]})")
    if new:
        parts.append(f"{len(new)} object(s) have no row (e.g. {new[0][1]})")
    return "; ".join(parts)
