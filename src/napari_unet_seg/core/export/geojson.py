"""Labels -> GeoJSON for QuPath: one detection Feature per object, polygons in pixel coordinates.

QuPath (File > Import objects, or drag and drop) reads ``objectType``,
``classification``, ``name`` and ``measurements`` from a Feature's
properties, and the slice of a stack from the geometry's ``plane``. Outlines
follow pixel edges, so QuPath's area is the object's pixel count. An object
with holes gets interior rings; one of several pieces is a MultiPolygon.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..common.atomic import atomic_path
from .outlines import ObjectOutline, check_labels, closed, object_outlines
from .stamp import provenance_member
from .target import prepare_target

Columns = Mapping[str, Sequence[Any]]


def write_geojson(path: str | os.PathLike, labels: Any, *, measurements: Columns | None = None,
                  classification: str | None = None, stack_axis: str = "z",
                  provenance: Mapping[str, Any] | None = None, overwrite: bool = False,
                  progress: Callable[[int, int], None] | None = None) -> Path:
    """Write every object of ``labels`` (2D or a stack) as a GeoJSON FeatureCollection into ``path``.

    ``measurements`` is a table as columns (e.g. from ``core.measure``) with a
    ``label`` column, and a ``slice`` column for stacks; each object gets its
    row's numeric values, and its ``class_name`` (see ``core.measure.classes``)
    as its QuPath classification. ``classification`` names the class of every
    other object (none by default). ``stack_axis`` says whether a stack's slices are QuPath
    z-slices (``"z"``) or time points (``"t"``). ``provenance`` (where the
    labels came from) becomes a ``napari_unet_seg`` foreign member of the
    collection (RFC 7946 6.1), which QuPath ignores. Labels without objects
    give a valid, empty collection.
    """
    check_labels(labels)
    if stack_axis not in ("z", "t"):
        raise ValueError(f"stack_axis must be 'z' or 't', not {stack_axis!r}")
    rows = _rows_by_object(measurements, stack=labels.ndim == 3)
    classes = _classes_by_object(measurements, stack=labels.ndim == 3)
    path = prepare_target(path, overwrite=overwrite)
    features = []
    for outline in object_outlines(labels):
        key = (outline.plane, outline.label)
        features.append(object_feature(outline, rows.get(key), classes.get(key, classification), stack_axis))
        if progress is not None and outline.plane:
            progress(outline.plane[0] + 1, labels.shape[0])
    collection: dict[str, Any] = {"type": "FeatureCollection", "features": features}
    if provenance is not None:
        collection.update(provenance_member(provenance))
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as handle:
        json.dump(collection, handle, separators=(",", ":"), allow_nan=False)
    return path


def object_feature(outline: ObjectOutline, row: Mapping[str, float] | None = None,
                   classification: str | None = None, stack_axis: str = "z") -> dict[str, Any]:
    """The GeoJSON Feature of one object: a QuPath detection named by its label id."""
    polygons = [[closed(ring).tolist() for ring in part] for part in outline.parts]
    if len(polygons) == 1:
        geometry: dict[str, Any] = {"type": "Polygon", "coordinates": polygons[0]}
    else:
        geometry = {"type": "MultiPolygon", "coordinates": polygons}
    if outline.plane:
        geometry["plane"] = {"c": -1, "z": 0, "t": 0, stack_axis: int(outline.plane[0])}
    values: dict[str, float] = {"label": outline.label}
    if outline.plane:
        values["slice"] = int(outline.plane[0])
    values.update(row or {})
    properties: dict[str, Any] = {"objectType": "detection", "name": f"label {outline.label}",
                                  "label": outline.label, "measurements": values}
    if outline.plane:
        properties["slice"] = int(outline.plane[0])
    if classification:
        properties["classification"] = {"name": classification}
    return {"type": "Feature", "geometry": geometry, "properties": properties}


def _classes_by_object(measurements: Columns | None, *, stack: bool) -> dict[tuple[tuple[int, ...], int], str]:
    """Each classified object's class name (class 0 is none), keyed as :func:`_rows_by_object` keys its row."""
    if not measurements or "class_name" not in measurements:
        return {}
    labels = np.asarray(measurements["label"]).astype(np.int64)
    planes = [(int(s),) for s in np.asarray(measurements["slice"])] if stack else [()] * len(labels)
    classified = np.asarray(measurements["class"]) != 0 if "class" in measurements else np.ones(len(labels), bool)
    names = measurements["class_name"]
    return {(plane, int(label)): str(name) for plane, label, name, keep in zip(planes, labels, names, classified)
            if keep and str(name)}


def _rows_by_object(measurements: Columns | None, *, stack: bool) -> dict[tuple[tuple[int, ...], int], dict[str, float]]:
    """Each object's numeric measurements, keyed by (plane index, label); NaN and text left out."""
    if not measurements:
        return {}
    keys = ["slice", "label"] if stack else ["label"]
    missing = [key for key in keys if key not in measurements]
    if missing:
        raise ValueError(f"the measurements have no {' or '.join(missing)!r} column to match them with the objects")
    lengths = {len(values) for values in measurements.values()}
    if len(lengths) > 1:
        raise ValueError("the measurement columns have different lengths")
    numeric = {name: np.asarray(values) for name, values in measurements.items()
               if name not in keys and np.asarray(values).dtype.kind in "biuf"}
    labels = np.asarray(measurements["label"]).astype(np.int64)
    planes: Iterable[tuple[int, ...]] = ([(int(s),) for s in np.asarray(measurements["slice"])] if stack
                                         else [()] * len(labels))
    rows = {}
    for i, (plane, label) in enumerate(zip(planes, labels, strict=True)):
        row = {}
        for name, values in numeric.items():
            value = values[i].item()
            if not (isinstance(value, float) and not math.isfinite(value)):
                row[name] = value
        rows[(plane, int(label))] = row
    return rows
