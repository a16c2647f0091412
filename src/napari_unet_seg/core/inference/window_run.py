"""Running planned windows through a network: batches, copies that overlap compute, and out-of-memory back-off.

On CUDA one batch stays in flight: while the GPU computes it, the CPU reads
the next windows and writes the previous batch's logits (see
:mod:`..model.transfer`). When the device runs out of memory, its cache is
freed and the same windows are retried in half the batch, then split into
smaller windows on the same grid with the same margins
(:func:`~.window_plan.split_window`), so the result does not change; a note
tells the user. Only when one smallest window does not fit is
:class:`OutOfMemory` raised.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..common.callbacks import CancelCallback, ProgressCallback, raise_if_cancelled
from ..common.notes import add_note
from ..model.devices import autocast, free_cached_memory, is_out_of_memory
from ..model.midway import reports_midway
from ..model.transfer import HostCopy, overlaps, to_device
from .window_plan import Window, split_window

Network = Callable[[torch.Tensor], torch.Tensor]


class OutOfMemory(MemoryError):
    """The device ran out of memory even with one smallest window at a time."""


@dataclass(frozen=True)
class Geometry:
    """What the back-off must respect: the image size, the network's grid and margin, the smallest window."""

    height: int
    width: int
    margin: int
    grid: int
    smallest: int


@dataclass(frozen=True)
class _Unit:
    """A window to run, and the index of the planned window it is (part of): progress counts planned windows."""

    window: Window
    planned: int


FLIPS = ((), (-1,), (-2,), (-2, -1))


def flip_averaged(runner: Network, tensor: torch.Tensor) -> torch.Tensor:
    """The mean of the network's logits over the window and its three mirror images, mirrored back.

    Windows start on the network's pooling grid and have sides on it, so a
    mirrored window is pooled on the same grid wherever the window lies:
    tiling stays exact.
    """
    total = None
    for dims in FLIPS:
        logits = runner(tensor.flip(dims) if dims else tensor).float()
        logits = logits.flip(dims) if dims else logits
        if total is None:
            total = logits
        else:
            total += logits  # in place: one running sum alive during the next pass, not two maps
        del logits
    return total / len(FLIPS)


def read_window(image: Any, win: Window, height: int, width: int) -> np.ndarray:
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


def _group_by_shape(units: list[_Unit]) -> list[list[_Unit]]:
    """Windows of one batch have equal size except at clamped borders: one network call per size."""
    groups: dict[tuple[int, int], list[_Unit]] = {}
    for unit in units:
        w = unit.window
        groups.setdefault((w.y1 - w.y0, w.x1 - w.x0), []).append(unit)
    return list(groups.values())


Launched = list[tuple[list[_Unit], HostCopy]]


def _launch(runner: Network, image: Any, units: list[_Unit], geometry: Geometry, device: torch.device,
            precision: str, memory_format: torch.memory_format, flip_average: bool) -> Launched | None:
    """Read, send and start one batch (None: the device ran out of memory; nothing of it is kept)."""
    try:
        launched = []
        for group in _group_by_shape(units):
            arrays = [read_window(image, u.window, geometry.height, geometry.width) for u in group]
            tensor = to_device(arrays, device, memory_format)
            with autocast(device, precision):
                logits = flip_averaged(runner, tensor) if flip_average else runner(tensor)
            launched.append((group, HostCopy(logits)))
        return launched
    except RuntimeError as exc:  # torch.OutOfMemoryError is one
        if not is_out_of_memory(exc):
            raise
    return None  # outside the handler: the traceback, and the tensors it holds, are gone


def _land(launched: Launched, out: Any, geometry: Geometry, left: list[int]) -> None:
    """Write the kept part of each window's logits into ``out``; count it off its planned window."""
    for group, copy in launched:
        for unit, result in zip(group, copy.numpy()):
            w = unit.window
            ky1, kx1 = min(w.keep_y1, geometry.height), min(w.keep_x1, geometry.width)
            if ky1 > w.keep_y0 and kx1 > w.keep_x0:
                out[:, w.keep_y0:ky1, w.keep_x0:kx1] = result[
                    :, w.keep_y0 - w.y0:ky1 - w.y0, w.keep_x0 - w.x0:kx1 - w.x0
                ]
            left[unit.planned] -= 1


