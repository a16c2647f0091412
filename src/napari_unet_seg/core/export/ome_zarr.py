"""Image + labels -> OME-Zarr (NGFF 0.4) through ome-zarr-py, for napari-ome-zarr, Fiji/MoBIE and QuPath.

Layout: the image as a multiscale pyramid at the root, the labels under
``labels/<name>`` with ``image-label`` metadata (a colour per object, and the
measurements as ``properties`` when given). NGFF 0.4 (zarr format 2) rather
than 0.5 because Fiji's readers (MoBIE, n5-zarr) and older napari-ome-zarr
read it. Axes follow NGFF order (t, c, z, y, x): colour and multichannel
images get a ``c`` axis (after ``t``, before ``z``), which labels leave out; pixel sizes become the scale
of y and x in micrometres. Without an image, an all-zero placeholder stands
in (NGFF labels belong to an image); its chunks are never stored.
"""

from __future__ import annotations

import colorsys
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..common.atomic import atomic_path
from ..common.labels_zarr import UNIT, compressor, pyramid_factors  # one rule for exports and labels stores
from .outlines import check_labels, check_same_plane
from .stamp import provenance_member
from .target import EXPORT_MARK, prepare_target

CHUNK = 1024  # plane chunks: what viewers read per tile


def write_ome_zarr(path: str | os.PathLike, labels: Any, image: Any = None, *, rgb: bool = False,
                   channel_axis: int | None = None, pixel_size: tuple[float, float] | None = None,
                   name: str = "labels", stack_axis: str = "z", colors: Mapping[int, Sequence[int]] | None = None,
                   measurements: Mapping[str, Sequence[Any]] | None = None,
                   provenance: Mapping[str, Any] | None = None, overwrite: bool = False,
                   origin: tuple[float, float] | None = None, title: str | None = None) -> Path:
    """Write ``image`` (optional) and ``labels`` as one OME-Zarr folder ``path``.

    ``labels`` is (H, W) or a stack (N, H, W); ``image`` covers the same
    pixels: (H, W), (N, H, W), colour (..., H, W, 3|4) with ``rgb``, or planes
    with channels at ``channel_axis``. Arrays may be numpy, dask or zarr (written
    chunk by chunk). ``stack_axis`` names the stack axis (``"z"`` or ``"t"``).
    ``colors`` maps label ids to RGBA (0-255); by default every object gets a
    distinct colour. ``measurements`` (columns with a ``label`` column) become
    the labels' ``properties``. ``provenance`` (where the labels came from)
    goes in the labels group's attributes as ``napari_unet_seg.provenance``,
    beside its NGFF metadata. ``origin`` (y, x: where the first pixel's centre
    lies, in the pixel size's units, as a napari layer's ``translate``) becomes
    an NGFF translation, so the export lands where the layers lay. ``name`` is the
    labels group's path (no spaces, for URLs and S3); ``title`` the name viewers
    show for it (default ``name``), e.g. the napari layer's. The folder is complete or absent.
    """
    import dask
    import dask.array as da
    import zarr
    from ome_zarr.format import FormatV04
    from ome_zarr.writer import write_image, write_labels

    check_labels(labels)
    if stack_axis not in ("z", "t"):
        raise ValueError(f"stack_axis must be 'z' or 't', not {stack_axis!r}")
    if pixel_size is not None and not all(math.isfinite(v) and v > 0 for v in pixel_size):
        raise ValueError(f"the pixel size must be two positive numbers (y, x), not {tuple(pixel_size)}")
    if origin is not None and not all(math.isfinite(v) for v in origin):
        raise ValueError(f"the origin must be two finite numbers (y, x), not {tuple(origin)}")
    if not name or any(c in name for c in "/\\") or name.startswith("."):
        raise ValueError(f"{name!r} cannot name a labels group (no slashes, no leading dot)")
    lab = da.asarray(labels) if not isinstance(labels, da.Array) else labels
    if lab.dtype == bool:
        lab = lab.astype(np.uint8)
    stack = lab.ndim == 3
    spatial = ([stack_axis] if stack else []) + ["y", "x"]
    img, image_axes = _image_in_ngff_order(image, lab.shape, rgb=rgb, channel_axis=channel_axis, spatial=spatial)
    path = prepare_target(path, overwrite=overwrite)

    scale = {axis: 1.0 for axis in spatial}
    units = None
    if pixel_size is not None:
        scale.update(y=float(pixel_size[0]), x=float(pixel_size[1]))
        units = {"y": UNIT, "x": UNIT}
    factors = pyramid_factors(lab.shape[-2:])
    fmt = FormatV04()
    # threads in this process, even when a dask.distributed client is active (the batch's cluster)
    with atomic_path(path) as tmp, dask.config.set(scheduler="threads"):
        root = zarr.open_group(str(tmp), mode="w", zarr_format=fmt.zarr_format)
        write_image(img, root, scale_factors=factors, fmt=fmt, axes=image_axes, axes_units=units,
                    scale={axis: scale.get(axis, 1.0) for axis in image_axes},
                    storage_options={"chunks": _chunks(img.shape, image_axes), "compressor": compressor()},
                    name=image_name(path) if image is not None else "placeholder (labels only)")
        label_metadata: dict[str, Any] = {"colors": _colors(lab, colors)}
        properties = _properties(measurements)
        if properties:
            label_metadata["properties"] = properties
        label_metadata["source"] = {"image": "../../"}
        write_labels(lab, root, name=name, scaler=None, scale_factors=factors, fmt=fmt, axes=spatial, scale=scale,
                     axes_units=units, label_metadata=label_metadata,
                     storage_options={"chunks": _chunks(lab.shape, spatial), "compressor": compressor()})
        origin = (0.0, 0.0) if origin is None else tuple(origin)
        if any(origin):
            _add_translation(root, origin, sampled=False)
        _add_translation(root["labels"][name], origin, sampled=True)
        if title:
            multiscales = root["labels"][name].attrs["multiscales"]
            multiscales[0]["name"] = title
            root["labels"][name].attrs["multiscales"] = multiscales
        if provenance is not None:
            root["labels"][name].attrs.update(provenance_member(provenance))
        root["labels"].attrs.update(EXPORT_MARK)  # a later export with overwrite may replace it (nothing else);
        # beside the labels list, so the image's own metadata stays untouched
    return path


