"""Seam-free tiled inference: the tiled result equals the whole-image result.

Windows are aligned to the network's ``2**depth`` grid and each window keeps
only its centre, discarding a margin as wide as the network's receptive
radius. An output pixel therefore sees exactly the context it would see in
one whole-image pass, so there is nothing to blend and no seam (measured in
``benchmarks/bench_tiling.py`` against MONAI-style gaussian blending).

The image is virtually padded at the bottom/right to a multiple of the grid
by repeating the edge pixels; the padding is cropped away again.

Small windows waste most of their work on margins, so the window is chosen
from the image and the free memory (:func:`auto_window`), and a window asked
for explicitly that would cost more than ``MAX_OVERHEAD`` whole-image passes
is raised (:func:`affordable_window`) with a note for the user. Costs are
counted by :func:`plan_cost` from the plan alone, never by timing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..common.callbacks import CancelCallback, ProgressCallback, raise_if_cancelled
from ..common.notes import add_note
from ..model.devices import autocast, resolve_device, resolve_precision
from ..model.fold import inference_net
from ..model.lock import exclusive
from ..model.unet import UNet
from .options import available_memory

MAX_OVERHEAD = 2.0  # an explicit window computing more than this many whole-image passes is raised...
RAISED_OVERHEAD = 1.5  # ...to one computing at most this many: small windows also run slower per pixel
MAX_AUTO_WINDOW = 4096  # px: automatic windows have at most this squared pixels (margins then cost < ~7 %)
MEMORY_FRACTION = {"cuda": 0.5, "other": 0.25}  # of free device (or host) memory one window batch may take
NEAR_BEST = 1.02  # automatic windows: the smallest one within 2 % of the least work

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


Side = int | tuple[int, int]  # a window's side, or its (height, width)


def _sides(window: Side) -> tuple[int, int]:
    return (window, window) if isinstance(window, int) else (int(window[0]), int(window[1]))


def _padded(length: int, grid: int) -> int:
    return math.ceil(max(length, 1) / grid) * grid


def plan_windows(height: int, width: int, window: Side, margin: int, grid: int) -> tuple[int, int, list[Window]]:
    """Padded size and the windows (``window`` px a side, or (height, width)) covering a height x width image."""
    window_h, window_w = _sides(window)
    padded_h, padded_w = _padded(height, grid), _padded(width, grid)
    rows = _axis_windows(padded_h, window_h, margin, grid)
    cols = _axis_windows(padded_w, window_w, margin, grid)
    windows = [Window(y0, y1, x0, x1, ky0, ky1, kx0, kx1) for y0, y1, ky0, ky1 in rows for x0, x1, kx0, kx1 in cols]
    return padded_h, padded_w, windows


def _axis_cost(length: int, window: int, margin: int, grid: int) -> float:
    """Input pixels the windows along one padded axis compute, per pixel of that axis."""
    return sum(end - start for start, end, _, _ in _axis_windows(length, window, margin, grid)) / length


def plan_cost(height: int, width: int, window: Side, margin: int, grid: int) -> float:
    """Network input pixels of :func:`plan_windows`' windows per pixel of one whole-image pass (1.0: no overhead).

    Windows form a grid of rows and columns, so the count factors per axis.
    """
    window_h, window_w = _sides(window)
    return (_axis_cost(_padded(height, grid), window_h, margin, grid)
            * _axis_cost(_padded(width, grid), window_w, margin, grid))


def window_margin(net: UNet) -> int:
    """Pixels discarded on each inner side of a window: the receptive radius, rounded up to the grid."""
    grid = net.size_multiple
    return math.ceil(net.receptive_radius / grid) * grid


def minimum_tile_size(net: UNet) -> int:
    """The smallest window that still has a centre to keep after the margins."""
    return 2 * window_margin(net) + net.size_multiple


def on_grid(net: UNet, tile_size: int) -> int:
    """A window side as the network runs it: on the grid, at least :func:`minimum_tile_size`."""
    grid = net.size_multiple
    return math.ceil(max(int(tile_size), minimum_tile_size(net)) / grid) * grid


def bytes_per_window_pixel(net: UNet, precision: str) -> int:
    """Peak memory of a forward pass per input pixel, ~15 % above what was measured.

    Width 32, depth 4 on the CPU, 1024-1536 px windows: 0.92-1.0 kB in fp32
    and 0.43-0.46 kB in bf16 (BatchNorm folded or not: the peak is the
    decoder's concatenation at full resolution); it grows with the width.
    """
    element = 4 if precision == "fp32" else 2
    return element * (8 * net.base_channels + 4 * net.in_channels + 16)


def window_memory(device: torch.device) -> int:
    """Bytes one window batch may use: a share of the free GPU memory, or of the free RAM elsewhere."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free * MEMORY_FRACTION["cuda"])
    return int(available_memory() * MEMORY_FRACTION["other"])


def largest_window(net: UNet, device: torch.device, batch_size: int, precision: str) -> int:
    """Pixels one window may have so that its batch fits :func:`window_memory` (at most ``MAX_AUTO_WINDOW``²)."""
    pixels = window_memory(device) / max(batch_size, 1) / bytes_per_window_pixel(net, precision)
    return max(min(int(pixels), MAX_AUTO_WINDOW**2), minimum_tile_size(net) ** 2)


def _useful_sides(length: int, smallest: int, largest: int, margin: int, grid: int) -> list[tuple[int, float]]:
    """(side, cost) along one padded axis for the sides that compute less than every smaller side."""
    out: list[tuple[int, float]] = []
    for side in range(smallest, max(min(length, largest), smallest) + 1, grid):
        cost = _axis_cost(length, side, margin, grid)
        if not out or cost < out[-1][1] - 1e-12:
            out.append((min(side, length), cost))
    return out


def auto_window(net: UNet, height: int, width: int, largest_pixels: int) -> tuple[int, int]:
    """The (height, width) window of at most ``largest_pixels`` that computes least for this image.

    Of the windows within 2 % of the least work, the one with fewest pixels
    (memory). Windows need not be square: within 1536² pixels a 2500 x 3000
    image takes two windows a side of 1392 x 1632 (1.2 passes), where the
    best square ones cost 1.5. On a 2-core CPU with 19 GB free, a 2048²
    image is one pass, where fixed 1024 px windows computed 2.25.
    """
    grid, margin, smallest = net.size_multiple, window_margin(net), minimum_tile_size(net)
    padded_h, padded_w = _padded(height, grid), _padded(width, grid)
    longest = max(largest_pixels // smallest, smallest)
    rows = _useful_sides(padded_h, smallest, longest, margin, grid)
    cols = _useful_sides(padded_w, smallest, longest, margin, grid)
    fitting = [(cy * cx, wy * wx, wy, wx) for wy, cy in rows for wx, cx in cols if wy * wx <= largest_pixels]
    if not fitting:
        return smallest, smallest
    best = min(cost for cost, *_ in fitting)
    _, _, window_h, window_w = min((f for f in fitting if f[0] <= best * NEAR_BEST), key=lambda f: (f[1], f[0]))
    return window_h, window_w


def affordable_window(net: UNet, height: int, width: int, requested: int,
                      max_overhead: float = MAX_OVERHEAD) -> int:
    """``requested`` on the grid, raised to the smallest square window computing at most ``max_overhead`` passes."""
    grid, margin = net.size_multiple, window_margin(net)
    side = on_grid(net, requested)
    whole = max(_padded(height, grid), _padded(width, grid))
    while side < whole and plan_cost(height, width, side, margin, grid) > max_overhead:
        side += grid
    return side


def choose_window(net: UNet, height: int, width: int, *, requested: int | None, device: torch.device,
                  batch_size: int, precision: str, max_overhead: float | None = MAX_OVERHEAD) -> Side:
    """The window to run: automatic when not ``requested``, else the request (raised if it costs too much).

    A raised request adds a note for the user (see :mod:`..common.notes`);
    results never depend on the window.
    """
    if requested is None:
        return auto_window(net, height, width, largest_window(net, device, batch_size, precision))
    side = on_grid(net, requested)
    if max_overhead is None:
        return side
    cost = plan_cost(height, width, side, window_margin(net), net.size_multiple)
    if cost <= max_overhead:
        return side
    # raised further than just below the limit: six 672-px windows of a 1000 x 1500 image (1.8 passes) took
    # 2.2-2.8x the time of one pass on a 2-core CPU, two 1008-px ones (1.3 passes) 1.3x
    raised = affordable_window(net, height, width, side, min(max_overhead, RAISED_OVERHEAD))
    if raised != side:
        add_note(f"a {requested}-px window would have cost {cost:.1f}x the work of one pass over the image (its "
                 f"margins are discarded), so {raised}-px windows were used; the result is the same",
                 key=("window raised", requested))
    return raised


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
    tile_size: Side,
    batch_size: int,
    device: torch.device,
    precision: str,
    progress: ProgressCallback | None,
    cancel: CancelCallback | None,
    out: Any | None,
    flip_average: bool = False,
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
    margin = window_margin(net)
    tile_size = tuple(on_grid(net, side) for side in _sides(tile_size))

    padded_h, padded_w, windows = plan_windows(height, width, tile_size, margin, grid)
    if out is None:
        out = np.empty((net.num_classes, height, width), dtype=np.float32)
    elif tuple(out.shape) != (net.num_classes, height, width):
        raise ValueError(f"out has shape {tuple(out.shape)}, expected {(net.num_classes, height, width)}")

    with exclusive(net, cancel):
        return _run_windows(net, image, windows, out, height, width, batch_size, torch_device, precision,
                            progress, cancel, flip_average)


def _run_windows(net: UNet, image: Any, windows: list[Window], out: Any, height: int, width: int, batch_size: int,
                 torch_device: torch.device, precision: str, progress: ProgressCallback | None,
                 cancel: CancelCallback | None, flip_average: bool = False) -> Any:
    was_training = net.training
    net.eval()
    # oneDNN's convolutions prefer channels_last on the CPU in every precision: the built-in model took
    # 1.37 s/Mpx contiguous and 0.73 s/Mpx channels_last in fp32 on a 2-core CPU without bf16
    memory_format = (torch.channels_last if torch_device.type == "cpu" or precision != "fp32"
                     else torch.contiguous_format)
    runner = inference_net(net, torch_device, memory_format)  # BatchNorm folded: a cached copy, net untouched
    if runner is net:  # nothing to fold: run the network itself
        net.to(torch_device)
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
                        logits = flip_averaged(runner, tensor) if flip_average else runner(tensor)
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
        if runner is net:
            net.to(memory_format=torch.contiguous_format)
        net.train(was_training)
    return out


FLIPS = ((), (-1,), (-2,), (-2, -1))


def flip_averaged(runner: torch.nn.Module, tensor: torch.Tensor) -> torch.Tensor:
    """The mean of the network's logits over the window and its three mirror images, mirrored back.

    Windows start on the network's pooling grid and have sides on it, so a
    mirrored window is pooled on the same grid wherever the window lies:
    tiling stays exact.
    """
    total = None
    for dims in FLIPS:
        logits = runner(tensor.flip(dims) if dims else tensor).float()
        logits = logits.flip(dims) if dims else logits
        total = logits if total is None else total + logits
    return total / len(FLIPS)


def _group_by_shape(windows: list[Window]) -> list[list[Window]]:
    groups: dict[tuple[int, int], list[Window]] = {}
    for w in windows:
        groups.setdefault((w.y1 - w.y0, w.x1 - w.x0), []).append(w)
    return list(groups.values())


class OutOfMemory(MemoryError):
    """The device ran out of memory even with the smallest windows."""


def _is_oom(exc: BaseException) -> bool:
    text = str(exc).lower()
    return isinstance(exc, torch.OutOfMemoryError) or "out of memory" in text or "can't allocate memory" in text


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
    max_overhead: float | None = MAX_OVERHEAD,
    flip_average: bool = False,
) -> np.ndarray:
    """Run ``net`` over ``image`` in windows and return float32 logits (classes, H, W).

    ``image`` is (H, W) or (C, H, W), any numeric or bool dtype, numpy, dask,
    zarr or anything sliceable; it is passed to the network as is (no
    normalisation here). ``tile_size`` is the side of the window the network
    sees (rounded to the grid, at least :func:`minimum_tile_size`); None picks
    the one that computes least within the free memory (:func:`auto_window`).
    A window that would compute more than ``max_overhead`` whole-image passes
    is raised to one computing at most 1.5 (``RAISED_OVERHEAD``), with a
    note (None: run it as given, e.g. to test tiling). ``out`` may be a preallocated (classes, H, W) array
    (e.g. zarr) so that memory does not grow with the image.
    ``progress(done, total)`` is called after each batch and ``cancel()``
    checked before each; a true answer raises :class:`Cancelled`.
    ``flip_average`` averages each window's logits over its four mirror
    images (:func:`flip_averaged`); tiles stay exact, as windows lie on the grid.

    When the device runs out of memory, the cache is freed and the run is
    retried with half the batch, then smaller windows; only when the
    smallest window does not fit is :class:`OutOfMemory` raised.
    """
    torch_device = resolve_device(device)
    batch = batch_size or (4 if torch_device.type == "cuda" else 1)
    shape = tuple(image.shape)
    tile = minimum_tile_size(net) if len(shape) < 2 else choose_window(  # (too few axes: refused below)
        net, shape[-2], shape[-1], requested=tile_size, device=torch_device, batch_size=batch,
        precision=resolve_precision(precision, torch_device), max_overhead=max_overhead)
    while True:
        try:
            return _predict_once(
                net, image, tile_size=tile, batch_size=batch, device=torch_device, precision=precision,
                progress=progress, cancel=cancel, out=out, flip_average=flip_average,
            )
        except (torch.OutOfMemoryError, RuntimeError) as exc:
            if not _is_oom(exc):
                raise
            if torch_device.type == "cuda":
                torch.cuda.empty_cache()
            smallest = minimum_tile_size(net)
            tile_h, tile_w = _sides(tile)
            if batch > 1:
                batch //= 2
            elif max(tile_h, tile_w) > smallest:
                tile = (max(smallest, tile_h // 2), max(smallest, tile_w // 2))
            else:
                raise OutOfMemory(
                    f"{torch_device.type} ran out of memory even with {smallest}px windows one at a time; "
                    "close other programs using the GPU or choose the CPU"
                ) from None
