"""What the Segment widget runs in its worker thread — no Qt, no napari.

The widget describes a run as a frozen :class:`SegmentRequest`; this module
turns it into core calls (``predict_network`` + post-processing, the same
functions the CLI and batch use; the core retries with smaller windows when
the device runs out of memory) plane by plane and hands back plain arrays. Layers are
made from the result on the main thread, never here.
"""

from __future__ import annotations

import itertools
import math
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..core.model.devices import resolve_device, resolve_precision
from ..core.model.modelfile import Model
from ..core.model.registry import load_model
from ..core.inference.pipeline import NetworkPrediction, predict_network
from ..core.inference.postprocess import semantic_labels, sigmoid
from ..core.common.callbacks import CancelCallback, ProgressCallback

MEMORY_FRACTION = 0.25  # labels bigger than this share of free RAM go to disk
LAZY_PLANE_PIXELS = 8192 * 8192  # lazy planes bigger than this go to disk


@dataclass(frozen=True)
class SegmentRequest:
    """One press of "Segment": which model, how to run it and which planes to do."""

    model: str
    device: str = "auto"
    precision: str = "auto"
    tile_size: int | None = None
    batch_size: int | None = None
    diameter: float | None = None
    output: str = "instances"  # "instances" | "semantic"
    probabilities: bool = False
    rgb: bool = False
    channel_axis: int | None = None
    planes: tuple[tuple[int, ...], ...] | None = None  # None: every plane
    zarr_path: str | None = None  # write labels to this zarr store (large results)


@dataclass
class SegmentResult:
    """Labels (and optional probabilities) of the requested planes, and how they were made."""

    labels: Any
    planes: tuple[tuple[int, ...], ...]
    probabilities: np.ndarray | None
    device: str
    precision: str
    seconds: float
    model_name: str
    notes: list[str] = field(default_factory=list)
    objects: int | None = None  # instance outputs only
    class_names: list[str] = field(default_factory=list)


def channels_last_view(image: Any, channel_axis: int | None) -> Any:
    """Move the channel axis next to the plane, (..., C, H, W), lazily for non-numpy arrays."""
    image = as_lazy(image)
    if channel_axis is None:
        return image
    if isinstance(image, np.ndarray):
        return np.moveaxis(image, channel_axis, -3)
    import dask.array as da

    return da.moveaxis(image, channel_axis, -3)


def as_lazy(image: Any) -> Any:
    """numpy and dask pass through; anything else (zarr, h5py...) becomes dask so slicing stays lazy."""
    if isinstance(image, np.ndarray):
        return image
    import dask.array as da

    if isinstance(image, da.Array):
        return image
    chunks = getattr(image, "chunks", None)
    return da.from_array(image, chunks=chunks if isinstance(chunks, tuple) else "auto")


def plane_layout(shape: tuple[int, ...], rgb: bool, channel_axis: int | None) -> tuple[tuple[int, ...], int, int, int]:
    """Leading (Z/T) shape, channels, height and width of an image of ``shape``."""
    if rgb:
        if len(shape) < 3:
            raise ValueError("an RGB image needs a colour axis")
        return tuple(shape[:-3]), int(shape[-1]), int(shape[-3]), int(shape[-2])
    if channel_axis is not None:
        moved = list(shape)
        channels = moved.pop(channel_axis)
        moved.insert(len(moved) - 2, channels)
        return tuple(moved[:-3]), int(channels), int(moved[-2]), int(moved[-1])
    if len(shape) < 2:
        raise ValueError(f"an image of shape {tuple(shape)} has too few dimensions")
    return tuple(shape[:-2]), 1, int(shape[-2]), int(shape[-1])


def check_channels(model_channels: int, image_channels: int, model_name: str) -> None:
    """Raise a clear ValueError when the image cannot feed the model."""
    if image_channels == model_channels or (model_channels == 1 and image_channels in (3, 4)):
        return
    if image_channels == 1:
        raise ValueError(
            f"model '{model_name}' expects {model_channels} channels but the image has one; "
            "choose the image's channel axis"
        )
    raise ValueError(f"model '{model_name}' expects {model_channels} channel(s) but the image has {image_channels}")


def available_memory() -> int:
    """Bytes of RAM free for new data (psutil comes with napari; sysconf is the fallback)."""
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except ImportError:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def needs_disk(shape: tuple[int, ...], lazy: bool, plane_pixels: int, available_bytes: int | None = None) -> bool:
    """True when the labels would not fit comfortably in memory (or the input is a huge lazy image)."""
    if available_bytes is None:
        available_bytes = available_memory()
    labels_bytes = math.prod(shape) * 4
    return labels_bytes > MEMORY_FRACTION * available_bytes or (lazy and plane_pixels > LAZY_PLANE_PIXELS)


