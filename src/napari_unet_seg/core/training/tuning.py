"""Fitting post-processing to the user's own annotation: a small search over the instance settings.

The built-in settings were tuned on dsb2018; big, clumped or dim nuclei may
separate better with other settings. After fine-tuning, the network runs
once over the annotation (at Segment's scale) and settings are scored on the
same logits, in seconds. First a minimum object brightness, on all of the
annotation: people often leave dim, out-of-focus nuclei out (s-bsst265's
tissue sections: the built-in model's unannotated objects have a median
normalised brightness of 0.19, the annotated nuclei's faintest 5 % 0.25), and
what they left out does not depend on whether the network learnt those
pixels. When the fine-tune kept the parent's weights (the network learnt
nothing there), the foreground threshold too, on all of it: how tightly
people draw outlines is their convention, like the dim nuclei (tissue
sections: AP50 0.749 -> 0.779 on the domain's other images, simulated). Then
foreground threshold x seed prominence, on the held-out strip only: trained
weights' logits are surest where they trained, and seeds fitted on
the whole of one stained image split the domain's other images (AP50 0.465
-> 0.387 there). Each step adopts a setting only when it beats the one before
by a clear margin, and only on enough objects: a search on a strip of ten
nuclei fitted them and made other images worse (dsb2018 stained, AP50 0.444
-> 0.401 on the domain's other images).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from itertools import product

import numpy as np

from ..inference.options import RunOptions
from ..inference.postprocess import DEFAULTS
from ..inference.prediction import empty_side, predict_at_scale
from ..model.modelfile import Model
from .data import PreparedPair, TrainingPair
from .metrics import matching_accuracy

FOREGROUND_THRESHOLDS = (0.4, 0.5, 0.6, 0.7, 0.8)
SEED_PROMINENCES = (0.05, 0.1, 0.15, 0.2, 0.3)
MIN_BRIGHTNESS = (0.0, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4)  # normalised image (0: the 1st percentile, 1: the 99.8th)
MARGIN = 0.01  # AP50 a candidate must gain over the current settings to be adopted
MIN_OBJECTS = 40  # annotated objects a search needs to say more than chance (a strip of ~10 nuclei does not)
FIT_PIXELS = 2048 * 1024  # annotated pixels (at the network's scale) the brightness search reads at most: seconds


@dataclass(frozen=True)
class FitStep:
    """One adopted change: the settings it changed and its AP50 before and after, on the part it was fitted on.

    ``on`` is "all" (the whole annotation) or "held-out" (the part training
    did not see). Each step is scored where it was chosen, so its AP50 only
    rises; the whole annotation's score after a held-out step may not.
    """

    changed: dict[str, float]
    on: str
    before: float
    after: float


@dataclass(frozen=True)
class Tuning:
    """The outcome of the search: the settings to keep, the annotation's AP50 before and after, and each step."""

    settings: dict[str, float]
    before: float
    after: float
    changed: bool = False
    steps: tuple[FitStep, ...] = ()


class _Scoring:
    """The network's predictions over annotated items, made once, scored under any settings."""

    def __init__(self, model: Model, items: Sequence[PreparedPair], options: RunOptions) -> None:
        self.model, self.items = model, list(items)
        self.boxes = [item.box() for item in self.items]
        self.predictions = [predict_at_scale(model.net, item.image[:, ys, xs], item.scale, options,
                                             empty_side=empty_side(model, item.scale))
                            for item, (ys, xs) in zip(self.items, self.boxes)]

    def __call__(self, settings: dict[str, float]) -> float:
        """Mean AP50 of the labels these settings give, inside each item's annotated region."""
        candidate = replace(self.model, metadata={**self.model.metadata, "postprocess": settings})
        scores = []
        for prediction, item, (ys, xs) in zip(self.predictions, self.items, self.boxes):
            predicted, truth = prediction.labels(candidate), item.labels[ys, xs]
            if item.valid is not None:
                valid = item.valid[ys, xs]
                predicted, truth = np.where(valid, predicted, 0), np.where(valid, truth, 0)
            scores.append(matching_accuracy(truth, predicted))
        return float(np.mean(scores))


def annotated_objects(items: Sequence[PreparedPair]) -> int:
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


def tune_postprocess(model: Model, held: Sequence[PreparedPair], *, annotation: Sequence[PreparedPair] | None = None,
                     parent_weights: bool = False, device: str = "auto", precision: str = "auto") -> Tuning | None:
    """The minimum brightness on ``annotation`` (default: ``held``), then the seed settings on ``held``.

    ``held`` is the held-out annotation; ``annotation`` all of it.
    ``parent_weights``: the model's weights never trained on the annotation,
    so the foreground threshold is fitted on all of it as well. Before and
    after are the AP50 on ``annotation``. None for class models, or when
    neither holds enough objects to search on.
    """
    same = annotation is None
    annotation = list(held) if same else list(annotation)
    fit_dim = bool(annotation) and annotated_objects(annotation) >= MIN_OBJECTS
    fit_seeds = bool(held) and annotated_objects(held) >= MIN_OBJECTS
    if model.task != "instances" or not (fit_dim or fit_seeds):
        return None
    options = RunOptions(device=device, precision=precision)
    on_annotation = _Scoring(model, annotation, options)
    current = dict(model.postprocess)
    before = on_annotation(current)
    best, steps = current, []

    def fit(score: _Scoring, candidates: list[dict[str, float]], on: str, known: float | None = None) -> None:
        nonlocal best
        start = score(best) if known is None else known
        chosen, value = _clearly_better(score, candidates, best, start)
        if chosen is not best:
            steps.append(FitStep({k: v for k, v in chosen.items() if best.get(k) != v}, on, start, value))
            best = chosen

    if fit_dim:
        fit(on_annotation, [{**best, "min_brightness": cut} for cut in MIN_BRIGHTNESS
                            if cut != best.get("min_brightness", DEFAULTS["min_brightness"])], "all", before)
    if fit_dim and parent_weights:
        fit(on_annotation, [{**best, "foreground_threshold": threshold} for threshold in FOREGROUND_THRESHOLDS
                            if threshold != best.get("foreground_threshold", DEFAULTS["foreground_threshold"])], "all")
    if fit_seeds:
        seeds = [{**best, "foreground_threshold": threshold, "seed_prominence": prominence}
                 for threshold, prominence in product(FOREGROUND_THRESHOLDS, SEED_PROMINENCES)]
        fit(on_annotation if same else _Scoring(model, held, options), seeds, "all" if same else "held-out")
    changed = best != current
    return Tuning(best, before, on_annotation(best) if changed else before, changed=changed, steps=tuple(steps))


def _clearly_better(score: _Scoring, candidates: Sequence[dict[str, float]], keep: dict[str, float],
                    keep_score: float) -> tuple[dict[str, float], float]:
    """The best-scoring candidate and its score, if it beats ``keep`` (scoring ``keep_score``) by :data:`MARGIN`."""
    best, best_score = keep, keep_score
    for settings in candidates:
        value = score(settings)
        if value > best_score + (MARGIN if best is keep else 0.0):
            best, best_score = settings, value
    return best, best_score
