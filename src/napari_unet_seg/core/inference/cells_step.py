"""Whole cells as a step of a run: the nuclei just segmented, grown over another channel of the same image.

A two-channel experiment (a nuclear stain, a cytoplasm or membrane stain)
then gives nuclei and their cells from one run, in the batch and from the
command line, grown exactly as the *Cells from nuclei* dock and ``unet-seg
cells`` grow them (:func:`.cells.grow_cells`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ..common.callbacks import CancelCallback
from .cells import CellOptions, check_cell_options, grow_cells
from .layout import one_channel
from .options import RunOptions


def cell_options(options: RunOptions) -> CellOptions | None:
    """How cells are to be grown, or None when the run grows none."""
    if options.cells_channel is None:
        return None
    return CellOptions(boundary=options.cell_boundary, threshold=options.cell_threshold,  # type: ignore[arg-type]
                       max_distance=options.cell_max_distance)


def describe_cells_request(settings: Mapping[str, Any]) -> str:
    """"channel 1, cytoplasm, threshold 0.3, reach 40 px" (or "none") from RunOptions fields or their record."""
    channel = settings.get("cells_channel")
    if channel is None:
        return "none"
    words = [f"channel {int(channel)}", str(settings.get("cell_boundary") or "cytoplasm")]
    if settings.get("cell_threshold") is not None:
        words.append(f"threshold {float(settings['cell_threshold']):g}")
    if settings.get("cell_max_distance") is not None:
        words.append(f"reach {float(settings['cell_max_distance']):g} px")
    return ", ".join(words)


def check_cells(options: RunOptions, task: str) -> None:
    """One-line ``ValueError`` for cells that cannot be grown from this run, before any work is done."""
    wanted = cell_options(options)
    if wanted is None:
        return
    if task != "instances" or options.output != "instances":
        raise ValueError("cells grow from nuclei: they need an instance model's objects, not a class output")
    if options.store is not None:
        raise ValueError("cells are grown in memory, plane by plane: not with labels written block by block to disk "
                         "(grow them afterwards with unet-seg cells)")
    try:
        check_cell_options(wanted, has_image=True, has_mask=False)
    except ValueError as exc:
        raise ValueError(f"cells: {exc}") from None


def cell_stain(image: Any, options: RunOptions, *, rgb: bool, channel_axis: int | None) -> Any:
    """Channel ``options.cells_channel`` of the image, lazily (leading axes, H, W)."""
    channel = int(options.cells_channel)
    if channel_axis is None and not rgb:
        raise ValueError(f"cells grow over another channel of the same image (channel {channel} was asked), but "
                         "this image has one channel: grow them over a stain in another file with unet-seg cells")
    try:
        return one_channel(image, channel, rgb=rgb, channel_axis=channel_axis)
    except ValueError as exc:
        raise ValueError(f"cells: {exc}".replace("was asked", "was asked for the cells")) from None


def grow_run_cells(labels: np.ndarray, stain: Any, options: RunOptions, planes: tuple[tuple[int, ...], ...],
                   cancel: CancelCallback | None = None) -> np.ndarray:
    """Cells of the segmented planes (the others stay 0), each with its nucleus's id."""
    wanted = cell_options(options)
    assert wanted is not None
    cells = np.zeros_like(labels)
    for plane in planes:
        cells[plane] = grow_cells(labels[plane], np.asarray(stain[plane]), options=wanted, cancel=cancel)
    return cells