def to_labels(prediction: NetworkPrediction, model: Model, output: str) -> np.ndarray:
    """Instances or classes; an instance model's "semantic" output is its foreground mask."""
    if output == "semantic" and model.task == "instances":
        threshold = float(model.postprocess.get("foreground_threshold", 0.5))
        return semantic_labels(prediction.image_logits[:1], threshold)
    return prediction.labels(model)


def to_probabilities(logits: np.ndarray, model: Model) -> np.ndarray:
    """Foreground probability (H, W), or one map per non-background class (K-1, H, W)."""
    if model.task == "instances" or logits.shape[0] == 1:
        return sigmoid(logits[0]).astype(np.float32)
    shifted = np.exp(logits - logits.max(axis=0, keepdims=True))
    probs = (shifted / shifted.sum(axis=0, keepdims=True))[1:].astype(np.float32)
    return probs[0] if probs.shape[0] == 1 else probs


def run_segmentation(
    image: Any,
    request: SegmentRequest,
    *,
    progress: ProgressCallback | None = None,
    cancel: CancelCallback | None = None,
) -> SegmentResult:
    """Segment the requested planes of ``image``; raises ``Cancelled``, ``ModelFileError``, ``ValueError``..."""
    start = time.perf_counter()
    model = load_model(request.model)
    device = resolve_device(request.device)
    precision = resolve_precision(request.precision, device)
    lead, channels, height, width = plane_layout(tuple(image.shape), request.rgb, request.channel_axis)
    check_channels(model.in_channels, channels, model.name)
    image = channels_last_view(image, request.channel_axis)
    planes = request.planes or tuple(itertools.product(*(range(n) for n in lead)))
    if request.zarr_path is not None:
        labels = _run_blockwise(image, model, request, device.type, precision, progress, cancel)
        return SegmentResult(labels, planes, None, device.type, precision, time.perf_counter() - start, model.name,
                             [f"The labels are stored on disk in {request.zarr_path}"],
                             labels.attrs.get("objects") if model.task == "instances" else None, model.class_names)

    labels = probabilities = None
    objects = 0
    for k, idx in enumerate(planes):
        def plane_progress(done: int, total: int, _k: int = k) -> None:
            if progress is not None:
                progress(_k * total + done, len(planes) * total)

        plane = image[idx] if idx else image
        prediction = predict_network(
            model, plane, rgb=request.rgb, diameter=request.diameter, tile_size=request.tile_size,
            batch_size=request.batch_size, device=request.device, precision=precision,
            progress=plane_progress, cancel=cancel,
        )
        plane_labels = to_labels(prediction, model, request.output)
        if labels is None:
            dtype = np.uint32 if request.output == "instances" and model.task == "instances" else plane_labels.dtype
            labels = np.zeros(lead + plane_labels.shape, dtype=dtype)
        labels[idx] = plane_labels
        objects += int(plane_labels.max(initial=0))  # instance ids run 1..N in each plane
        if request.probabilities:
            plane_probs = to_probabilities(prediction.image_logits, model)
            if probabilities is None:
                probabilities = np.zeros(lead + plane_probs.shape, dtype=np.float32)
            probabilities[idx] = plane_probs
    if labels.dtype == np.uint32 and labels.max(initial=0) < 2**16:
        labels = labels.astype(np.uint16)
    instances = request.output == "instances" and model.task == "instances"
    return SegmentResult(labels, planes, probabilities, device.type, precision, time.perf_counter() - start,
                         model.name, objects=objects if instances else None, class_names=model.class_names)


def _run_blockwise(image: Any, model: Model, request: SegmentRequest, device: str, precision: str,
                   progress: ProgressCallback | None, cancel: CancelCallback | None) -> Any:
    """Write labels straight to a zarr store with core.blockwise, reopened writable so users can paint."""
    try:
        from ..core.inference.blockwise import segment_to_zarr
    except ImportError as exc:
        raise RuntimeError("writing large results to disk needs napari_unet_seg.core.inference.blockwise, "
                           "which this version does not include") from exc
    path = Path(request.zarr_path)
    existed = path.exists()
    try:
        segment_to_zarr(
            image, model, path, rgb=request.rgb, channel_axis=-3 if request.channel_axis is not None else None,
            tile_size=request.tile_size, batch_size=request.batch_size, device=device, precision=precision,
            diameter=request.diameter, progress=progress, cancel=cancel,
        )
    except BaseException:
        if not existed:
            shutil.rmtree(path, ignore_errors=True)
        raise
    import zarr

    return zarr.open_array(str(path), mode="r+")
