"""Seam-free tiled inference: the tiled result equals the whole-image result.

Windows are aligned to the network's ``2**depth`` grid and each window keeps
only its centre, discarding a margin as wide as the network's receptive
radius. An output pixel therefore sees exactly the context it would see in
one whole-image pass, so there is nothing to blend and no seam (measured in
``benchmarks/bench_tiling.py`` against MONAI-style gaussian blending).

The image is virtually padded at the bottom/right to a multiple of the grid
by repeating the edge pixels; the padding is cropped away again.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..common.callbacks import CancelCallback, ProgressCallback, raise_if_cancelled
from ..model.devices import autocast, resolve_device, resolve_precision
from ..model.lock import exclusive
from ..model.unet import UNet

@dataclass(frozen=True)
class Window:
    """One network input (``y0:y1, x0:x1`` in padded coordinates) and the part of its output kept."""

    y0: int
    y1: int
    x0: int
    x1: int
    keep_y0: int
    keep_y1: int
    keep_x0: int
    keep_x1: int


def _axis_windows(length: int, window: int, margin: int, grid: int) -> list[tuple[int, int, int, int]]:
    """Start/end of windows along one padded axis and the output range each keeps.

    Kept ranges tile ``[0, length)`` exactly; every kept pixel is at least
    ``margin`` from its window's edge unless that edge is the image border.
    """
    if window >= length:
        return [(0, length, 0, length)]
    step = window - 2 * margin
    out = []
    keep_start = 0
    while keep_start < length:
        start = min(max(keep_start - margin, 0), length - window)
        start -= start % grid
        end = start + window
        keep_end = length if end >= length else end - margin
        out.append((start, end, keep_start, keep_end))
        keep_start = keep_end
        assert step > 0
    return out


def plan_windows(height: int, width: int, window: int, margin: int, grid: int) -> tuple[int, int, list[Window]]:
    """Padded size and the windows covering a height x width image."""
    padded_h = math.ceil(max(height, 1) / grid) * grid
    padded_w = math.ceil(max(width, 1) / grid) * grid
    rows = _axis_windows(padded_h, window, margin, grid)
    cols = _axis_windows(padded_w, window, margin, grid)
    windows = [Window(y0, y1, x0, x1, ky0, ky1, kx0, kx1) for y0, y1, ky0, ky1 in rows for x0, x1, kx0, kx1 in cols]
    return padded_h, padded_w, windows


def minimum_tile_size(net: UNet) -> int:
    """The smallest window that still has a centre to keep after the margins."""
    grid = net.size_multiple
    margin = math.ceil(net.receptive_radius / grid) * grid
    return 2 * margin + grid


def default_tile_size(net: UNet, device: torch.device, batch_size: int) -> int:
    """A window large enough to keep the margin overhead small, small enough for memory."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        # activation memory ~ 4 bytes * ~12 maps of base width per pixel at full resolution
        per_pixel = 4 * 12 * net.base_channels * 2
        side = int(math.sqrt(free * 0.5 / (per_pixel * batch_size)))
        side = min(side, 2048)
    else:
        side = 1024
    grid = net.size_multiple
    side = max(side - side % grid, minimum_tile_size(net))
    return side


def _read_window(image: Any, win: Window, height: int, width: int) -> np.ndarray:
    """Read one window as (C, h, w) float32, repeating edge pixels past the image."""
    y1, x1 = min(win.y1, height), min(win.x1, width)
    data = np.asarray(image[..., win.y0:y1, win.x0:x1])
    if data.ndim == 2:
        data = data[None]
    data = data.astype(np.float32, copy=False)
    pad_y, pad_x = (win.y1 - win.y0) - data.shape[-2], (win.x1 - win.x0) - data.shape[-1]
    if pad_y or pad_x:
        data = np.pad(data, ((0, 0), (0, pad_y), (0, pad_x)), mode="edge")
    return data


def _predict_once(
    net: UNet,
    image: Any,
    *,
    tile_size: int,
    batch_size: int,
    device: torch.device,
    precision: str,
    progress: ProgressCallback | None,
    cancel: CancelCallback | None,
    out: Any | None,
) -> np.ndarray:
    """One attempt of :func:`predict_tiled` with fixed window and batch sizes."""
    shape = tuple(image.shape)
    if len(shape) == 2:
        channels, height, width = 1, shape[0], shape[1]
    elif len(shape) == 3:
        channels, height, width = shape
    else:
        raise ValueError(f"image must be (H, W) or (C, H, W), got shape {shape}")
    if channels != net.in_channels:
        raise ValueError(f"the network expects {net.in_channels} channel(s), the image has {channels}")
    if height < 1 or width < 1:
        raise ValueError(f"image is empty (shape {shape})")

    torch_device = device
    precision = resolve_precision(precision, torch_device)
    grid = net.size_multiple
    margin = math.ceil(net.receptive_radius / grid) * grid
    tile_size = max(int(tile_size), minimum_tile_size(net))
    tile_size = math.ceil(tile_size / grid) * grid

    padded_h, padded_w, windows = plan_windows(height, width, tile_size, margin, grid)
    if out is None:
        out = np.empty((net.num_classes, height, width), dtype=np.float32)
    elif tuple(out.shape) != (net.num_classes, height, width):
        raise ValueError(f"out has shape {tuple(out.shape)}, expected {(net.num_classes, height, width)}")

    with exclusive(net, cancel):
        return _run_windows(net, image, windows, out, height, width, batch_size, torch_device, precision,
                            progress, cancel)


