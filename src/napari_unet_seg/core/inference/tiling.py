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

Where the windows go is :mod:`.window_plan`; running them (batches,
asynchronous copies, out-of-memory back-off) is :mod:`.window_run`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from ..common.callbacks import CancelCallback, ProgressCallback
from ..common.notes import add_note
from ..model.devices import resolve_device, resolve_precision
from ..model.fold import inference_net
from ..model.lock import exclusive
from ..model.midway import stops_midway
from ..model.unet import UNet
from .options import available_memory
from .window_plan import Side, Window, axis_windows, padded, plan_windows, sides
from .window_run import FLIPS, Geometry, OutOfMemory, flip_averaged, run_windows

__all__ = [  # the window plan and run live in their own modules; their public names stay importable from here
    "FLIPS", "MAX_OVERHEAD", "OutOfMemory", "Side", "Window", "affordable_window", "auto_window",
    "bytes_per_window_pixel", "choose_window", "flip_averaged", "largest_window", "minimum_tile_size", "on_grid",
    "plan_cost", "plan_windows", "predict_tiled", "window_margin", "window_memory",
]

MAX_OVERHEAD = 2.0  # an explicit window computing more than this many whole-image passes is raised...
RAISED_OVERHEAD = 1.5  # ...to one computing at most this many: small windows also run slower per pixel
MAX_AUTO_WINDOW = 4096  # px: automatic windows have at most this squared pixels (margins then cost < ~7 %)
MEMORY_FRACTION = {"cuda": 0.5, "other": 0.25}  # of free device (or host) memory one window batch may take
NEAR_BEST = 1.02  # automatic windows: the smallest one within 2 % of the least work


def _axis_cost(length: int, window: int, margin: int, grid: int) -> float:
    """Input pixels the windows along one padded axis compute, per pixel of that axis."""
    return sum(end - start for start, end, _, _ in axis_windows(length, window, margin, grid)) / length


def plan_cost(height: int, width: int, window: Side, margin: int, grid: int) -> float:
    """Network input pixels of :func:`plan_windows`' windows per pixel of one whole-image pass (1.0: no overhead).

    Windows form a grid of rows and columns, so the count factors per axis.
    """
    window_h, window_w = sides(window)
    return (_axis_cost(padded(height, grid), window_h, margin, grid)
            * _axis_cost(padded(width, grid), window_w, margin, grid))


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

    Width 16 / 32 / 64, depth 4 on the CPU, 1024-px windows, fp32: 0.30 /
    0.62 / 1.20 kB (0.58 kB for width 32 at 1536 px); bf16 halves the
    network's part. The peak is at the decoder's full-resolution
    concatenation (skip, upsampled tensor, concatenation and the level below:
    ~4.5x the width; :meth:`UNet.forward` frees the rest early). The logits
    add their own, in fp32 whatever the precision: the head's output and its
    copy for the host, and flip averaging's running sum (a many-class model
    with flips went 1.4-2.3x over a width-only estimate).
    """
    element = 4 if precision == "fp32" else 2
    return element * (5 * net.base_channels + 4 * net.in_channels) + 4 * (16 + 5 * net.num_classes)


def window_memory(device: torch.device) -> int:
    """Bytes one window batch may use: a share of the free GPU memory, or of the free RAM elsewhere."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free * MEMORY_FRACTION["cuda"])
    return int(available_memory() * MEMORY_FRACTION["other"])


def largest_window(net: UNet, device: torch.device, batch_size: int, precision: str,
                   max_pixels: int | None = None) -> int:
    """Pixels one window may have so that its batch fits :func:`window_memory` (at most ``MAX_AUTO_WINDOW``² and
    ``max_pixels``, never below the smallest exact window)."""
    pixels = window_memory(device) / max(batch_size, 1) / bytes_per_window_pixel(net, precision)
    cap = MAX_AUTO_WINDOW**2 if max_pixels is None else min(MAX_AUTO_WINDOW**2, int(max_pixels))
    return max(min(int(pixels), cap), minimum_tile_size(net) ** 2)


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
    padded_h, padded_w = padded(height, grid), padded(width, grid)
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
    whole = max(padded(height, grid), padded(width, grid))
    while side < whole and plan_cost(height, width, side, margin, grid) > max_overhead:
        side += grid
    return side


