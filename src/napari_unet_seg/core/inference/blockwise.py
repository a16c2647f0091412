"""Segment images too large for memory into a zarr labels store, block by block.

Normalisation is fitted once for the whole plane (on a sample), so blocks agree.
Each block is segmented inside a window padded by a halo wide enough for the
network's receptive field plus the largest objects; an instance is kept only by
the block that contains its centroid, so objects crossing block borders appear
exactly once, with ids unique over the plane. A plane that fits in one block is
segmented exactly as :func:`~.pipeline.segment` does. Memory is bounded by one
window (image, logits, labels), never by the image.
"""

from __future__ import annotations

import math
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from ..model.modelfile import Model

from ..model.registry import load_model
from .pipeline import estimate_diameter, is_rgb, predict_network, predict_resized, rescale_factor
from .preprocess import PreparedImage
from ..common.callbacks import CancelCallback, Cancelled, ProgressCallback

DEFAULT_OBJECT_DIAMETER = 64  # px; what the halo must hold when neither user nor model says
CHUNK = 512


class PlaneView:
    """A lazy view of one plane of a (..., H, W[, C]) array: reads only what is sliced."""

    def __init__(self, source: Any, lead: tuple[int, ...]) -> None:
        self.source, self.lead = source, lead
        self.shape = tuple(int(s) for s in source.shape[len(lead):])
        self.ndim = len(self.shape)
        self.dtype = np.dtype(source.dtype)

    def __getitem__(self, index: Any) -> np.ndarray:
        index = index if isinstance(index, tuple) else (index,)
        return np.asarray(self.source[self.lead + index])


class WindowView:
    """A (C, h, w) window of a :class:`PreparedImage`, sliceable like an array (for predict_tiled)."""

    def __init__(self, prepared: PreparedImage, y0: int, y1: int, x0: int, x1: int) -> None:
        self.prepared, self.y0, self.x0 = prepared, y0, x0
        self.shape = (prepared.shape[0], y1 - y0, x1 - x0)
        self.ndim, self.dtype = 3, np.dtype(np.float32)

    def __getitem__(self, index: tuple) -> np.ndarray:
        ys, xs = index[-2], index[-1]
        ya, yb, _ = ys.indices(self.shape[1])
        xa, xb, _ = xs.indices(self.shape[2])
        return self.prepared[..., self.y0 + ya:self.y0 + yb, self.x0 + xa:self.x0 + xb]

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        out = self[..., 0:self.shape[1], 0:self.shape[2]]
        return out if dtype is None else out.astype(dtype)


def halo_for(model: Model, diameter: float | None) -> int:
    """Context around a block: the network's receptive radius plus 1.5 object diameters (image px)."""
    net = model.net
    scale = rescale_factor(model, diameter)
    margin = math.ceil(net.receptive_radius / net.size_multiple) * net.size_multiple
    objects = float(diameter or model.object_diameter or DEFAULT_OBJECT_DIAMETER)
    halo = margin / scale + net.size_multiple + 1.5 * objects
    return int(math.ceil(halo / net.size_multiple) * net.size_multiple)