def _run_windows(net: UNet, image: Any, windows: list[Window], out: Any, height: int, width: int, batch_size: int,
                 torch_device: torch.device, precision: str, progress: ProgressCallback | None,
                 cancel: CancelCallback | None) -> Any:
    was_training = net.training
    net.eval()
    net.to(torch_device)
    memory_format = torch.channels_last if torch_device.type == "cpu" and precision == "bf16" else torch.contiguous_format
    net.to(memory_format=memory_format)
    total = len(windows)
    try:
        with torch.inference_mode():
            for start in range(0, total, batch_size):
                raise_if_cancelled(cancel)
                batch_windows = windows[start:start + batch_size]
                # windows of one batch have equal size except at clamped borders; group by shape
                for group in _group_by_shape(batch_windows):
                    batch = np.stack([_read_window(image, w, height, width) for w in group])
                    tensor = torch.from_numpy(batch).to(torch_device, non_blocking=True)
                    tensor = tensor.contiguous(memory_format=memory_format)
                    with autocast(torch_device, precision):
                        logits = net(tensor)
                    logits = logits.float().cpu().numpy()
                    for w, result in zip(group, logits):
                        ky1, kx1 = min(w.keep_y1, height), min(w.keep_x1, width)
                        if ky1 <= w.keep_y0 or kx1 <= w.keep_x0:
                            continue
                        out[:, w.keep_y0:ky1, w.keep_x0:kx1] = result[
                            :, w.keep_y0 - w.y0:ky1 - w.y0, w.keep_x0 - w.x0:kx1 - w.x0
                        ]
                if progress is not None:
                    progress(min(start + batch_size, total), total)
    finally:
        net.to(memory_format=torch.contiguous_format)
        net.train(was_training)
    return out


def _group_by_shape(windows: list[Window]) -> list[list[Window]]:
    groups: dict[tuple[int, int], list[Window]] = {}
    for w in windows:
        groups.setdefault((w.y1 - w.y0, w.x1 - w.x0), []).append(w)
    return list(groups.values())


class OutOfMemory(MemoryError):
    """The device ran out of memory even with the smallest windows."""


def _is_oom(exc: BaseException) -> bool:
    return isinstance(exc, torch.OutOfMemoryError) or "out of memory" in str(exc).lower()


def predict_tiled(
    net: UNet,
    image: Any,
    *,
    tile_size: int | None = None,
    batch_size: int | None = None,
    device: str | torch.device = "auto",
    precision: str = "auto",
    progress: ProgressCallback | None = None,
    cancel: CancelCallback | None = None,
    out: Any | None = None,
) -> np.ndarray:
    """Run ``net`` over ``image`` in windows and return float32 logits (classes, H, W).

    ``image`` is (H, W) or (C, H, W), any numeric or bool dtype, numpy, dask,
    zarr or anything sliceable; it is passed to the network as is (no
    normalisation here). ``tile_size`` is the side of the window the network
    sees (rounded to the grid, at least :func:`minimum_tile_size`); None picks
    one for the device. ``out`` may be a preallocated (classes, H, W) array
    (e.g. zarr) so that memory does not grow with the image.
    ``progress(done, total)`` is called after each batch and ``cancel()``
    checked before each; a true answer raises :class:`Cancelled`.

    When the device runs out of memory, the cache is freed and the run is
    retried with half the batch, then smaller windows; only when the
    smallest window does not fit is :class:`OutOfMemory` raised.
    """
    torch_device = resolve_device(device)
    batch = batch_size or (4 if torch_device.type == "cuda" else 1)
    tile = tile_size if tile_size is not None else default_tile_size(net, torch_device, batch)
    while True:
        try:
            return _predict_once(
                net, image, tile_size=tile, batch_size=batch, device=torch_device, precision=precision,
                progress=progress, cancel=cancel, out=out,
            )
        except (torch.OutOfMemoryError, RuntimeError) as exc:
            if not _is_oom(exc):
                raise
            if torch_device.type == "cuda":
                torch.cuda.empty_cache()
            smallest = minimum_tile_size(net)
            if batch > 1:
                batch //= 2
            elif tile > smallest:
                tile = max(smallest, tile // 2)
            else:
                raise OutOfMemory(
                    f"{torch_device.type} ran out of memory even with {smallest}px windows one at a time; "
                    "close other programs using the GPU or choose the CPU"
                ) from None
