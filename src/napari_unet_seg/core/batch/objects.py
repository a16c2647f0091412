"""The objects table of one batch output: ``<stem>_objects.csv`` beside its labels, and the file's totals.

The table is measured from the labels as written (a zarr output block by
block), with the input image's channels as intensities. A CSV of that name
that this package did not write is the user's: it is kept, and the row says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..common.errors import first_line
from ..imageio import ImageFile
from ..inference.layout import MAX_CHANNELS
from ..measure.measurements import ObjectTable, colour_without_alpha, measure_objects
from ..measure.table_csv import is_objects_csv, objects_csv_path, write_objects_csv
from .errors import stopped_by_shutdown

INTENSITY = "intensity"  # the same column names for every file, so tables of a folder concatenate
STOPPED = "the run was stopped before it was measured (a rerun measures it)"  # napari closed mid-file


@dataclass(frozen=True)
class ObjectsOutcome:
    """What measuring one output gave: its totals (None if not measured) and a note for the summary row."""

    objects: int | None = None
    mean_area: float = 0.0
    note: str = ""


def intensity_of(image: ImageFile, labels_shape: tuple[int, ...] | None = None) -> Any:
    """The image as intensities for the labels: channels last (RGB, or an OME-Zarr ``c`` axis moved there).

    A (N, H, W) stack of 2-4 planes over (H, W) labels (``labels_shape``) is channels: a TIFF saved C, Y, X.
    """
    import dask.array as da

    if image.channel_axis is not None:
        return da.moveaxis(da.asarray(image.data), image.channel_axis, -1)
    shape = tuple(image.data.shape)
    if labels_shape is not None and image.stack and not image.rgb and len(labels_shape) == 2 \
            and shape[1:] == tuple(labels_shape) and 2 <= shape[0] <= MAX_CHANNELS:
        return da.moveaxis(da.asarray(image.data), 0, -1)
    return colour_without_alpha(image.data) if image.rgb else image.data


def measure_output(labels: Any, image: ImageFile, target: Path, header: dict[str, Any] | None = None) -> ObjectsOutcome:
    """Measure ``labels`` (written to ``target``) and write its objects CSV; never raises.

    The totals count objects over all planes of a stack and average their area.
    """
    path = objects_csv_path(target)
    try:
        table = measure_objects(labels, {INTENSITY: intensity_of(image)}, pixel_size=image.pixel_size)
    except Exception as exc:  # noqa: BLE001 - the labels are written; a table that cannot be made is a note
        why = STOPPED if stopped_by_shutdown(exc) else first_line(exc)
        return ObjectsOutcome(note=f"no objects table: {why}")
    outcome = totals(table)
    if path.exists() and not is_objects_csv(path):
        return ObjectsOutcome(outcome.objects, outcome.mean_area,
                              f"{path.name} exists and was not written by unet-seg: kept, objects table not written")
    size = f"{image.pixel_size[0]:g} x {image.pixel_size[1]:g} um" if image.pixel_size else "unknown"
    comments = {"labels": target.name, "image": image.path.name, "pixel_size": size, **(header or {})}
    try:
        write_objects_csv(path, table, comments)
    except OSError as exc:
        return ObjectsOutcome(outcome.objects, outcome.mean_area, f"objects table not written: {first_line(exc)}")
    return outcome


def totals(table: ObjectTable) -> ObjectsOutcome:
    """Objects over every plane, and their mean area in pixels."""
    areas = np.asarray(table["area"], np.float64)
    return ObjectsOutcome(len(areas), float(areas.mean()) if len(areas) else 0.0)
