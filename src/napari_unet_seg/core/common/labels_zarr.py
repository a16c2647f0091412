"""Labels stores: the zarr outputs that huge images are segmented into, as NGFF 0.4 image-label groups.

A store is a zarr (format 2) group holding the labels at level ``0`` of a
``multiscales`` pyramid (smaller levels by nearest-neighbour halving, so
viewers zoom out without reading everything), with ``image-label`` metadata:
napari-ome-zarr, Fiji/MoBIE and ome-zarr-py open it as labels. NGFF 0.4
(zarr format 2), as in :mod:`..export.ome_zarr`, because Fiji's readers and
older napari-ome-zarr read it. Our run attributes (``napari_unet_seg``
provenance, ``objects``, ``mean_area``, ``largest_id``, ``pixel_size``, ``notes``) sit in the
group's attributes, where older outputs (a plain zarr array) had them, and
on level 0 too, so the array that callers are handed still carries them.
:func:`open_labels_zarr` opens both layouts.

Labels painted into level 0 later (a Segment result edited in napari)
change level 0 only: the smaller levels show the labels as first written.
Every reader of this package reads level 0.
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .callbacks import CancelCallback, raise_if_cancelled

LEVEL0 = "0"  # the full-resolution level's path in the group
MIN_LEVEL_SIDE = 256  # stop the pyramid once its smaller plane side would fall below this
UNIT = "micrometer"  # pixel sizes are in micrometres throughout
STACK_AXES = ("t", "z")  # NGFF 0.4 names, in its order, for up to two leading axes of labels
NGFF_VERSION = "0.4"
LARGEST_ID = "largest_id"  # attribute: no id in the labels as written is larger


def compressor() -> Any:
    """Blosc (zstd inside), as ome-zarr-py writes: Java readers (Fiji's n5-zarr, MoBIE, QuPath) open it, while
    zarr's own default for format 2, plain zstd, came to them late and some releases cannot read it."""
    from numcodecs import Blosc

    return Blosc(cname="zstd", clevel=3, shuffle=Blosc.SHUFFLE)


def pyramid_factors(plane_shape: Sequence[int]) -> tuple[int, ...]:
    """Downsampling factors 2, 4, 8...: halve while the smaller side stays at least MIN_LEVEL_SIDE."""
    factors: list[int] = []
    factor = 2
    while min(plane_shape) // factor >= MIN_LEVEL_SIDE:
        factors.append(factor)
        factor *= 2
    return tuple(factors)


def create_labels_store(path: str | os.PathLike, shape: Sequence[int], chunks: Sequence[int], dtype: Any) -> Any:
    """A new, empty labels store at ``path``; returns its level 0 (a zarr array) to write the labels into.

    Call :func:`finish_labels_store` once the labels are written. Labels with
    more than two leading axes cannot be NGFF 0.4 (t, z, y, x at most): they
    get a plain zarr array, as every store had before.
    """
    import zarr
    from ome_zarr.format import FormatV04

    shape, chunks = tuple(int(s) for s in shape), tuple(int(c) for c in chunks)
    if len(shape) - 2 > len(STACK_AXES):
        return zarr.open_array(str(path), mode="w", shape=shape, chunks=chunks, dtype=dtype, fill_value=0)
    fmt = FormatV04()
    root = zarr.open_group(str(path), mode="w", zarr_format=fmt.zarr_format)
    return root.create_array(LEVEL0, shape=shape, chunks=chunks, dtype=dtype, fill_value=0,
                             chunk_key_encoding=fmt.chunk_key_encoding, compressors=compressor())


def finish_labels_store(path: str | os.PathLike, attrs: Mapping[str, Any], *, name: str = "labels",
                        pixel_size: Sequence[float] | None = None, cancel: CancelCallback | None = None) -> None:
    """Make the pyramid from level 0 (tile by tile: memory stays flat) and write the metadata.

    ``attrs`` are the run's attributes (JSON-ready); ``pixel_size`` (y, x,
    micrometres) becomes the physical scale when known. Leading axes are
    named ``z`` (one) or ``t, z`` (two); :func:`set_stack_axes` renames them.
    """
    import zarr

    node = zarr.open(str(path), mode="r+")
    attrs = dict(attrs)
    if isinstance(node, zarr.Array):  # the plain layout (see create_labels_store)
        node.attrs.update(attrs)
        return
    from ome_zarr.format import FormatV04
    from ome_zarr.writer import write_multiscales_metadata

    fmt = FormatV04()
    level = node[LEVEL0]
    lead = level.ndim - 2
    yx = _scale(pixel_size)
    datasets = [_dataset(LEVEL0, lead, yx, 1)]
    for k, factor in enumerate(pyramid_factors(level.shape[-2:]), start=1):
        smaller = node.create_array(str(k), shape=level.shape[:-2] + tuple(-(-s // 2) for s in level.shape[-2:]),
                                    chunks=level.chunks, dtype=level.dtype, fill_value=0,
                                    chunk_key_encoding=fmt.chunk_key_encoding, compressors=compressor())
        _halve(level, smaller, cancel)
        datasets.append(_dataset(str(k), lead, yx, factor))
        level = smaller
    units = {"y": UNIT, "x": UNIT} if _valid(pixel_size) else None
    write_multiscales_metadata(node, datasets, fmt=fmt, axes=[*STACK_AXES[len(STACK_AXES) - lead:], "y", "x"],
                               axes_units=units, name=name)
    node.attrs.update({"image-label": {"version": NGFF_VERSION}, **attrs})
    node[LEVEL0].attrs.update(attrs)


def open_labels_zarr(path: str | os.PathLike, mode: str = "r") -> Any:
    """The labels of a store as a zarr array: level 0 of an NGFF group, or an older output's plain array.

    An OME-Zarr image with a ``labels`` group (an export) gives its first
    labels. ``mode`` is ``"r"`` or ``"r+"`` (to paint corrections). Raises
    ``ValueError`` in one line for a zarr that holds none of these.
    """
    import zarr

    node = zarr.open(str(path), mode=mode)
    if isinstance(node, zarr.Array):
        return node
    try:
        if "image-label" not in node.attrs and "labels" in node:  # labels inside an image
            node = node["labels"][node["labels"].attrs["labels"][0]]
        if "image-label" not in node.attrs:  # an image, not labels: measuring it as labels would be wrong
            raise KeyError("image-label")
        return node[node.attrs["multiscales"][0]["datasets"][0]["path"]]
    except (TypeError, LookupError):
        raise ValueError(f"{Path(path).name}: a zarr group without NGFF labels (no multiscales level 0)") from None


def largest_id_written(labels: Any) -> int | None:
    """The largest id a store's labels held when written (its attributes say), or None where they do not say.

    Painted ids may be larger since; the id after it is free unless painted.
    """
    attrs = getattr(labels, "attrs", None)
    value = attrs.get(LARGEST_ID) if attrs is not None else None
    return int(value) if isinstance(value, numbers.Integral) and value >= 0 else None


def set_stack_axes(path: str | os.PathLike, names: Sequence[str]) -> None:
    """Name the leading axes of a finished store (``["t"]`` for a time series), when NGFF 0.4 allows it.

    Names other than ``t`` and ``z`` in that order, a count that does not
    match, and plain-array stores are left as they are.
    """
    import zarr

    names = [str(n).lower() for n in names]
    node = zarr.open(str(path), mode="r+")
    multiscales = dict(node.attrs).get("multiscales") if isinstance(node, zarr.Group) else None
    if not multiscales or not names or len(set(names)) != len(names) or not set(names) <= set(STACK_AXES):
        return
    if names != sorted(names, key=STACK_AXES.index):
        return
    axes = multiscales[0]["axes"]
    if len(axes) - 2 != len(names):
        return
    for axis, name in zip(axes, names, strict=False):
        axis.update(name=name, type="time" if name == "t" else "space")
    node.attrs["multiscales"] = multiscales


def _valid(pixel_size: Sequence[float] | None) -> bool:
    return pixel_size is not None and len(pixel_size) == 2 and all(
        isinstance(v, numbers.Real) and math.isfinite(v) and v > 0 for v in pixel_size)


def _scale(pixel_size: Sequence[float] | None) -> tuple[float, float]:
    """(y, x) of level 0: the pixel size when it is two positive numbers, else 1 (NGFF needs a scale)."""
    return (float(pixel_size[0]), float(pixel_size[1])) if _valid(pixel_size) else (1.0, 1.0)


def _dataset(path: str, lead: int, yx: tuple[float, float], factor: int) -> dict[str, Any]:
    scale = [1.0] * lead + [yx[0] * factor, yx[1] * factor]
    return {"path": path, "coordinateTransformations": [{"type": "scale", "scale": scale}]}


def _halve(source: Any, target: Any, cancel: CancelCallback | None) -> None:
    """``target`` = every other row and column of ``source`` (nearest neighbour), one target chunk at a time."""
    th, tw = target.chunks[-2:]
    for idx in np.ndindex(*source.shape[:-2]):
        for y in range(0, target.shape[-2], th):
            for x in range(0, target.shape[-1], tw):
                raise_if_cancelled(cancel)
                block = source[idx + (slice(2 * y, 2 * (y + th)), slice(2 * x, 2 * (x + tw)))]
                target[idx + (slice(y, y + th), slice(x, x + tw))] = block[..., ::2, ::2]
