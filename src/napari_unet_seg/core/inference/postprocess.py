"""Logits -> labels: class ids for semantic models, one id per object for instance models."""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

import numpy as np
from scipy import ndimage as ndi
from skimage.filters import gaussian
from skimage.segmentation import watershed

from .hmaxima import h_maxima_within

DEFAULTS = {"foreground_threshold": 0.5, "seed_prominence": 0.1, "smoothing": 1.0, "min_size": 8, "min_peak": 0.0,
            "min_brightness": 0.0}
SEED_SETTINGS = ("foreground_threshold", "seed_prominence", "smoothing")  # the ones seed_points takes
SEED_TILE = 2048  # px: seed_points_tiled searches windows this big, so memory stays bounded on large images
SEED_MARGIN = 128  # px of context around each window (several nuclei at the network's size)
# The automatic object-size measurement always uses these, whatever a model's own settings: models' stored size
# bands were tuned against this measurement, so it is part of the model-file contract. Never change it.
MEASURING_SETTINGS = MappingProxyType(
    {"foreground_threshold": 0.5, "seed_prominence": 0.1, "smoothing": 1.0, "min_size": 8, "min_peak": 0.0})


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -60, 60)))


def semantic_labels(logits: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Argmax class ids (0 = background); a single channel is thresholded after sigmoid."""
    if logits.shape[0] == 1:
        return (sigmoid(logits[0]) > threshold).astype(np.uint8)
    ids = np.argmax(logits, axis=0)
    return ids.astype(np.uint8 if logits.shape[0] <= 256 else np.uint16)


def _maps(logits: np.ndarray, foreground_threshold: float, smoothing: float) -> tuple[np.ndarray, np.ndarray]:
    """Foreground mask and the lightly smoothed centre map."""
    foreground = sigmoid(logits[0]) > foreground_threshold
    centre = sigmoid(logits[1]).astype(np.float32)
    if smoothing > 0:
        centre = gaussian(centre, smoothing, preserve_range=True)
    return foreground, centre


def _seed_mask(foreground: np.ndarray, centre: np.ndarray, seed_prominence: float) -> np.ndarray:
    """The centre map's h-maxima inside the foreground (scikit-image's ``h_maxima``, computed only there)."""
    return h_maxima_within(centre, seed_prominence, foreground) if foreground.any() else foreground


def seed_points(
    logits: np.ndarray,
    *,
    foreground_threshold: float = DEFAULTS["foreground_threshold"],
    seed_prominence: float = DEFAULTS["seed_prominence"],
    smoothing: float = DEFAULTS["smoothing"],
) -> np.ndarray:
    """(N, 2) float (row, col) centres of the seeds :func:`instance_labels` would grow, one per object."""
    foreground, centre = _maps(logits, foreground_threshold, smoothing)
    seeds, n_seeds = ndi.label(_seed_mask(foreground, centre, seed_prominence))
    return np.array(ndi.center_of_mass(seeds, seeds, range(1, n_seeds + 1)), np.float64).reshape(-1, 2)


def seed_points_tiled(logits: np.ndarray, settings: dict[str, Any], tile: int = SEED_TILE,
                      margin: int = SEED_MARGIN, origin: tuple[int, int] = (0, 0)) -> np.ndarray:
    """:func:`seed_points` window by window, each keeping the seeds in its own part.

    The search needs several times the window's size in memory, and an image
    enlarged for the network can be large; a margin of several nuclei gives
    each window the context its seeds depend on. Windows sit on the whole
    image's grid (``origin``: where these logits start in it), so a block of
    a large image searches the same windows the whole image would.
    """
    h, w = logits.shape[-2:]
    oy, ox = origin
    starts_y = range(oy // tile * tile, oy + h, tile)
    starts_x = range(ox // tile * tile, ox + w, tile)
    if len(starts_y) == 1 and len(starts_x) == 1:
        return seed_points(logits, **settings)
    found = []
    for ty in starts_y:
        for tx in starts_x:
            ya, xa = max(ty - margin - oy, 0), max(tx - margin - ox, 0)
            points = seed_points(logits[:, ya:ty + tile + margin - oy, xa:tx + tile + margin - ox], **settings)
            points = points + (ya, xa)
            rows, cols = np.rint(points[:, 0]) + oy, np.rint(points[:, 1]) + ox
            found.append(points[(rows >= ty) & (rows < ty + tile) & (cols >= tx) & (cols < tx + tile)])
    return np.concatenate(found)


def instance_labels(
    logits: np.ndarray,
    *,
    foreground_threshold: float = DEFAULTS["foreground_threshold"],
    seed_prominence: float = DEFAULTS["seed_prominence"],
    smoothing: float = DEFAULTS["smoothing"],
    min_size: int = DEFAULTS["min_size"],
    min_peak: float = DEFAULTS["min_peak"],
    min_brightness: float = DEFAULTS["min_brightness"],
    seeds_at: np.ndarray | None = None,
    brightness: np.ndarray | None = None,
) -> np.ndarray:
    """Foreground + centre-map logits -> instance labels.

    Every object's centre map rises to a single peak in its middle and falls
    to 0 where it touches another object, so seeds are the peaks that stand
    out by at least ``seed_prominence`` (h-maxima of the lightly smoothed
    map): a bump inside one textured nucleus is not a second seed, two
    touching nuclei are two. A watershed over the centre map inside the
    foreground grows the seeds; foreground pieces without a seed become
    objects of their own, so small faint objects are not dropped -- unless
    their (smoothed) centre map never rises to ``min_peak``: a real nucleus
    has a middle, a smear of debris or a rim fragment often has none.

    ``min_brightness`` drops objects whose mean ``brightness`` (the image as
    the network saw it, normalised, at the logits' size) is lower: people
    often leave dim, out-of-focus nuclei out of their annotation, and the
    network, trained on images where every nucleus counts, finds them.
    Fine-tuning fits it to the user's annotation (:mod:`..training.tuning`).

    ``seeds_at`` ((N, 2) row, col) replaces the seed search with seeds found
    elsewhere, e.g. by :func:`seed_points` on sharper logits of an enlarged copy.
    """
    foreground, centre = _maps(logits, foreground_threshold, smoothing)
    if seeds_at is None:
        seeds, n_seeds = ndi.label(_seed_mask(foreground, centre, seed_prominence))
    else:
        seeds, n_seeds = _point_markers(seeds_at, foreground)
    labels = grow_seeds(centre, seeds, n_seeds, foreground)
    orphans, n_orphans = ndi.label(foreground & (labels == 0))
    if n_orphans:
        labels = np.where(orphans > 0, orphans + labels.max(), labels)
    if min_peak > 0 and labels.any():
        labels = np.where(object_peaks(centre, labels)[labels] >= min_peak, labels, 0)
    if min_brightness > 0:
        if brightness is None:
            raise ValueError("min_brightness needs the image's brightness at the logits' size")
        labels = drop_dim_objects(labels, brightness, min_brightness)
    return relabel_by_size(labels, min_size)


def grow_seeds(centre: np.ndarray, seeds: np.ndarray, n_seeds: int, foreground: np.ndarray) -> np.ndarray:
    """``watershed(-centre, seeds, mask=foreground)``, the same labels, at a third of the cost.

    The flood cannot leave a piece of foreground (4-connected, as the
    watershed's own neighbours), so a piece holding one seed is that seed's
    object whole, and only pieces holding two or more are flooded, each in
    its own box. Most nuclei stand alone: on the sample mosaic this took the
    watershed from 0.36-0.56 s to 0.15-0.19 s a 2272² block.
    """
    if not n_seeds:
        return np.zeros(foreground.shape, np.int64)
    pieces, n_pieces = ndi.label(foreground)
    piece_of_seed = np.zeros(n_seeds + 1, np.int64)
    piece_of_seed[seeds.ravel()] = pieces.ravel()  # a seed lies in one piece (seeds are foreground)
    piece_of_seed[0] = 0
    seeds_in = np.bincount(piece_of_seed[1:], minlength=n_pieces + 1)
    seeds_in[0] = 0
    label_of_piece = np.zeros(n_pieces + 1, np.int64)
    alone = seeds_in[piece_of_seed] == 1
    label_of_piece[piece_of_seed[alone]] = np.flatnonzero(alone)
    labels = label_of_piece[pieces]
    shared = np.flatnonzero(seeds_in >= 2)
    if shared.size:
        boxes = ndi.find_objects(pieces)
        for piece in shared.tolist():
            box = boxes[piece - 1]
            inside = pieces[box] == piece
            flooded = watershed(-centre[box], np.where(inside, seeds[box], 0), mask=inside)
            labels[box][inside] = flooded[inside]
    return labels


def object_means(values: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The mean value over each labelled object, indexed by id (0 for ids with no pixels)."""
    flat = labels.ravel()
    counts = np.bincount(flat)
    return np.bincount(flat, weights=values.ravel().astype(np.float64), minlength=len(counts)) / np.maximum(counts, 1)


def drop_dim_objects(labels: np.ndarray, brightness: np.ndarray, min_brightness: float) -> np.ndarray:
    """``labels`` without the objects whose mean ``brightness`` is below ``min_brightness`` (ids kept)."""
    if not labels.any():
        return labels
    return np.where(object_means(brightness, labels)[labels] >= min_brightness, labels, 0)


def object_peaks(values: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The highest value in each labelled object, indexed by id (``ndimage.maximum`` sorts: 0.47 s on 2048², this 0.02 s)."""
    peaks = np.full(int(labels.max()) + 1, -np.inf, values.dtype)
    np.maximum.at(peaks, labels.ravel(), values.ravel())
    return peaks


def _point_markers(points: np.ndarray, foreground: np.ndarray) -> tuple[np.ndarray, int]:
    """One marker pixel per point that falls on the foreground; two points on one pixel make one marker."""
    rows, cols = (np.clip(np.rint(np.asarray(points, np.float64).reshape(-1, 2)[:, i]), 0, n - 1).astype(np.int64)
                  for i, n in enumerate(foreground.shape))
    markers = np.zeros(foreground.shape, np.int64)
    on = foreground[rows, cols]
    markers[rows[on], cols[on]] = np.arange(1, int(on.sum()) + 1)
    return markers, int(markers.max(initial=0))


def relabel_by_size(labels: np.ndarray, min_size: int) -> np.ndarray:
    """Drop objects smaller than ``min_size`` px and number the rest 1..N in the smallest dtype."""
    counts = np.bincount(labels.ravel())
    keep = counts >= max(min_size, 1)
    keep[0] = False
    mapping = np.zeros(len(counts), np.int64)
    mapping[keep] = np.arange(1, keep.sum() + 1)
    n = int(keep.sum())
    dtype = np.uint16 if n < 2**16 else np.uint32
    return mapping[labels].astype(dtype)


def logits_to_labels(
    logits: np.ndarray, task: str, settings: dict[str, Any] | None = None, scale: float = 1.0,
    seeds_at: np.ndarray | None = None, brightness: np.ndarray | None = None,
) -> np.ndarray:
    """Dispatch on the model's task with its stored post-processing settings.

    ``scale`` is how much the image was resized for the network (see
    ``pipeline.predict_network``, whose ``prediction.labels(model)`` calls this). The minimum object size is meant at the
    network's scale, so images of small nuclei, magnified to look typical,
    keep their small nuclei, and images of large ones drop larger specks.
    ``seeds_at``: instance seeds found elsewhere; ``brightness``: the normalised
    image at the logits' size, needed when the settings drop dim objects (see
    :func:`instance_labels`).
    """
    settings = dict(settings or {})
    if task == "instances":
        allowed = {k: settings[k] for k in DEFAULTS if k in settings}
        min_size = allowed.get("min_size", DEFAULTS["min_size"])
        allowed["min_size"] = max(1, round(min_size / scale**2))
        return instance_labels(logits, **allowed, seeds_at=seeds_at, brightness=brightness)
    return semantic_labels(logits, float(settings.get("threshold", 0.5)))


def probability_maps(logits: np.ndarray, task: str) -> np.ndarray:
    """Foreground probability (H, W), or one map per non-background class (K-1, H, W)."""
    if task == "instances" or logits.shape[0] == 1:
        return sigmoid(logits[0]).astype(np.float32)
    shifted = np.exp(logits - logits.max(axis=0, keepdims=True))
    probs = (shifted / shifted.sum(axis=0, keepdims=True))[1:].astype(np.float32)
    return probs[0] if probs.shape[0] == 1 else probs
