"""Segment a plane too large for memory into a labels array on disk, block by block.

Normalisation is fitted once for the whole plane (on a sample), so blocks agree.
Each block is segmented inside a window padded by a halo wide enough for the
network's receptive field plus the largest objects; an instance is kept only by
the block that contains its centroid, so objects crossing block borders appear
exactly once, with ids unique over the plane. A plane that fits in one block is
segmented exactly as in memory (:func:`~.prediction.predict_plane`). Memory is
bounded by a few windows (one predicted while earlier ones are post-processed),
never by the image; Cancel waits for the blocks being post-processed.

The blocks give exactly the in-memory objects, also when the image is resized
for the model: each window is resized on the whole image's grid and mapped
back the same way (:func:`~.prediction.predict_region`, :mod:`.resample`).

A block's post-processing (seeds, watershed) and writing run in another
thread while the network predicts the next block: one block at a time beside
a CPU network, a few at once beside a GPU (:func:`finishing_workers`). Labels
are written strictly in block order, so ids and overlaps come out exactly as
without the threads.
"""

from __future__ import annotations

import math
import os
import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..common.callbacks import CancelCallback, ProgressCallback, raise_if_cancelled
from ..common.memory import return_freed_memory
from ..model.devices import resolve_device
from ..model.modelfile import Model
from .layout import plane_size
from .object_size import rescale_factor
from .options import RunOptions
from .prediction import (
    NetworkPrediction,
    empty_side,
    estimate_diameter,
    image_notes,
    predict_plane,
    predict_region,
    prepare,
)

DEFAULT_OBJECT_DIAMETER = 64  # px; what the halo must hold when neither user nor model says
MAX_FINISHING = 4  # blocks post-processed at once beside a GPU (each holds its logits and a few label arrays)
CHUNK = 512  # px: the side of the zarr chunks blockwise outputs are written in


@dataclass(frozen=True)
class PlaneOutcome:
    """What one plane written block by block holds: its objects, their total area, and notes for the user."""

    objects: int
    area: float
    notes: tuple[str, ...] = ()
    largest_id: int = 0  # no id in the plane is larger: the next painted object takes largest_id + 1


def halo_for(model: Model, diameter: float | None) -> int:
    """Context around a block: the network's receptive radius plus 1.5 object diameters (image px)."""
    net = model.net
    scale = rescale_factor(model, diameter)
    margin = math.ceil(net.receptive_radius / net.size_multiple) * net.size_multiple
    objects = float(diameter or model.object_diameter or DEFAULT_OBJECT_DIAMETER)
    halo = margin / scale + net.size_multiple + 1.5 * objects
    return int(math.ceil(halo / net.size_multiple) * net.size_multiple)


def keep_centred(labels: np.ndarray, core: tuple[int, int, int, int]) -> tuple[np.ndarray, np.ndarray]:
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