def _keep_centred(labels: np.ndarray, core: tuple[int, int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Ids whose centroid lies in ``core`` (window coordinates) and their areas."""
    flat = labels.ravel().astype(np.int64)
    counts = np.bincount(flat)
    h, w = labels.shape
    cy = np.bincount(flat, weights=np.repeat(np.arange(h, dtype=np.float64), w)) / np.maximum(counts, 1)
    cx = np.bincount(flat, weights=np.tile(np.arange(w, dtype=np.float64), h)) / np.maximum(counts, 1)
    y0, y1, x0, x1 = core
    inside = (cy >= y0) & (cy < y1) & (cx >= x0) & (cx < x1) & (counts > 0)
    inside[0] = False
    ids = np.flatnonzero(inside)
    return ids, counts[ids]


def segment_plane(
    plane: Any, model: Model, out: Any, lead: tuple[int, ...], *, rgb: bool, block_size: int, halo: int | None,
    opts: dict[str, Any],
    diameter: float | None, progress: ProgressCallback | None, cancel: CancelCallback | None,
) -> tuple[int, float]:
    """Segment one 2D plane into ``out[lead]``; returns (objects, total object area)."""
    instances = model.task == "instances"
    height, width = (plane.shape[0], plane.shape[1]) if rgb else plane.shape[-2:]
    if height <= block_size and width <= block_size:  # one block: exactly segment()'s result
        labels = predict_network(model, plane, rgb=rgb, diameter=diameter, progress=progress, cancel=cancel,
                                 **opts).labels(model)
        out[lead + (slice(None), slice(None))] = labels
        counts = np.bincount(labels.ravel().astype(np.int64))[1:] if instances else np.zeros(0)
        return int((counts > 0).sum()), float(counts.sum())
    prepared = PreparedImage(plane, in_channels=model.in_channels, normalization_settings=model.normalization, rgb=rgb)
    grid = model.net.size_multiple
    if diameter is None:  # the same automatic object-size check as predict_logits, on a central crop
        diameter = estimate_diameter(model, prepared, **opts)
    halo = halo_for(model, diameter) if halo is None else int(halo)
    scale = rescale_factor(model, diameter)
    blocks = [(y, x) for y in range(0, height, block_size) for x in range(0, width, block_size)]
    next_id, objects, area = 1, 0, 0.0
    for i, (by0, bx0) in enumerate(blocks):
        if cancel is not None and cancel():
            raise Cancelled("cancelled")
        by1, bx1 = min(by0 + block_size, height), min(bx0 + block_size, width)
        wy0, wx0 = max(by0 - halo, 0) // grid * grid, max(bx0 - halo, 0) // grid * grid
        wy1, wx1 = min(by1 + halo, height), min(bx1 + halo, width)

        def block_progress(done: int, total: int, _i: int = i) -> None:
            if progress is not None:
                progress(_i * 1000 + (1000 * done) // max(total, 1), len(blocks) * 1000)

        window = WindowView(prepared, wy0, wy1, wx0, wx1)
        labels = predict_resized(model.net, window, scale, **opts, progress=block_progress, cancel=cancel).labels(model)
        core = (by0 - wy0, by1 - wy0, bx0 - wx0, bx1 - wx0)
        if not instances:
            out[lead + (slice(by0, by1), slice(bx0, bx1))] = labels[core[0]:core[1], core[2]:core[3]]
            continue
        ids, areas = _keep_centred(labels, core)
        mapping = np.zeros(int(labels.max()) + 1, np.uint32)
        mapping[ids] = np.arange(next_id, next_id + len(ids), dtype=np.uint32)
        next_id += len(ids)
        objects, area = objects + len(ids), area + float(areas.sum())
        new = mapping[labels]
        region_index = lead + (slice(wy0, wy1), slice(wx0, wx1))
        region = np.asarray(out[region_index])
        free = (new > 0) & (region == 0)  # an object already written by a neighbour block wins
        region[free] = new[free]
        out[region_index] = region
    return objects, area


def _channels_first(source: Any, axis: int) -> Any:
    if isinstance(source, np.ndarray):
        return np.moveaxis(source, axis, -3)
    import dask.array as da

    array = source if isinstance(source, da.Array) else da.from_array(source, chunks=getattr(source, "chunks", "auto"))
    return da.moveaxis(array, axis, -3)


def replace_atomically(tmp: Path, path: Path) -> None:
    """Move a finished file or folder ``tmp`` to ``path``, replacing what was there."""
    old = path.with_name(f".{path.name}.{os.getpid()}.old")
    if path.exists():
        os.replace(path, old)
    os.replace(tmp, path)
    if old.is_dir():
        shutil.rmtree(old, ignore_errors=True)
    elif old.exists():
        old.unlink()


def segment_to_zarr(
    source: Any,
    model: Model | str | None,
    path: str | os.PathLike,
    *,
    rgb: bool | None = False,
    channel_axis: int | None = None,
    tile_size: int | None = None,
    batch_size: int | None = None,
    device: str = "auto",
    precision: str = "auto",
    diameter: float | None = None,
    block_size: int = 2048,
    halo: int | None = None,
    pixel_size: tuple[float, float] | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelCallback | None = None,
) -> Any:
    """Segment ``source`` (numpy, dask, zarr; read lazily) into a zarr labels array at ``path``.

    ``source`` follows :func:`~.pipeline.segment`: (H, W), (H, W, 3|4) with
    ``rgb``, (C, H, W) with ``channel_axis`` naming C, or a stack (N, ...)
    segmented plane by plane. ``halo`` (default :func:`halo_for`) is the
    context around each block; it must hold the largest object. The store
    is written under a temporary name and renamed when complete, so ``path``
    never holds a partial result. Instance ids are unique within each plane.
    Returns the opened array (``attrs``: objects, mean_area, pixel_size).
    """
    import zarr

    model = model if isinstance(model, Model) else load_model(model)
    if channel_axis is not None:
        source = _channels_first(source, channel_axis)
        rgb = False
    elif rgb is None:
        rgb = is_rgb(source)
    plane_ndim = 3 if rgb or channel_axis is not None else 2
    if source.ndim < plane_ndim:
        raise ValueError(f"image of shape {tuple(source.shape)} has too few dimensions")
    lead_shape = tuple(int(s) for s in source.shape[:source.ndim - plane_ndim])
    plane_shape = tuple(int(s) for s in (source.shape[-3:-1] if rgb else source.shape[-2:]))
    dtype = np.uint32 if model.task == "instances" else (np.uint8 if model.net.num_classes <= 256 else np.uint16)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    chunks = (1,) * len(lead_shape) + tuple(min(CHUNK, s) for s in plane_shape)
    opts = dict(tile_size=tile_size, batch_size=batch_size, device=device, precision=precision)
    try:
        out = zarr.open_array(str(tmp), mode="w", shape=lead_shape + plane_shape, chunks=chunks, dtype=dtype,
                              fill_value=0)
        planes = list(np.ndindex(*lead_shape)) if lead_shape else [()]
        objects, area = 0, 0.0
        for p, lead in enumerate(planes):

            def plane_progress(done: int, total: int, _p: int = p) -> None:
                if progress is not None:
                    progress(_p * total + done, len(planes) * total)

            plane = PlaneView(source, lead) if lead else source
            n, a = segment_plane(plane, model, out, lead, rgb=rgb, block_size=block_size, halo=halo, opts=opts,
                                 diameter=diameter, progress=plane_progress, cancel=cancel)
            objects, area = objects + n, area + a
        out.attrs.update({
            "napari_unet_seg": {"model": model.name, "task": model.task},
            "objects": objects,
            "mean_area": area / objects if objects else 0.0,
            "pixel_size": list(pixel_size) if pixel_size else None,
        })
        replace_atomically(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return zarr.open_array(str(path), mode="r")

__all__ = ["halo_for", "replace_atomically", "segment_plane", "segment_to_zarr"]
