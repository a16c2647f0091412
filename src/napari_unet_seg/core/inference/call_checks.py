"""What :func:`.pipeline.segment_image` is handed, checked before any work: one clear line for each slip.

A Python caller's slip (options as a dict, a plane index without its tuple,
a pixel size of one number, a store path that holds something else) would
otherwise surface deep inside as an unrelated error, after minutes of work,
or, for the store, as the user's folder replaced by labels.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .options import RunOptions
from .provenance import FORMAT, read_provenance


def check_options(options: Any) -> None:
    if not isinstance(options, RunOptions):
        example = "RunOptions(**{...})" if isinstance(options, dict) else "RunOptions(diameter=30)"
        raise TypeError(f"options must be a RunOptions, such as {example}, not {type(options).__name__}")


def check_callbacks(progress: Any, cancel: Any) -> None:
    """Callbacks are functions: a value given by mistake is said now, not as "'int' object is not callable"."""
    for name, value, example in (("progress", progress, "progress(done, total)"),
                                 ("cancel", cancel, "cancel() returning True to stop, e.g. an Event's is_set")):
        if value is not None and not callable(value):
            raise TypeError(f"{name} must be a function, {example}, not {type(value).__name__}")


def checked_planes(planes: Sequence[Any] | None, lead: tuple[int, ...]) -> tuple[tuple[int, ...], ...] | None:
    """``planes`` as tuples of leading indices (a plain index stands for a one-axis stack's slice), each in range."""
    if planes is None:
        return None
    if isinstance(planes, (int, np.integer)):  # one slice, named alone
        planes = [planes]
    if not lead:
        raise ValueError("planes name slices of a stack, but the image is a single plane: leave planes unset")
    checked = []
    for plane in planes:
        index = (plane,) if isinstance(plane, (int, np.integer)) else tuple(plane)
        if len(index) != len(lead) or not all(isinstance(i, (int, np.integer)) and 0 <= i < n
                                                for i, n in zip(index, lead)):
            raise ValueError(f"plane {plane!r} is not a slice of this stack: give indices within its leading axes "
                             f"{lead}, e.g. planes=[{(0,) * len(lead)}]")
        checked.append(tuple(int(i) for i in index))
    if not checked:
        raise ValueError("planes is empty: give the slices to segment, or leave it unset for all of them")
    return tuple(checked)


def checked_pixel_size(pixel_size: Any) -> tuple[float, float] | None:
    """(y, x) µm as two positive numbers, or None."""
    if pixel_size is None:
        return None
    try:
        y, x = (float(v) for v in pixel_size)
    except (TypeError, ValueError):
        raise ValueError(f"pixel_size is (y, x) in µm, two numbers, not {pixel_size!r}") from None
    if not (math.isfinite(y) and math.isfinite(x) and y > 0 and x > 0):
        raise ValueError(f"pixel_size must be two positive numbers (y, x in µm), not {pixel_size!r}")
    return (y, x)


def check_store_path(store: str | os.PathLike) -> None:
    """Refuse a store path that holds anything but a labels store napari-unet-seg wrote (which a run replaces).

    A folder of the user's, a file, or the very zarr being segmented would
    otherwise be replaced by the labels, whole.
    """
    path = Path(store)
    if not path.exists() and not path.is_symlink():
        return
    try:
        record = read_provenance(path) if path.is_dir() else None
    except Exception:  # noqa: BLE001 - unreadable: not shown to be ours, so it is kept
        record = None
    if not (isinstance(record, dict) and record.get("format") == FORMAT):
        what = "a folder" if path.is_dir() else "a file"
        raise FileExistsError(f"{path} already exists and is {what} napari-unet-seg did not write: it is kept; give "
                              "the labels a new store path")
