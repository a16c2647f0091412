"""Whether an objects table still describes its labels: labels corrected after measuring make it stale.

An export that attached a stale table to edited labels gave QuPath and
OME-Zarr an area of 639 px for an object now 1,600 px, and rows for objects
that no longer exist; the table's ids, areas and centroids are checked
against the labels as they are now (measured block by block, as any table is:
memory stays flat for a huge store) before it travels with them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .measurements import ObjectTable, measure_objects

CENTROID_TOLERANCE = 0.01  # px: a table's centroids are written with more digits than this


def stale_table_reason(table: ObjectTable, labels: Any) -> str | None:
    """Why ``table`` (rows of label, area, centroid and, for stacks, the plane's index) does not describe
    ``labels``; None when every object has its row with its area and centroid now."""
    if "label" not in table or "area" not in table:
        return None  # not an objects table of ours: nothing to compare
    lead = len(labels.shape) - 2
    names = [c for c in ("slice", "frame") if c in table][:1] if lead == 1 else None  # as the table names planes
    now = measure_objects(labels, lead_names=names or None)
    lead_columns = list(now)[1:1 + lead]  # measure_objects' columns: label, then the planes' indices
    recorded, current = _by_object(table, lead_columns), _by_object(now, lead_columns)
    gone = sorted(set(recorded) - set(current))
    new = sorted(set(current) - set(recorded))
    common = sorted(set(current) & set(recorded))
    changed = [key for key in common if current[key][0] != recorded[key][0]]
    moved = [key for key in common if key not in changed and recorded[key][1] is not None
             and max(abs(current[key][1] - recorded[key][1]), abs(current[key][2] - recorded[key][2]))
             > CENTROID_TOLERANCE]
    if not (gone or new or changed or moved):
        return None
    parts = []
    if changed:
        key = changed[0]
        parts.append(f"object {key[-1]} has {recorded[key][0]} px in the table and {current[key][0]} px now"
                     + (f" ({len(changed) - 1} more changed)" if len(changed) > 1 else ""))
    if moved:
        parts.append(f"{len(moved)} object(s) moved (e.g. {moved[0][-1]})")
    if gone:
        parts.append(f"{len(gone)} object(s) of the table are gone (e.g. {gone[0][-1]})")
    if new:
        parts.append(f"{len(new)} object(s) have no row (e.g. {new[0][-1]})")
    return "; ".join(parts)


def _by_object(table: ObjectTable, lead_columns: list[str]) -> dict[tuple[int, ...], tuple[int, Any, Any]]:
    """(plane indices..., id) -> (area, centroid y, centroid x or None when the table has no centroids)."""
    count = len(table["label"])
    planes = [np.asarray(table[c], np.int64) if c in table else np.zeros(count, np.int64) for c in lead_columns]
    centroids = {"centroid_y", "centroid_x"} <= table.keys()
    ys = np.asarray(table["centroid_y"], float) if centroids else [None] * count
    xs = np.asarray(table["centroid_x"], float) if centroids else [None] * count
    return {(*(int(p[k]) for p in planes), int(table["label"][k])):
            (int(round(float(table["area"][k]))), ys[k], xs[k]) for k in range(count)}