def segment_plane_blockwise(
    plane: Any, model: Model, out: Any, lead: tuple[int, ...], options: RunOptions, *, rgb: bool,
    progress: ProgressCallback | None = None, cancel: CancelCallback | None = None,
) -> PlaneOutcome:
    """Segment one 2D plane into ``out[lead]``, block by block: its objects, their area, notes (e.g. NaN pixels)."""
    instances = model.task == "instances"
    block_size = options.block_size
    height, width = plane_size(plane, rgb)
    if height <= block_size and width <= block_size:  # one block: exactly the in-memory result
        prediction = predict_plane(model, plane, options, rgb=rgb, progress=progress, cancel=cancel)
        labels = prediction.labels(model)
        out[lead + (slice(None), slice(None))] = labels
        counts = np.bincount(labels.ravel().astype(np.int64))[1:] if instances else np.zeros(0)
        return PlaneOutcome(int((counts > 0).sum()), float(counts.sum()), prediction.notes,
                            int(labels.max(initial=0)) if instances else 0)
    prepared = prepare(model, plane, rgb=rgb)
    notes = image_notes(prepared)  # the normalisation is fitted once for the plane
    grid = model.net.size_multiple
    diameter = options.diameter
    if diameter is None:  # the same automatic object-size check as in memory, on a central crop
        diameter = estimate_diameter(model, prepared, options, cancel=cancel)
    halo = halo_for(model, diameter) if options.halo is None else int(options.halo)
    scale = rescale_factor(model, diameter)
    blocks = [(y, x) for y in range(0, height, block_size) for x in range(0, width, block_size)]
    # labels kept in memory hold the whole plane already: there the larger windows' speed wins
    window_pixels = None if isinstance(out, np.ndarray) else network_window_cap(model, block_size, scale,
                                                                                options.device)
    writer = _BlockWriter(model, out, lead)
    workers = finishing_workers(options.device)
    finishing = ThreadPoolExecutor(workers, "unet-seg-blocks")  # earlier blocks while the next is predicted
    pending: deque[Future] = deque()
    try:
        for i, (by0, bx0) in enumerate(blocks):
            raise_if_cancelled(cancel)
            by1, bx1 = min(by0 + block_size, height), min(bx0 + block_size, width)
            wy0, wx0 = max(by0 - halo, 0) // grid * grid, max(bx0 - halo, 0) // grid * grid
            wy1, wx1 = min(by1 + halo, height), min(bx1 + halo, width)

            def block_progress(done: int, total: int, _i: int = i) -> None:
                if progress is not None:
                    progress(_i * 1000 + (1000 * done) // max(total, 1), len(blocks) * 1000)

            prediction = predict_region(model.net, prepared, scale, options, rows=(wy0, wy1), cols=(wx0, wx1),
                                        progress=block_progress, cancel=cancel,
                                        empty_side=empty_side(model, scale), max_window_pixels=window_pixels)
            while len(pending) >= workers:  # memory stays bounded: this block and `workers` in the making
                _finished(pending.popleft(), cancel)
            pending.append(finishing.submit(writer.write, i, [prediction], (wy0, wy1, wx0, wx1),
                                            (by0, by1, bx0, bx1)))
            del prediction  # the writer holds it alone now, and lets it go once its labels are made
        while pending:
            _finished(pending.popleft(), cancel)
    except BaseException:
        writer.stop()  # cancelled or failed: blocks still in the making are not finished for nothing
        # labels in memory go with the run: a block's post-processing (seconds) is not waited for, and
        # writes nothing once stopped; a store on disk is removed by the caller, so its last write ends first
        finishing.shutdown(wait=not isinstance(out, np.ndarray), cancel_futures=True)
        raise
    finishing.shutdown(wait=True)
    return PlaneOutcome(writer.objects, writer.area, notes, writer.next_id - 1 if instances else 0)


CANCEL_POLL = 0.1  # s: how often a wait for a block's post-processing asks whether the run was cancelled


def _finished(block: Future, cancel: CancelCallback | None) -> None:
    """Wait for a block's labels, hearing Cancel meanwhile: post-processing a large block takes seconds."""
    while True:
        try:
            return block.result(timeout=CANCEL_POLL if cancel is not None else None)
        except TimeoutError:
            raise_if_cancelled(cancel)


def network_window_cap(model: Model, block_size: int, scale: float, device: str) -> int | None:
    """Network pixels a block's windows may hold: those of one block, where the network's memory is the host's.

    A block window carries a halo on each side, up to 1.6x a block's pixels;
    run in one network pass, with the previous block post-processed beside
    it, an 8192² image took 1.69x the peak memory of a 2048² one (one block,
    no halo). Windows no larger than one block keep the network's share
    flat, for ~10 % more network work (the 4096² sample mosaic in memory:
    1.32-1.38 s/Mpx without, 1.44-1.49 with, so labels kept in memory go
    without). A GPU's memory is its own: no cap.
    """
    if resolve_device(device).type == "cuda":
        return None
    grid = model.net.size_multiple
    side = math.ceil(max(block_size * scale, 1) / grid) * grid
    return side * side


def finishing_workers(device: str) -> int:
    """Blocks post-processed at once: one beside a CPU network, which needs the cores; more beside a GPU.

    Seeds and watershed release the GIL only in part (two blocks in two
    threads: 1.4x one thread), so beside a GPU, which leaves the CPU idle,
    a few blocks at a time keep up with it.
    """
    if device.split(":")[0] == "cpu":
        return 1
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 2)
    return max(1, min(MAX_FINISHING, cores // 2))  # the cores this process may use (SLURM, containers)


class _BlockWriter:
    """Turns each block's prediction into labels and writes the objects it owns, numbering them over the plane.

    Labels of several blocks may be made at once (:func:`finishing_workers`);
    they are written strictly in block order, so ids and overlaps come out as
    with one thread.
    """

    def __init__(self, model: Model, out: Any, lead: tuple[int, ...]) -> None:
        self.model, self.out, self.lead = model, out, lead
        self.next_id, self.objects, self.area = 1, 0, 0.0
        self._turn = 0  # the block whose labels are written next
        self._failed = False  # a block failed: the run stops, and later blocks must not wait for its turn
        self._turn_changed = threading.Condition()

    def write(self, index: int, holder: list[NetworkPrediction], window: tuple[int, int, int, int],
              block: tuple[int, int, int, int]) -> None:
        """Block ``index``'s labels, written once every earlier block's are (blocks are submitted in order).

        ``holder`` holds the block's prediction alone, so it is freed as soon
        as its labels are made, before this block waits for its turn.
        """
        try:
            if self._failed:
                return
            labels = holder.pop().labels(self.model)
            with self._turn_changed:
                self._turn_changed.wait_for(lambda: self._turn == index or self._failed)
                if self._failed:
                    return
            self._write(labels, window, block)
            del labels
        except BaseException:
            self.stop()
            raise
        else:
            with self._turn_changed:
                self._turn = index + 1
                self._turn_changed.notify_all()
        finally:
            holder.clear()
            return_freed_memory()  # else the block's freed arrays stay with the process, and memory creeps up

    def stop(self) -> None:
        """The run failed or was cancelled: blocks not yet written are dropped, and none waits for its turn."""
        with self._turn_changed:
            self._failed = True
            self._turn_changed.notify_all()

    def _write(self, labels: np.ndarray, window: tuple[int, int, int, int], block: tuple[int, int, int, int]) -> None:
        wy0, wy1, wx0, wx1 = window
        by0, by1, bx0, bx1 = block
        core = (by0 - wy0, by1 - wy0, bx0 - wx0, bx1 - wx0)
        if self.model.task != "instances":
            self.out[self.lead + (slice(by0, by1), slice(bx0, bx1))] = labels[core[0]:core[1], core[2]:core[3]]
            return
        ids, areas = keep_centred(labels, core)
        mapping = np.zeros(int(labels.max()) + 1, np.uint32)
        mapping[ids] = np.arange(self.next_id, self.next_id + len(ids), dtype=np.uint32)
        self.next_id += len(ids)
        self.objects, self.area = self.objects + len(ids), self.area + float(areas.sum())
        new = mapping[labels]
        region_index = self.lead + (slice(wy0, wy1), slice(wx0, wx1))
        region = np.asarray(self.out[region_index])
        free = (new > 0) & (region == 0)  # an object already written by a neighbour block wins
        region[free] = new[free]
        self.out[region_index] = region