def _add_translation(group: Any, origin: tuple[float, float], *, sampled: bool) -> None:
    """Give every level of ``group``'s multiscales its translation (NGFF 0.4 order: scale, then translation).

    Level 0 starts at ``origin``. A level downsampled by f starts at the centre of the f x f level-0 pixels its
    first pixel covers when they were averaged (the image), and on the last of them when they were ``sampled``:
    ome-zarr-py keeps every other labels pixel from the second on (``[1::2]``), level after level, so a labels
    level's first pixel is level 0's pixel f - 1, and its pixels lie exactly f level-0 pixels apart (its declared
    scale is f times level 0's, not the ratio of the shapes, which differs from f when a side is odd).
    """
    multiscales = group.attrs["multiscales"]
    for multiscale in multiscales:
        axes = [a["name"] if isinstance(a, dict) else str(a) for a in multiscale["axes"]]
        base = _scale_of(multiscale["datasets"][0])
        for level, dataset in enumerate(multiscale["datasets"]):
            scale = _scale_of(dataset)
            translation = [0.0] * len(axes)
            for axis, value in zip(("y", "x"), origin):
                i = axes.index(axis)
                if sampled:
                    scale[i] = base[i] * 2 ** level
                translation[i] = float(value) + (scale[i] - base[i]) / (1 if sampled else 2)
            dataset["coordinateTransformations"] = [
                {"type": "scale", "scale": scale}, {"type": "translation", "translation": translation}]
    group.attrs["multiscales"] = multiscales


def _scale_of(dataset: Mapping[str, Any]) -> list[float]:
    return next(list(t["scale"]) for t in dataset["coordinateTransformations"] if t.get("type") == "scale")


def image_name(path: Path) -> str:
    """``cells`` for ``cells.ome.zarr``."""
    name = path.name
    for suffix in (".zarr", ".ome"):
        name = name[: -len(suffix)] if name.lower().endswith(suffix) else name
    return name or path.name


MAX_IMAGE_CHANNELS = 16  # a leading axis this long or shorter, beyond the labels' axes, is taken for channels


