"""The whole segmentation pipeline: image -> normalised windows -> logits -> labels.

Every path (widget, menu, CLI, batch, Python) calls these functions, so they
all preprocess from the model's metadata and give identical results.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .modelfile import Model, load_model
from .postprocess import logits_to_labels
from .preprocess import PreparedImage
from .tiling import CancelCallback, ProgressCallback, predict_tiled


def is_rgb(image: Any) -> bool:
    """Guess whether the last axis holds colour: (..., H, W, 3|4) of 8-bit data."""
    return image.ndim >= 3 and image.shape[-1] in (3, 4) and np.dtype(image.dtype) == np.uint8


def rescale_factor(model: Model, diameter: float | None) -> float:
    """How much to resize the image so its objects look the size the model knows."""
    if not diameter or not model.object_diameter:
        return 1.0
    if diameter <= 0:
        raise ValueError("the object diameter must be a positive number of pixels")
    return float(model.object_diameter) / float(diameter)


def predict_logits(
    model: Model,
    image: Any,
    *,
    rgb: bool = False,
    diameter: float | None = None,
    tile_size: int | None = None,
    batch_size: int | None = None,
    device: str = "auto",
    precision: str = "auto",
    progress: ProgressCallback | None = None,
    cancel: CancelCallback | None = None,
) -> np.ndarray:
    """Logits (classes, H, W) for one 2D image: (H, W), (H, W, 3|4) with ``rgb``, or (C, H, W)."""
    prepared = PreparedImage(image, in_channels=model.in_channels, normalization_settings=model.normalization, rgb=rgb)
    scale = rescale_factor(model, diameter)
    if abs(scale - 1.0) < 1e-3:
        return predict_tiled(
            model.net, prepared, tile_size=tile_size, batch_size=batch_size,
            device=device, precision=precision, progress=progress, cancel=cancel,
        )
    _, h, w = prepared.shape
    size = (max(1, round(h * scale)), max(1, round(w * scale)))
    resized = F.interpolate(torch.from_numpy(np.asarray(prepared))[None], size=size, mode="bilinear",
                            align_corners=False, antialias=scale < 1)[0].numpy()
    logits = predict_tiled(model.net, resized, tile_size=tile_size, batch_size=batch_size,
                           device=device, precision=precision, progress=progress, cancel=cancel)
    return F.interpolate(torch.from_numpy(logits)[None], size=(h, w), mode="bilinear", align_corners=False)[0].numpy()


def segment(
    image: Any,
    model: Model | str | None = None,
    *,
    rgb: bool | None = None,
    channel_axis: int | None = None,
    diameter: float | None = None,
    tile_size: int | None = None,
    batch_size: int | None = None,
    device: str = "auto",
    precision: str = "auto",
    progress: ProgressCallback | None = None,
    cancel: CancelCallback | None = None,
) -> np.ndarray:
    """Segment an image with a model (default: the built-in ``nuclei`` model).

    2D images give (H, W) labels. Stacks (Z or T leading axes) are segmented
    slice by slice and give labels of the same leading shape. ``rgb=None``
    guesses colour from an 8-bit trailing axis of 3 or 4; ``channel_axis``
    names the channel axis of multichannel images.
    """
    model = model if isinstance(model, Model) else load_model(model)
    if channel_axis is not None:
        image = np.moveaxis(image, channel_axis, -3) if isinstance(image, np.ndarray) else _moveaxis(image, channel_axis)
        rgb = False
    if rgb is None:
        rgb = is_rgb(image) and channel_axis is None
    plane_ndim = 3 if (rgb or channel_axis is not None) else 2
    if image.ndim < plane_ndim:
        raise ValueError(f"image of shape {tuple(image.shape)} has too few dimensions")
    lead = tuple(image.shape[:-plane_ndim])
    planes = int(np.prod(lead)) if lead else 1
    out = None
    for index, idx in enumerate(np.ndindex(*lead) if lead else [()]):
        plane = image[idx] if idx else image

        def plane_progress(done: int, total: int, _i: int = index) -> None:
            if progress is not None:
                progress(_i * total + done, planes * total)

        logits = predict_logits(
            model, plane, rgb=rgb, diameter=diameter, tile_size=tile_size, batch_size=batch_size,
            device=device, precision=precision, progress=plane_progress, cancel=cancel,
        )
        labels = logits_to_labels(logits, model.task, model.postprocess)
        if not lead:
            return labels
        if out is None:
            out = np.zeros(lead + labels.shape, dtype=np.uint32 if model.task == "instances" else labels.dtype)
        out[idx] = labels
    return _smallest_dtype(out)


def _smallest_dtype(labels: np.ndarray) -> np.ndarray:
    if labels.dtype == np.uint32 and labels.max(initial=0) < 2**16:
        return labels.astype(np.uint16)
    return labels


def _moveaxis(array: Any, axis: int) -> Any:
    import dask.array as da

    return da.moveaxis(da.asarray(array), axis, -3)


