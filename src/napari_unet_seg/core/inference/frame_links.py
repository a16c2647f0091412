"""Objects that keep their id from frame to frame of a time-lapse: what counting over time and trackers need.

Each frame is segmented on its own, so nucleus 12 of one frame is anyone in
the next. Linking renumbers each frame after the one before: an object that
overlaps an object of the previous frame by more than half of their union
(IoU > 0.5) takes its id; any other object gets a new id, never used before
in the stack. IoU above one half makes each match unique both ways, so no
assignment problem is left to solve. A nucleus that moves more than about
half its size between frames, divides or merges starts a new id: for full
tracking, hand the linked labels to a tracker (they are a good start).

Planes are read in bands of rows, two frames at a time, so a stack on disk
is never whole in memory; the result depends only on each frame's labels,
so every path that gives the same frames gives the same linked ids.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .bands import add_counts, row_bands
from .options import RunOptions

MIN_IOU = 0.5  # above one half: a match is unique both ways


def link_frames(labels: Any, rows_per_pass: int = 512) -> int:
    """Renumber the frames (first axis) of ``labels`` (numpy or zarr, (T, H, W)) in place; returns the ids used.

    Frame 0's objects are numbered 1..n (an object filtered out left a gap,
    and the count said one id more than the file held); each later frame
    takes the ids of the objects it overlaps with IoU > 0.5 in the frame
    before, and new ids above every id used so far for the rest. So the ids
    used are 1..returned value, each for one object.
    """
    frames = int(labels.shape[0])
    if frames == 0:
        return 0
    top = _number_from_one(labels, rows_per_pass)
    for t in range(1, frames):
        previous_area, current_area, pairs = _overlaps(labels, t, rows_per_pass)
        table = np.zeros(current_area.size, np.int64)
        if pairs.size:
            previous, current, shared = pairs
            union = previous_area[previous] + current_area[current] - shared
            matched = shared / union > MIN_IOU
            table[current[matched]] = previous[matched]
        present = np.flatnonzero(current_area)
        present = present[present > 0]
        fresh = present[table[present] == 0]
        table[fresh] = top + 1 + np.arange(fresh.size)
        top += int(fresh.size)
        if top > np.iinfo(labels.dtype).max:
            raise ValueError(f"linking needs {top} ids, more than {labels.dtype} labels hold: link a uint32 copy "
                             "(labels.astype(np.uint32)); frames before this one were renumbered already")
        for rows in row_bands(labels.shape[1], rows_per_pass):
            band = np.asarray(labels[t, rows])
            labels[t, rows] = table[band].astype(labels.dtype)
    return top


def _number_from_one(labels: Any, rows_per_pass: int) -> int:
    """Frame 0's ids made 1..n in their order, in place (untouched when they are already); returns n."""
    area = np.zeros(1, np.int64)
    for rows in row_bands(labels.shape[1], rows_per_pass):
        area = add_counts(area, np.bincount(np.asarray(labels[0, rows]).ravel().astype(np.int64)))
    present = np.flatnonzero(area[1:]) + 1
    if present.size == 0 or present[-1] == present.size:  # no gap
        return int(present.size)
    table = np.zeros(area.size, np.int64)
    table[present] = np.arange(1, present.size + 1)
    for rows in row_bands(labels.shape[1], rows_per_pass):
        labels[0, rows] = table[np.asarray(labels[0, rows])].astype(labels.dtype)
    return int(present.size)


def _overlaps(labels: Any, t: int, rows_per_pass: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Areas of frame t-1's ids (already linked) and frame t's, and their overlaps: (previous, current, pixels)."""
    previous_area, current_area = np.zeros(1, np.int64), np.zeros(1, np.int64)
    keys, counts = [], []
    for rows in row_bands(labels.shape[1], rows_per_pass):
        before = np.asarray(labels[t - 1, rows]).ravel().astype(np.int64)
        now = np.asarray(labels[t, rows]).ravel().astype(np.int64)
        previous_area = add_counts(previous_area, np.bincount(before))
        current_area = add_counts(current_area, np.bincount(now))
        both = (before > 0) & (now > 0)
        pair = (before[both] << 32) | now[both]  # one number per (previous, current) pair: ids fit in 32 bits
        found, shared = np.unique(pair, return_counts=True)
        keys.append(found)
        counts.append(shared)
    found, where = np.unique(np.concatenate(keys), return_inverse=True)
    shared = np.bincount(where, weights=np.concatenate(counts)).astype(np.int64) if found.size else found
    return previous_area, current_area, np.vstack([found >> 32, found & 0xFFFFFFFF, shared])


def check_frame_links(options: RunOptions, lead: tuple[int, ...], task: str) -> None:
    """Refuse links that cannot be made: they need objects, and frames along one leading axis."""
    if not options.link_frames:
        return
    if options.output != "instances" or task != "instances":
        raise ValueError("linking objects across frames needs objects: choose instances output with an instance "
                         "model, or do not link")
    if len(lead) > 1:
        raise ValueError(f"linking objects across frames needs one stack axis (T, H, W); this image has "
                         f"{len(lead)} ({' x '.join(map(str, lead))} planes): segment one of its stacks at a time")


def linked_note(frames: int, ids: int) -> str:
    """What linking did, for the run's notes."""
    return (f"objects linked across {frames} frames: {ids} ids (an object keeps its id while it overlaps itself "
            "by more than half from one frame to the next)")