def _image_in_ngff_order(image: Any, labels_shape: tuple[int, ...], *, rgb: bool, channel_axis: int | None,
                         spatial: list[str]) -> tuple[Any, list[str]]:
    """The image as a dask array in NGFF axis order (channels first), checked against the labels' shape."""
    import dask.array as da

    if image is None:
        return da.zeros(labels_shape, dtype=np.uint8, chunks=_chunks(labels_shape, spatial)), list(spatial)
    img = image if isinstance(image, da.Array) else da.asarray(image)
    if rgb and channel_axis is not None:
        raise ValueError("give either rgb or channel_axis, not both")
    if rgb:
        channel_axis = -1
    elif channel_axis is None and img.ndim == len(labels_shape) + 1 and tuple(img.shape[1:]) == tuple(labels_shape) \
            and img.shape[0] <= MAX_IMAGE_CHANNELS:
        channel_axis = 0  # one axis more than the labels, first: the channels of the image they were made from
    if channel_axis is not None:
        if not -img.ndim <= channel_axis < img.ndim:
            raise ValueError(f"channel_axis {channel_axis} does not exist in an image of shape {tuple(img.shape)}")
        first = 1 if spatial[0] == "t" else 0  # NGFF order: t, c, z, y, x
        img = da.moveaxis(img, channel_axis, first)
        check_same_plane(labels_shape, img.shape[:first] + img.shape[first + 1:])
        axes = list(spatial)
        axes.insert(first, "c")
        return img, axes
    check_same_plane(labels_shape, img.shape)
    return img, list(spatial)


def _chunks(shape: Sequence[int], axes: Sequence[str]) -> tuple[int, ...]:
    """One chunk per channel and slice, CHUNK pixels square in the plane."""
    return tuple(min(CHUNK, int(s)) if axis in ("y", "x") else 1 for s, axis in zip(shape, axes, strict=True))


def _colors(labels: Any, colors: Mapping[int, Sequence[int]] | None) -> list[dict[str, Any]]:
    """``image-label`` colours: the ones given, else a distinct hue per label id (golden-ratio steps)."""
    import dask.array as da

    if colors is None:
        ids = np.asarray(da.unique(labels).compute())  # chunk by chunk: lazy labels stay out of memory
        colors = {int(i): distinct_color(int(i)) for i in ids if i != 0}
    return [{"label-value": int(value), "rgba": [int(c) for c in rgba]} for value, rgba in sorted(colors.items())]


CONSTANT_ACROSS_PLANES = ("class", "class_name")  # an object's columns kept in a stack's properties when one value


def distinct_color(label: int) -> tuple[int, int, int, int]:
    """A bright colour for a label id; neighbouring ids get far-apart hues."""
    hue = (label * 0.618033988749895) % 1.0
    r, g, b = colorsys.hsv_to_rgb(hue, 0.75, 1.0)
    return (round(r * 255), round(g * 255), round(b * 255), 255)


def _properties(measurements: Mapping[str, Sequence[Any]] | None) -> list[dict[str, Any]]:
    """NGFF ``properties``: one dict per row, keyed ``label-value``; plain numbers and text only."""
    if not measurements:
        return []
    if "label" not in measurements:
        raise ValueError("the measurements have no 'label' column to match them with the objects")
    columns = {key: np.asarray(values) for key, values in measurements.items()}
    if "slice" in columns:
        return _stack_properties(columns)
    rows = []
    for i, label in enumerate(columns.pop("label")):
        row: dict[str, Any] = {"label-value": int(label)}
        for key, values in columns.items():
            value = values[i].item() if hasattr(values[i], "item") else values[i]
            if isinstance(value, float) and not math.isfinite(value):
                continue
            row[key] = value
        rows.append(row)
    return rows


def _stack_properties(columns: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    """One dict per object of a stack: the planes it is in, and what holds for it in all of them.

    NGFF keys properties by ``label-value`` alone, and readers (napari-ome-zarr)
    keep one row per value: a row per (object, plane) showed the last plane's
    area in every frame. Per-plane measurements stay in the objects CSV.
    """
    labels, planes = columns.pop("label").astype(np.int64), columns.pop("slice").astype(np.int64)
    rows = []
    for label in np.unique(labels):
        mine = labels == label
        row: dict[str, Any] = {"label-value": int(label), "slices": int(np.unique(planes[mine]).size),
                               "first_slice": int(planes[mine].min()), "last_slice": int(planes[mine].max())}
        for key, values in columns.items():  # e.g. a class that is the same in every plane
            held = {v.item() if hasattr(v, "item") else v for v in values[mine]}
            if len(held) == 1 and key in CONSTANT_ACROSS_PLANES:
                row[key] = held.pop()
        rows.append(row)
    return rows
