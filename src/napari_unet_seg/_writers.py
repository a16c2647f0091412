"""napari writers (File > Save Selected Layers...): a Labels layer as ImageJ ROIs, QuPath GeoJSON or OME-Zarr.

npe2 hands each writer the layers as (data, attributes[, type]); these only
translate them into core.export calls. The layer's ``features`` (the
Measurements table) travel as measurements, its ``metadata["provenance"]``
(a Segment result's) as the export's provenance, marked edited once the
labels were painted on; a layer ``scale`` other than 1 is its pixel size, and
its ``translate`` the OME-Zarr's origin. A
name typed without the format's suffix gets it. The save dialog has already
asked before replacing the file it named (not one whose name gained a suffix
here); an existing OME-Zarr folder is never replaced. Whatever is not to be
replaced is kept, and the export goes to the first free name beside it
(``cells-2.zip``), which a notification names. A folder that cannot be
written is said in one line, not a traceback.

Each writer also accepts an Image layer selected with the labels (only
OME-Zarr stores it): npe2 lists writers of fewer layer kinds first, so
napari's own TIFF writer stays the save dialog's first choice, the one a
name typed without a suffix gets.
"""

from __future__ import annotations

import functools
import itertools
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from napari.utils.notifications import show_info

from ._layer_marks import features_describe, layer_provenance
from .core.common.errors import first_line
from .core.export import write_geojson, write_imagej_rois, write_ome_zarr
from .core.export.target import FORMAT_SUFFIXES, with_format_suffix

LayerData = tuple[Any, dict[str, Any], str]
Writer = Callable[[str, list[LayerData]], list[str]]


def _said(writer: Writer) -> Writer:
    """A writer whose failure (a folder that cannot be written, a name taken by a folder) is one line.

    Said as a warning, not a notification of its own: napari's save dialog
    gathers the warnings of a save that wrote nothing into the one error it
    then shows ("File x.zip save failed. Not saved: <why>"); saved from
    Python (``viewer.layers.save``), napari shows it as a warning.
    """
    @functools.wraps(writer)
    def write(path: str, layers: list[LayerData]) -> list[str]:
        try:
            return writer(path, layers)
        except (OSError, ValueError) as exc:
            warnings.warn(f"Not saved: {first_line(exc)}", UserWarning, stacklevel=2)
            return []
    return write


@_said
def write_labels_rois(path: str, layers: list[LayerData]) -> list[str]:
    """A Labels layer -> an ImageJ/Fiji ROI set (.zip); an Image layer selected with it is not part of it."""
    data, attributes = _labels(layers)
    target, replace = _target(path, "imagej")
    return [str(write_imagej_rois(target, data, provenance=layer_provenance(attributes.get("metadata"), data),
                                  overwrite=replace))]


@_said
def write_labels_geojson(path: str, layers: list[LayerData]) -> list[str]:
    """A Labels layer -> QuPath GeoJSON, with its features as each object's measurements."""
    data, attributes = _labels(layers)
    target, replace = _target(path, "geojson")
    return [str(write_geojson(target, data, measurements=_measurements(attributes, data),
                              stack_axis=_stack_axis(attributes),
                              provenance=layer_provenance(attributes.get("metadata"), data),
                              overwrite=replace))]


@_said
def write_labels_ome_zarr(path: str, layers: list[LayerData]) -> list[str]:
    """A Labels layer, and the Image layer it belongs to if one is selected too -> one OME-Zarr folder."""
    data, attributes = _labels(layers)
    image = next((layer for layer in layers if layer[2] == "image"), None)
    image_data = _level0(*image[:2]) if image else None
    rgb = bool(image and image[1].get("rgb"))
    target, _ = _target(path, "ome-zarr")
    written = write_ome_zarr(target, data, image_data, rgb=rgb, pixel_size=_pixel_size(attributes),
                             name=_group_name(attributes.get("name")), title=attributes.get("name") or None,
                             measurements=_measurements(attributes, data), stack_axis=_stack_axis(attributes),
                             provenance=layer_provenance(attributes.get("metadata"), data),
                             origin=_origin(attributes))
    return [str(written)]


