"""Per-object measurements of a labels image: one row per object, read block by block.

Labels may be numpy, zarr or dask, with leading Z/T axes (objects are
measured per plane: ids are unique within a plane, not across planes).
Each plane is read in blocks twice: first to find every object's bounding
box, then to measure each object whole inside the smallest region holding
it. An object belongs to the block holding its box's top-left corner, so it
is measured exactly once however many blocks it spans, and memory stays at a
block plus the objects that start in it.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
from scipy import ndimage
from skimage.measure import regionprops_table

from ..common.callbacks import CancelCallback, ProgressCallback, raise_if_cancelled
from .classes import CLASS_COLUMNS, check_class_map, class_names_of, majority_classes

ObjectTable = dict[str, np.ndarray]  # column name -> one value per object (a plain dict: napari features, CSV)
BLOCK = 2048  # side of the blocks a plane is read in
SHAPE_PROPERTIES = ("area", "perimeter", "equivalent_diameter_area", "eccentricity", "solidity")


def measure_objects(
    labels: Any,
    images: Mapping[str, Any] | None = None,
    *,
    pixel_size: tuple[float, float] | None = None,
    unit: str = "um",
    lead_names: Sequence[str] | None = None,
    classes: Any | None = None,
    class_names: Sequence[str] | None = None,
    block_size: int = BLOCK,
    progress: ProgressCallback | None = None,
    cancel: CancelCallback | None = None,
) -> ObjectTable:
    """Measure every object of ``labels`` (leading axes, H, W); one row per object and plane.

    ``images`` maps a name to an intensity image of the labels' shape, or
    of that shape plus a trailing channel axis (RGB; one column set per
    channel, ``<name>_ch<k>``): each gives ``<name>_mean``, ``_median`` and
    ``_integrated`` columns. ``pixel_size`` (y, x) in ``unit`` adds physical
    centroid and area columns (perimeter and diameter too when pixels are
    square). ``lead_names`` name the leading axes' index columns (default
    ``slice`` for one axis, ``axis0``... for more). ``classes``, a class map
    of the labels' shape (a class model's output, painted regions), adds
    ``class``, ``class_name`` (from ``class_names``, indexed by class) and
    ``class_fraction`` (see :mod:`.classes`). Raises ``ValueError`` with one
    line for labels that are not integers or images of another shape.
    """
    if not hasattr(labels, "shape"):  # nested lists, as segment() accepts them
        labels = np.asarray(labels)
    shape = tuple(int(s) for s in labels.shape)
    if len(shape) < 2:
        raise ValueError(f"labels must have at least two axes (height, width), not shape {shape}")
    dtype = np.dtype(labels.dtype)
    if not (np.issubdtype(dtype, np.integer) or dtype == bool):
        raise ValueError(f"labels must hold integer ids, not {dtype} values")
    if images is not None and not isinstance(images, Mapping):
        raise TypeError("images maps a name to each intensity image, e.g. {'dapi': image}, not "
                        f"{type(images).__name__}")
    channels = intensity_channels(images or {}, shape)
    if classes is not None:
        check_class_map(classes, shape)
    lead = shape[:-2]
    names = list(lead_names) if lead_names is not None else (["slice"] if len(lead) == 1 else
                                                               [f"axis{i}" for i in range(len(lead))])
    if len(names) != len(lead):
        raise ValueError(f"{len(lead)} leading axes need {len(lead)} names, not {names}")
    if pixel_size is not None and np.shape(pixel_size) != (2,):
        raise ValueError(f"pixel size is (y, x), two numbers, not {pixel_size!r}")
    if pixel_size is not None and not all(math.isfinite(p) and p > 0 for p in pixel_size):
        raise ValueError(f"pixel size must be two positive numbers, not {pixel_size}")
    planes = list(np.ndindex(*lead))
    blocks_per_plane = math.ceil(shape[-2] / block_size) * math.ceil(shape[-1] / block_size)
    total, done = 2 * blocks_per_plane * len(planes), 0

    def step() -> None:
        nonlocal done
        raise_if_cancelled(cancel)
        done += 1
        if progress is not None:
            progress(done, total)

    columns = _columns(names, [c[0] for c in channels], classes is not None)
    # oblong pixels: the eccentricity of the object, not of its pixel grid (a round nucleus on 0.4 x 0.2 µm
    # pixels read 0.88 where square pixels gave 0.72); square or unknown pixels: the pixel grid's, the same
    spacing = None if pixel_size is None or math.isclose(*pixel_size, rel_tol=1e-6) else tuple(map(float, pixel_size))
    parts = []
    for idx in planes:
        boxes = _plane_boxes(labels, idx, block_size, step)
        found = list(_measure_plane(labels, idx, channels, boxes, block_size, step, classes, spacing))
        for part, (name, value) in itertools.product(found, zip(names, idx)):
            part[name] = np.full(len(part["label"]), value, dtype=np.int64)
        parts.append(_concatenate(found, columns))
    table = _concatenate(parts, columns, sort=False)
    if classes is not None:
        named = {"class_name": class_names_of(table["class"], class_names)}
        table = {c: table[c] if c in table else named[c] for c in columns}
    return _with_physical_units(table, pixel_size, unit)


def colour_without_alpha(image: Any) -> Any:
    """An RGBA image's colour channels alone: its alpha says how opaque a pixel is drawn, not how bright it is."""
    return image[..., :3] if tuple(image.shape)[-1:] == (4,) else image


