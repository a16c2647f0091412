"""Fitting post-processing to the user's own annotation: a small search over the instance settings.

The built-in settings were tuned on dsb2018; big, clumped or dim nuclei may
separate better with other thresholds. After fine-tuning, the network runs
once over the user's annotation (at Segment's scale) and the settings are
scored on the same logits, in seconds: first a minimum object brightness
(people often leave dim, out-of-focus nuclei out of an annotation: in
s-bsst265's tissue sections the built-in model's unannotated objects have a
median normalised brightness of 0.19, the annotated nuclei's faintest 5 %
0.25, and the network finds them all), then a small grid of foreground
thresholds and seed prominences. Each step adopts a setting only when it
beats the one before by a clear margin, and only when the annotation holds
enough objects: a search on a strip of ten nuclei fitted them and made other
images worse (dsb2018 stained, AP50 0.444 -> 0.401 on the domain's other
images). A handful of settings is fitted on all of the annotation, not only
the held-out strip that judges the weights: a strip of a corrected region
rarely holds enough objects.
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
from .data import PreparedPair, TrainingPair
from .metrics import matching_accuracy

FOREGROUND_THRESHOLDS = (0.4, 0.5, 0.6, 0.7)
SEED_PROMINENCES = (0.05, 0.1, 0.15, 0.2, 0.3)
MIN_BRIGHTNESS = (0.0, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4)  # normalised image (0: the 1st percentile, 1: the 99.8th)
MARGIN = 0.01  # AP50 a candidate must gain over the current settings to be adopted
MIN_OBJECTS = 40  # annotated objects needed for the search to say more than chance (a strip of ~10 nuclei does not)
FIT_PIXELS = 2048 * 1024  # annotated pixels (at the network's scale) the search runs on at most: it stays seconds


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


def annotation_to_fit(pairs: Sequence[TrainingPair], scales: Sequence[float],
                      budget: int = FIT_PIXELS) -> list[TrainingPair]:
    """The annotated pairs to fit on, whole: the latest corrections first, the largest first, up to ``budget``.

    ``scales`` are the pairs' resize factors for the network; each pair
    counts its annotated pixels at that scale. The first pair is always taken.
    """
    def area(i: int) -> float:
        valid = pairs[i].valid
        annotated = np.asarray(pairs[i].labels).size if valid is None else int(np.count_nonzero(valid))
        return annotated * scales[i] ** 2

    chosen, used = [], 0.0
    for i in sorted(range(len(pairs)), key=lambda i: (pairs[i].replay, -area(i))):
        if chosen and used + area(i) > budget:
            continue
        chosen.append(pairs[i])
        used += area(i)
    return chosen


def tune_postprocess(model: Model, items: Sequence[PreparedPair], *, device: str = "auto",
                     precision: str = "auto") -> Tuning | None:
    """Search the minimum brightness, then foreground threshold x seed prominence, on ``items``.

    None for class models or too few annotated objects.
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
    # what the annotation leaves out first (its cause), then how the rest is cut into objects
    dim = [{**current, "min_brightness": cut} for cut in MIN_BRIGHTNESS
           if cut != current.get("min_brightness", DEFAULTS["min_brightness"])]
    best, best_score = _clearly_better(model, dim, current, before, predictions, boxes)
    seeds = [{**best, "foreground_threshold": threshold, "seed_prominence": prominence}
             for threshold, prominence in product(FOREGROUND_THRESHOLDS, SEED_PROMINENCES)]
    best, best_score = _clearly_better(model, seeds, best, best_score, predictions, boxes)
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