def _target(path: str, fmt: str) -> tuple[Path, bool]:
    """Where an export of ``fmt`` goes, and whether it may replace a file there.

    The file the save dialog asked about (its whole name typed) may be
    replaced; a folder never is, nor a file whose name gained its suffix
    here. Either is kept, and the export goes to the first free
    ``<name>-N<suffix>`` beside it, said in a notification.
    """
    target = with_format_suffix(path, fmt)
    if not target.exists() or (_confirmed(path, target) and target.is_file() and fmt != "ome-zarr"):
        return target, target.exists()
    name = target.name
    suffix = next(s for s in FORMAT_SUFFIXES[fmt] if name.lower().endswith(s))
    stem, ending = name[: -len(suffix)], name[-len(suffix):]
    free = next(candidate for k in itertools.count(2)
                if not (candidate := target.with_name(f"{stem}-{k}{ending}")).exists())
    show_info(f"{name} exists and was kept: saved as {free.name}")
    return free, False


def _labels(layers: list[LayerData]) -> tuple[Any, dict[str, Any]]:
    """The one Labels layer among the selected ones (npe2 hands exactly one), at full resolution."""
    data, attributes, _ = next(layer for layer in layers if layer[2] == "labels")
    return _level0(data, attributes), attributes


def _confirmed(path: str, target: Path) -> bool:
    """Whether the save dialog asked before replacing ``target``: only when the user typed its whole name.

    A suffix added here names another file, which nobody agreed to replace.
    """
    return Path(path) == target


def _level0(data: Any, attributes: dict[str, Any]) -> Any:
    """Full resolution of a multiscale layer; the data itself otherwise."""
    return data[0] if attributes.get("multiscale") else data


def _pixel_size(attributes: dict[str, Any]) -> tuple[float, float] | None:
    """The layer's scale in y and x, when not 1: its pixel size."""
    return _plane_pair(attributes, "scale", 1.0)


def _origin(attributes: dict[str, Any]) -> tuple[float, float] | None:
    """The layer's translate in y and x (where its first pixel lies), so the OME-Zarr lands where the layer lay."""
    return _plane_pair(attributes, "translate", 0.0)


def _plane_pair(attributes: dict[str, Any], key: str, neutral: float) -> tuple[float, float] | None:
    """A layer attribute's last two values (y, x); None when absent or both ``neutral`` (nothing to write)."""
    values = attributes.get(key)
    if values is None or len(values) < 2:
        return None
    y, x = (float(v) for v in values[-2:])
    return None if (y, x) == (neutral, neutral) else (y, x)


def _measurements(attributes: dict[str, Any], data: Any) -> dict[str, Any] | None:
    """The layer's features as columns, when they say which object (label, and slice in a stack) each row is,
    and still describe the labels (not painted on since they were measured or read)."""
    features = attributes.get("features")
    keys = ["label", "slice"] if data.ndim == 3 else ["label"]
    if features is None or len(features) == 0 or any(key not in features for key in keys):
        return None
    if not features_describe(attributes.get("metadata"), data):
        show_info("The measurements were left out: the labels changed since they were measured (press Measure in "
                  "the Measurements dock, then save again, to include them).")
        return None
    columns = {str(column): features[column].to_numpy() for column in features.columns}
    if "index" in columns and np.array_equal(columns["index"], columns["label"]):
        del columns["index"]  # napari's own copy of the label (how it finds an object's row): no measurement
    return columns


def _stack_axis(attributes: dict[str, Any]) -> str:
    """``"t"`` for a time-lapse's labels (Segment linked its frames, or the layer's axis says time), else ``"z"``."""
    record = (attributes.get("metadata") or {}).get("provenance")
    settings = record.get("settings") if isinstance(record, dict) else None
    if isinstance(settings, dict) and settings.get("link_frames"):
        return "t"
    axis_labels = attributes.get("axis_labels") or ()
    first = str(axis_labels[0]).lower() if len(axis_labels) == 3 else ""
    return "t" if first in ("t", "time", "frame", "frames") else "z"


def _group_name(name: str | None) -> str:
    """The layer's name as a zarr path: letters, digits, - and _ (a space breaks URLs, S3 and MoBIE)."""
    cleaned = "".join(c if c.isalnum() or c in "-_" else "_" for c in (name or "").strip()).lstrip("._")
    return cleaned or "labels"