def intensity_channels(images: Mapping[str, Any], shape: tuple[int, ...]) -> list[tuple[str, Any, int | None]]:
    """(column prefix, array, channel or None) per intensity channel; the arrays stay unread."""
    channels: list[tuple[str, Any, int | None]] = []
    for name, image in images.items():
        image_shape = tuple(int(s) for s in image.shape)
        if image_shape == shape:
            channels.append((name, image, None))
        elif image_shape[:-1] == shape:
            channels.extend((f"{name}_ch{k}", image, k) for k in range(image_shape[-1]))
        else:
            raise ValueError(f"image {name!r} has shape {image_shape} but the labels have shape {shape}: "
                             "they must match pixel for pixel")
    return channels


def _columns(lead_names: Sequence[str], channel_names: Sequence[str], classes: bool = False) -> list[str]:
    columns = ["label", *lead_names, *(CLASS_COLUMNS if classes else ()), "centroid_y", "centroid_x", "area",
               "perimeter", "equivalent_diameter", "eccentricity", "solidity",
               "bbox_y0", "bbox_x0", "bbox_y1", "bbox_x1"]
    for name in channel_names:
        columns += [f"{name}_mean", f"{name}_median", f"{name}_integrated"]
    return columns


def _read(array: Any, idx: tuple[int, ...], ys: slice, xs: slice) -> np.ndarray:
    return np.asarray(array[idx + (ys, xs)])


def _blocks(plane_shape: Sequence[int], size: int) -> Iterator[tuple[slice, slice]]:
    for y in range(0, plane_shape[0], size):
        for x in range(0, plane_shape[1], size):
            yield slice(y, min(y + size, plane_shape[0])), slice(x, min(x + size, plane_shape[1]))


def _plane_boxes(labels: Any, idx: tuple[int, ...], size: int, step: Callable[[], None]) -> np.ndarray:
    """Every object's bounding box in the plane, block by block: rows of (label, y0, x0, y1, x1), by label."""
    found = [np.zeros((0, 5), np.int64)]
    for ys, xs in _blocks(labels.shape[-2:], size):
        step()
        ids, local = _compact(_read(labels, idx, ys, xs))
        rows = [(ids[k], s[0].start + ys.start, s[1].start + xs.start, s[0].stop + ys.start, s[1].stop + xs.start)
                for k, s in enumerate(ndimage.find_objects(local)) if s is not None]
        if rows:
            found.append(np.array(rows, np.int64))
    boxes = np.concatenate(found)
    boxes = boxes[np.argsort(boxes[:, 0], kind="stable")]
    starts = np.flatnonzero(np.r_[True, np.diff(boxes[:, 0]) != 0]) if len(boxes) else np.zeros(0, np.intp)
    merged = np.zeros((len(starts), 5), np.int64)
    if len(starts):
        merged[:, 0] = boxes[starts, 0]
        merged[:, 1:3] = np.minimum.reduceat(boxes[:, 1:3], starts)
        merged[:, 3:5] = np.maximum.reduceat(boxes[:, 3:5], starts)
    return merged