def choose_window(net: UNet, height: int, width: int, *, requested: int | None, device: torch.device,
                  batch_size: int, precision: str, max_overhead: float | None = MAX_OVERHEAD,
                  max_pixels: int | None = None) -> Side:
    """The window to run: automatic when not ``requested``, else the request (raised if it costs too much).

    Automatic windows hold at most ``max_pixels`` (None: as many as the free
    memory allows). A raised request adds a note for the user (see
    :mod:`..common.notes`); results never depend on the window.
    """
    if requested is None:
        return auto_window(net, height, width, largest_window(net, device, batch_size, precision, max_pixels))
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
    max_window_pixels: int | None = None,
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
    ``progress(done, total)`` is called with 0 as the network starts, then
    after each batch, and ``cancel()`` checked before each; a true answer raises :class:`Cancelled`.
    ``flip_average`` averages each window's logits over its four mirror
    images (:func:`flip_averaged`); tiles stay exact, as windows lie on the grid.
    ``max_window_pixels`` caps automatic windows below what the free memory
    allows (blockwise storage keeps its memory flat with it).

    When the device runs out of memory, its cache is freed and the same
    windows are retried in half the batch, then in smaller windows (same
    result, with a note); only when one smallest window does not fit is
    :class:`OutOfMemory` raised.
    """
    if not isinstance(net, torch.nn.Module):
        hint = " (a loaded model's network is model.net)" if hasattr(net, "net") else ""
        raise TypeError(f"predict_tiled takes the network itself{hint}, not {type(net).__name__}")
    if not hasattr(image, "shape"):
        raise TypeError(f"image must be an array (numpy, dask, zarr...), not {type(image).__name__}: e.g. "
                        "np.asarray(image)")
    torch_device = resolve_device(device)
    batch = batch_size or (4 if torch_device.type == "cuda" else 1)
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
    precision = resolve_precision(precision, torch_device)
    tile = choose_window(net, height, width, requested=tile_size, device=torch_device, batch_size=batch,
                         precision=precision, max_overhead=max_overhead, max_pixels=max_window_pixels)
    geometry = Geometry(height, width, window_margin(net), net.size_multiple, minimum_tile_size(net))
    _, _, windows = plan_windows(height, width, tuple(on_grid(net, side) for side in sides(tile)),
                                 geometry.margin, geometry.grid)
    if out is None:
        out = np.empty((net.num_classes, height, width), dtype=np.float32)
    elif tuple(out.shape) != (net.num_classes, height, width):
        raise ValueError(f"out has shape {tuple(out.shape)}, expected {(net.num_classes, height, width)}")
    # oneDNN's convolutions prefer channels_last on the CPU in every precision: the built-in model took
    # 1.37 s/Mpx contiguous and 0.73 s/Mpx channels_last in fp32 on a 2-core CPU without bf16
    memory_format = (torch.channels_last if torch_device.type == "cpu" or precision != "fp32"
                     else torch.contiguous_format)
    with exclusive(net, cancel):
        was_training = net.training
        net.eval()
        runner = inference_net(net, torch_device, memory_format, precision)  # folded copy per device: net untouched
        if runner is net:  # nothing to fold, already on the device: run the network itself
            net.to(memory_format=memory_format)
        try:
            with torch.inference_mode(), stops_midway(runner, cancel):  # Cancel heard inside a long window too
                return run_windows(runner, image, windows, out, geometry, batch_size=batch, device=torch_device,
                                   precision=precision, memory_format=memory_format, progress=progress,
                                   cancel=cancel, flip_average=flip_average)
        finally:
            if runner is net:
                net.to(memory_format=torch.contiguous_format)
            net.train(was_training)
