"""Fitting post-processing to the user's own annotation: a small search over the instance settings.

The built-in settings were tuned on dsb2018; big, clumped or dim nuclei may
separate better with other thresholds. After fine-tuning, the network runs
once per held-out pair (at Segment's scale) and a small grid of foreground
thresholds and seed prominences is scored on the same logits, in seconds;
then, on the winner, a minimum object brightness: people often leave dim,
out-of-focus nuclei out of an annotation (s-bsst265's tissue sections: the
built-in model's unannotated objects have a median normalised brightness of
0.19, the annotated nuclei's faintest 5 % 0.25), and the network finds them.
Each step adopts a setting only when it beats the one before by a clear
margin, and only when the held-out annotation holds enough objects: a search
on a strip of ten nuclei fitted them and made other images worse (dsb2018
stained, AP50 0.444 -> 0.401 on the domain's other images). The search runs
on the held-out strip only: on the whole of one stained image it chose seeds
that split the domain's other images (AP50 0.465 -> 0.387 there).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from itertools import product

import numpy as np

from ..inference.options import RunOptions
from ..inference.postprocess import DEFAULTS
from ..inference.prediction import NetworkPrediction, empty_side, predict_at_scale
from ..model.modelfile import Model
from .data import PreparedPair
from .metrics import matching_accuracy

FOREGROUND_THRESHOLDS = (0.4, 0.5, 0.6, 0.7)
SEED_PROMINENCES = (0.05, 0.1, 0.15, 0.2, 0.3)
MIN_BRIGHTNESS = (0.0, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4)  # normalised image (0: the 1st percentile, 1: the 99.8th)
MARGIN = 0.01  # AP50 a candidate must gain over the current settings to be adopted
MIN_OBJECTS = 40  # held-out objects needed for the search to say more than chance (a strip of ~10 nuclei does not)


@dataclass(frozen=True)
class Tuning:
    """The outcome of the search: the settings to keep and the held-out AP50 before and after."""

    settings: dict[str, float]
    before: float
    after: float

    @property
    def changed(self) -> bool:
        return self.after > self.before


def _score(model: Model, settings: dict[str, float], predictions: Sequence[tuple[NetworkPrediction, PreparedPair]],
           boxes: Sequence[tuple[slice, slice]]) -> float:
    candidate = replace(model, metadata={**model.metadata, "postprocess": settings})
    scores = []
    for (prediction, item), (ys, xs) in zip(predictions, boxes):
        predicted, truth = prediction.labels(candidate), item.labels[ys, xs]
        if item.valid is not None:
            valid = item.valid[ys, xs]
            predicted, truth = np.where(valid, predicted, 0), np.where(valid, truth, 0)
        scores.append(matching_accuracy(truth, predicted))
    return float(np.mean(scores))


def held_out_objects(items: Sequence[PreparedPair]) -> int:
    """Annotated objects in the items (inside their regions)."""
    total = 0
    for item in items:
        labels = item.labels if item.valid is None else np.where(item.valid, item.labels, 0)
        total += len(np.unique(labels)) - (1 if (labels == 0).any() else 0)
    return total


def tune_postprocess(model: Model, items: Sequence[PreparedPair], *, device: str = "auto",
                     precision: str = "auto") -> Tuning | None:
    """Search foreground threshold x seed prominence, then the minimum brightness, on ``items``.

    None for class models or too few held-out objects.
    """
    if model.task != "instances" or not items or held_out_objects(items) < MIN_OBJECTS:
        return None
    options = RunOptions(device=device, precision=precision)
    boxes = [item.box() for item in items]
    predictions = [(predict_at_scale(model.net, item.image[:, ys, xs], item.scale, options,
                                     empty_side=empty_side(model, item.scale)), item)
                   for item, (ys, xs) in zip(items, boxes)]
    current = dict(model.postprocess)
    before = _score(model, current, predictions, boxes)
    seeds = [{**current, "foreground_threshold": threshold, "seed_prominence": prominence}
             for threshold, prominence in product(FOREGROUND_THRESHOLDS, SEED_PROMINENCES)]
    best, best_score = _clearly_better(model, seeds, current, before, predictions, boxes)
    dim = [{**best, "min_brightness": cut} for cut in MIN_BRIGHTNESS
           if cut != best.get("min_brightness", DEFAULTS["min_brightness"])]
    best, best_score = _clearly_better(model, dim, best, best_score, predictions, boxes)
    return Tuning(best, before, best_score if best != current else before)


def _clearly_better(model: Model, candidates: Sequence[dict[str, float]], keep: dict[str, float], keep_score: float,
                    predictions: Sequence[tuple[NetworkPrediction, PreparedPair]],
                    boxes: Sequence[tuple[slice, slice]]) -> tuple[dict[str, float], float]:
    """The best-scoring candidate if it beats ``keep`` by :data:`MARGIN`, else ``keep``; with its score."""
    best, best_score = keep, keep_score
    for settings in candidates:
        score = _score(model, settings, predictions, boxes)
        if score > best_score + (MARGIN if best is keep else 0.0):
            best, best_score = settings, score
    return best, best_score
