"""Scoring a model on annotated pairs, counting annotated pixels only.

AP at IoU 0.5 and foreground Dice for instance models, mean IoU over classes
for semantic ones. Prediction covers only the annotation's bounding box plus
context, so scoring a held-out strip during training stays cheap.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from .metrics import average_precision, dice
from ..model.modelfile import Model
from ..inference.postprocess import logits_to_labels
from .targets import IGNORE, semantic_targets
from ..inference.tiling import predict_tiled

if TYPE_CHECKING:
    from .loop import PreparedPair, TrainingPair


def predict_annotated(
    model: Model, item: PreparedPair, *, device: str = "auto", precision: str = "auto",
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Labels predicted around a pair's annotation, with the truth and valid mask of that box."""
    ys, xs = item.box()
    logits = predict_tiled(model.net, item.image[:, ys, xs], device=device, precision=precision)
    pred = logits_to_labels(logits, model.task, model.postprocess)
    return pred, item.labels[ys, xs], None if item.valid is None else item.valid[ys, xs]


def score_prepared(
    model: Model, items: Sequence[PreparedPair], *, device: str, precision: str, scribbles: bool,
) -> dict[str, float]:
    """Scores of the current weights on prepared pairs, predicting only around their annotation."""
    aps, dices, ious = [], [], []
    for item in items:
        pred, truth, valid = predict_annotated(model, item, device=device, precision=precision)
        if model.task == "instances":
            if valid is not None:
                pred, truth = np.where(valid, pred, 0), np.where(valid, truth, 0)
            aps.append(average_precision(truth, pred))
            dices.append(dice(truth, pred))
        else:
            target = semantic_targets(truth, valid, scribbles=scribbles)
            ious.append(mean_iou(target, pred, len(model.class_names)))
    if model.task == "instances":
        return {"ap50": float(np.mean(aps)), "dice": float(np.mean(dices))}
    ious = [v for v in ious if not math.isnan(v)]
    return {"mean_iou": float(np.mean(ious)) if ious else float("nan")}


def evaluate_pairs(
    model: Model, pairs: Sequence[TrainingPair], *, device: str = "auto", precision: str = "auto",
    scribbles: bool = False,
) -> dict[str, float]:
    """Mean AP@0.5 and Dice (instances) or mean IoU over classes (semantic) on annotated pairs.

    Only annotated pixels count: a ``valid`` mask limits both truth and prediction.
    """
    from .loop import PreparedPair

    items = [PreparedPair(p, model) for p in pairs]
    return score_prepared(model, items, device=device, precision=precision, scribbles=scribbles)


def main_score(scores: dict[str, float]) -> float:
    """The one number the best checkpoint is chosen by."""
    return scores.get("ap50", scores.get("mean_iou", float("nan")))


def mean_iou(target: np.ndarray, prediction: np.ndarray, num_classes: int) -> float:
    """Mean IoU over classes present in the annotated pixels (target IGNORE excluded)."""
    annotated = target != IGNORE
    values = []
    for c in range(num_classes):
        t = (target == c) & annotated
        p = (prediction == c) & annotated
        if t.sum() == 0:
            continue
        values.append((t & p).sum() / (t | p).sum())
    return float(np.mean(values)) if values else float("nan")
