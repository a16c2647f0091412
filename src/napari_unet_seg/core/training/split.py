"""Holding out part of the user's annotation, so the best checkpoint is chosen on pixels it did not learn from."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from .data import TrainingPair


def split_validation(
    pairs: Sequence[TrainingPair], *, scribbles: bool, fraction: float = 0.2, min_area: int = 128 * 128,
    max_held_out: int = 600 * 600,
) -> tuple[list[TrainingPair], list[TrainingPair]]:
    """Hold out the far end (``fraction``, less on big images) of each large enough annotated region.

    Every image keeps teaching (the user's latest correction is never left
    out); small annotations are used whole for training, and at most
    ``max_held_out`` pixels are held out in all (scoring them costs time at
    every evaluation): a big image gives a narrower strip, never none (a
    2-Mpx image once had nothing held out, so nothing could say that training
    made it worse), and a region-limited correction of a third of a small
    image still holds out a 64-px strip (with none, a fine-tune that made the
    domain worse -- AP50 0.444 -> 0.379 on dsb2018 stained -- was kept).
    The latest corrections are held out from first; earlier rounds'
    (``replay``) get what the budget leaves, and their strips lie where
    they lay before, so they stay unseen round after round.
    Returns (train, val); ``val`` is empty when there is not enough annotation.
    """
    train_pairs: list[TrainingPair] = []
    val_pairs: list[TrainingPair] = []
    regions = [np.ones(np.shape(p.labels), bool) if p.valid is None else np.asarray(p.valid) > 0 for p in pairs]
    # scoring costs time at every evaluation: hold out from the latest corrections first, then from earlier ones
    # (replay), the largest first, up to a budget
    budget = float(max_held_out)
    strips: dict[int, np.ndarray] = {}  # pair index -> the held-out far end of its region
    for i in sorted(range(len(pairs)), key=lambda i: (pairs[i].replay, -int(regions[i].sum()))):
        area = int(regions[i].sum())
        share = min(fraction, budget / max(area, 1))
        if area >= min_area and area * share >= 64 * 64:
            strip = far_end(regions[i], share)
            held = int((regions[i] & strip).sum())
            if held > 0.4 * area:  # a small region would lose most of its teaching to the judge
                continue
            strips[i] = strip
            budget -= held
    for i, (pair, region) in enumerate(zip(pairs, regions)):
        labels = np.asarray(pair.labels)
        if i not in strips:
            train_pairs.append(pair)
            continue
        strip = strips[i]
        held = region & strip
        if scribbles:
            values, counts = np.unique(labels[held & (labels > 0)], return_counts=True)
            if (counts >= 50).sum() < 2:  # too few scribbles there to score anything
                train_pairs.append(pair)
                continue
        train_pairs.append(replace(pair, valid=region & ~strip))
        val_pairs.append(replace(pair, valid=held, name=f"{pair.name} (held out)"))
    return train_pairs, val_pairs


def far_end(region: np.ndarray, share: float) -> np.ndarray:
    """The last ``share`` (at least 64 px) of the region's bounding box along its longer side."""
    ys, xs = np.nonzero(region)
    axis = 0 if (ys.max() - ys.min()) > (xs.max() - xs.min()) else 1
    lo, hi = (ys.min(), ys.max() + 1) if axis == 0 else (xs.min(), xs.max() + 1)
    cut = int(hi - max(round((hi - lo) * share), 64))
    strip = np.zeros(region.shape, bool)
    if axis == 0:
        strip[cut:] = True
    else:
        strip[:, cut:] = True
    return strip