def _compact(block: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The block's ids (sorted, no 0) and the block relabelled 1..n, so any ids (even 10^9) stay cheap."""
    if block.dtype == bool:
        block = block.view(np.uint8)
    if block.size and block.min() < 0:
        raise ValueError("labels must be non-negative integer ids")
    top = int(block.max(initial=0))
    if top <= 4 * block.size:  # ids small enough to index by: no sorting needed
        present = np.flatnonzero(np.bincount(block.ravel(), minlength=top + 1)[1:]) + 1
        table = np.zeros(top + 1, np.int32)
        table[present] = np.arange(1, len(present) + 1)
        return present.astype(np.int64), table[block]
    ids = np.unique(block)
    ids = ids[ids != 0]
    return ids.astype(np.int64), np.where(block == 0, 0, np.searchsorted(ids, block) + 1).astype(np.int32)


def _measure_plane(labels: Any, idx: tuple[int, ...], channels: list[tuple[str, Any, int | None]],
                   boxes: np.ndarray, size: int, step: Callable[[], None],
                   classes: Any | None = None, spacing: tuple[float, float] | None = None) -> Iterator[ObjectTable]:
    """Yield one table per block: the objects whose box starts in it, each measured whole."""
    owner_y, owner_x = boxes[:, 1] // size, boxes[:, 2] // size
    for ys, xs in _blocks(labels.shape[-2:], size):
        step()
        mine = boxes[(owner_y == ys.start // size) & (owner_x == xs.start // size)]
        if not len(mine):
            continue
        y0, x0, y1, x1 = mine[:, 1].min(), mine[:, 2].min(), mine[:, 3].max(), mine[:, 4].max()
        region = _read(labels, idx, slice(y0, y1), slice(x0, x1))
        if region.dtype == bool:
            region = region.view(np.uint8)
        wanted = mine[:, 0]  # sorted: boxes are sorted by label
        position = np.searchsorted(wanted, region)
        inside = (region != 0) & (position < len(wanted))
        inside[inside] = wanted[position[inside]] == region[inside]
        local = np.where(inside, position + 1, 0).astype(np.int32)
        del position, inside
        window = (slice(y0, y1), slice(x0, x1))
        table = _measure_region(local, wanted, (int(y0), int(x0)), channels, labels, idx, window, spacing)
        if classes is not None:
            table["class"], table["class_fraction"] = majority_classes(local, len(wanted),
                                                                       _read(classes, idx, *window))
        yield table


def _measure_region(local: np.ndarray, ids: np.ndarray, offset: tuple[int, int],
                    channels: list[tuple[str, Any, int | None]], labels: Any, idx: tuple[int, ...],
                    window: tuple[slice, slice], spacing: tuple[float, float] | None = None) -> ObjectTable:
    """Measure objects 1..n of ``local`` (whose real ids are ``ids``) at ``offset`` in the plane; ``spacing``
    (oblong pixels' y, x size) makes the eccentricity the object's in the world."""
    props = regionprops_table(local, properties=("label", "centroid", "bbox", *SHAPE_PROPERTIES))
    if spacing is not None:
        props["eccentricity"] = regionprops_table(local, properties=("eccentricity",), spacing=spacing)["eccentricity"]
    order = props["label"] - 1
    table: ObjectTable = {
        "label": ids[order],
        "centroid_y": props["centroid-0"] + offset[0],
        "centroid_x": props["centroid-1"] + offset[1],
        "area": props["area"].astype(np.int64),
        "perimeter": props["perimeter"],
        "equivalent_diameter": props["equivalent_diameter_area"],
        "eccentricity": props["eccentricity"],
        "solidity": props["solidity"],
        "bbox_y0": props["bbox-0"] + offset[0],
        "bbox_x0": props["bbox-1"] + offset[1],
        "bbox_y1": props["bbox-2"] + offset[0],
        "bbox_x1": props["bbox-3"] + offset[1],
    }
    index = props["label"]
    cache: dict[int, np.ndarray] = {}
    for name, image, channel in channels:
        if id(image) not in cache:
            cache = {id(image): _read(image, idx, *window)}
        values = cache[id(image)] if channel is None else cache[id(image)][..., channel]
        table[f"{name}_mean"] = np.asarray(ndimage.mean(values, local, index), np.float64)
        table[f"{name}_median"] = np.asarray(ndimage.median(values, local, index), np.float64)
        table[f"{name}_integrated"] = np.asarray(ndimage.sum_labels(values.astype(np.float64), local, index))
    return table


def _concatenate(parts: list[ObjectTable], columns: list[str], sort: bool = True) -> ObjectTable:
    """One table of ``columns`` from parts (missing columns are filled in later); ``sort``: by label."""
    table: ObjectTable = {}
    for column in columns:
        if column == "class_name":  # text: named once the whole table is there
            continue
        values = [p[column] for p in parts if column in p]
        table[column] = np.concatenate(values) if values else np.zeros(0, _dtype(column))
    if sort:
        order = np.argsort(table["label"], kind="stable")
        table = {c: v[order] for c, v in table.items()}
    return table


def _dtype(column: str) -> type:
    """Counts, ids, indices and boxes are integers; everything else is a float."""
    floats = ("centroid_", "perimeter", "equivalent_diameter", "eccentricity", "solidity", "_mean", "_median",
              "_integrated", "class_fraction")
    return np.float64 if column.startswith(floats) or column.endswith(floats) else np.int64


def _with_physical_units(table: ObjectTable, pixel_size: tuple[float, float] | None, unit: str) -> ObjectTable:
    """Centroid and area in ``unit`` after their pixel columns; perimeter and diameter only for square pixels."""
    if pixel_size is None:
        return table
    py, px = (float(p) for p in pixel_size)
    extra = {
        "centroid_y": {f"centroid_y_{unit}": table["centroid_y"] * py},
        "centroid_x": {f"centroid_x_{unit}": table["centroid_x"] * px},
        "area": {f"area_{unit}2": table["area"] * (py * px)},
    }
    if math.isclose(py, px, rel_tol=1e-6):
        extra["perimeter"] = {f"perimeter_{unit}": table["perimeter"] * px}
        extra["equivalent_diameter"] = {f"equivalent_diameter_{unit}": table["equivalent_diameter"] * px}
    out: ObjectTable = {}
    for column, values in table.items():
        out[column] = values
        out.update(extra.get(column, {}))
    return out