def _smaller_window(unit: _Unit, geometry: Geometry) -> tuple[int, int] | None:
    """Half of ``unit``'s window on the grid, at least the smallest (None: it is the smallest already)."""
    grid = geometry.grid
    h, w = unit.window.y1 - unit.window.y0, unit.window.x1 - unit.window.x0
    half_h, half_w = (max(geometry.smallest, -(-(side // 2) // grid) * grid) for side in (h, w))
    return None if half_h >= h and half_w >= w else (half_h, half_w)


def _split(pending: list[_Unit], side: tuple[int, int], geometry: Geometry, left: list[int]) -> list[_Unit]:
    """Every window still to run cut to at most ``side``, counted again in ``left`` (what was written is not)."""
    parts = [_Unit(part, u.planned) for u in pending
             for part in split_window(u.window, side, geometry.margin, geometry.grid)]
    left[:] = [0] * len(left)
    for unit in parts:
        left[unit.planned] += 1
    return parts


def _place(device: torch.device) -> str:
    return "the GPU" if device.type in ("cuda", "mps") else "the computer"


def _out_of_memory(device: torch.device, window: Window) -> OutOfMemory:
    advice = "close other programs using the GPU or choose the CPU" if device.type != "cpu" else \
        "close other programs or choose a smaller model"
    return OutOfMemory(f"{_place(device)} ran out of memory even with one {window.y1 - window.y0} x "
                       f"{window.x1 - window.x0} px window, the smallest this network can use; {advice}")


def _note_reduction(device: torch.device, batch: int, asked: int, window: tuple[int, int] | None) -> None:
    parts = [f"windows were run {batch} at a time instead of {asked}"] if batch != asked else []
    if window is not None:
        parts.append(f"windows were cut to at most {window[0]} x {window[1]} px")
    add_note(f"{_place(device)} ran out of memory, so {' and '.join(parts)}; the result is the same",
             key=("out of memory", device.type, batch, window))


def run_windows(runner: Network, image: Any, windows: list[Window], out: Any, geometry: Geometry, *,
                batch_size: int, device: torch.device, precision: str, memory_format: torch.memory_format,
                progress: ProgressCallback | None = None, cancel: CancelCallback | None = None,
                flip_average: bool = False) -> Any:
    """Write ``runner``'s logits for ``windows`` of ``image`` into ``out``, ``batch_size`` windows per call.

    ``progress(done, total)`` counts planned windows written: once with 0
    as the network starts (so a one-window image shows its network stage
    too), then after each batch; ``cancel()`` is checked before each. A run
    that is one network call (its windows fit one batch) counts the
    network's layers instead (:func:`~..model.midway.reports_midway`), so it
    does not sit at 0 % until the end.
    """
    if progress is not None and 0 < len(windows) <= max(batch_size, 1):
        with reports_midway(runner, progress, passes=4 if flip_average else 1) as steps:
            progress(0, steps)
            _write_windows(runner, image, windows, out, geometry, batch_size=batch_size, device=device,
                           precision=precision, memory_format=memory_format, cancel=cancel,
                           flip_average=flip_average)
        progress(steps, steps)
        return out
    return _write_windows(runner, image, windows, out, geometry, batch_size=batch_size, device=device,
                          precision=precision, memory_format=memory_format, progress=progress, cancel=cancel,
                          flip_average=flip_average)


def _write_windows(runner: Network, image: Any, windows: list[Window], out: Any, geometry: Geometry, *,
                   batch_size: int, device: torch.device, precision: str, memory_format: torch.memory_format,
                   progress: ProgressCallback | None = None, cancel: CancelCallback | None = None,
                   flip_average: bool = False) -> Any:
    """:func:`run_windows`, reporting windows written."""
    pending = [_Unit(w, i) for i, w in enumerate(windows)]
    left = [1] * len(windows)  # windows still to write, per planned window
    asked = max(batch_size, 1)
    total, done, batch = len(windows), 0, asked
    smaller: tuple[int, int] | None = None
    in_flight: Launched = []
    if progress is not None and total:
        progress(0, total)
    while pending:
        raise_if_cancelled(cancel)
        launched = _launch(runner, image, pending[:batch], geometry, device, precision, memory_format,
                           flip_average)
        if launched is None:
            _land(in_flight, out, geometry, left)  # its device memory back before the retry
            in_flight = []
            free_cached_memory(device)
            if batch > 1:
                batch //= 2
                continue
            smaller = _smaller_window(pending[0], geometry)
            if smaller is None:
                raise _out_of_memory(device, pending[0].window)
            pending = _split(pending, smaller, geometry, left)
            continue
        del pending[:batch]
        if overlaps(device):
            launched, in_flight = in_flight, launched  # written once the next batch is on its way
        _land(launched, out, geometry, left)
        if launched and progress is not None:
            while done < total and left[done] == 0:
                done += 1
            progress(done, total)
    _land(in_flight, out, geometry, left)
    if in_flight and progress is not None:
        progress(total, total)
    if batch != asked or smaller is not None:
        _note_reduction(device, batch, asked, smaller)
    return out
