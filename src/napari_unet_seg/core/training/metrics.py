"""Segmentation scores: object matching accuracy at an IoU threshold (the DSB "AP"), foreground Dice, mean IoU.

Everywhere in the product, "AP50" means :func:`matching_accuracy` at IoU 0.5:
TP / (TP + FP + FN), as the 2018 Data Science Bowl scored it; "AP50-90" is
its mean over IoU 0.5, 0.6, ... 0.9 (:func:`mean_matching_accuracy`).
"""

from __future__ import annotations

import warnings

import numpy as np

from .targets import IGNORE


def iou_matrix(truth: np.ndarray, prediction: np.ndarray) -> np.ndarray:
    """IoU between every true object (rows) and predicted object (columns), background excluded."""
    if np.shape(truth) != np.shape(prediction):
        raise ValueError(f"the ground truth has shape {np.shape(truth)} but the prediction {np.shape(prediction)}: "
                         "they must match pixel for pixel")
    t = np.unique(truth, return_inverse=True)[1].reshape(truth.shape)
    p = np.unique(prediction, return_inverse=True)[1].reshape(prediction.shape)
    nt, np_ = int(t.max()) + 1, int(p.max()) + 1
    overlap = np.bincount(t.ravel() * np_ + p.ravel(), minlength=nt * np_).reshape(nt, np_)
    area_t = overlap.sum(axis=1, keepdims=True)
    area_p = overlap.sum(axis=0, keepdims=True)
    union = area_t + area_p - overlap
    iou = overlap / np.maximum(union, 1)
    has_bg_t = truth.min() == 0
    has_bg_p = prediction.min() == 0
    return iou[int(has_bg_t):, int(has_bg_p):]


def matching_accuracy(truth: np.ndarray, prediction: np.ndarray, threshold: float = 0.5) -> float:
    """TP / (TP + FP + FN), objects matched one-to-one at IoU > ``threshold``.

    The 2018 Data Science Bowl called this "average precision" at one
    threshold; stardist calls it "accuracy". (It is not the area under a
    precision-recall curve.) For thresholds >= 0.5 a match is unique, so no
    assignment problem arises.
    """
    return _accuracy(iou_matrix(np.asarray(truth), np.asarray(prediction)), threshold)


STRICT_THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9)


def matching_accuracies(truth: np.ndarray, prediction: np.ndarray,
                        thresholds: tuple[float, ...] = STRICT_THRESHOLDS) -> list[float]:
    """:func:`matching_accuracy` at each threshold, from one IoU matrix."""
    iou = iou_matrix(np.asarray(truth), np.asarray(prediction))
    return [_accuracy(iou, t) for t in thresholds]


def mean_matching_accuracy(truth: np.ndarray, prediction: np.ndarray,
                           thresholds: tuple[float, ...] = STRICT_THRESHOLDS) -> float:
    """:func:`matching_accuracy` averaged over IoU 0.5, 0.6, ... 0.9: "AP50-90".

    It also rewards outlines that fit, so it tells models apart where AP50
    over a few dozen objects ties. (The DSB ranked by a finer mean, over 0.5
    to 0.95 in steps of 0.05; on small held-out strips the thresholds above
    0.9 mostly measure pixel noise of the annotation.)
    """
    return float(np.mean(matching_accuracies(truth, prediction, thresholds)))


def _accuracy(iou: np.ndarray, threshold: float) -> float:
    n_true, n_pred = iou.shape
    if n_true == 0 and n_pred == 0:
        return 1.0
    if threshold >= 0.5:
        tp = int((iou > threshold).sum())
    else:  # greedy one-to-one matching
        tp, used = 0, set()
        for i in range(n_true):
            order = np.argsort(-iou[i])
            for j in order:
                if iou[i, j] <= threshold:
                    break
                if j not in used:
                    used.add(j)
                    tp += 1
                    break
    return tp / (n_true + n_pred - tp)


def wrong_objects(truth: np.ndarray, prediction: np.ndarray, threshold: float = 0.5) -> tuple[np.ndarray, int]:
    """Pixels of the objects either side failed to match at IoU > ``threshold`` (missed, merged, split, invented).

    Returns the mask and how many objects (true and predicted) it holds.
    """
    truth, prediction = np.asarray(truth), np.asarray(prediction)
    iou = iou_matrix(truth, prediction)
    t_ids = np.unique(truth)
    p_ids = np.unique(prediction)
    t_ids, p_ids = t_ids[t_ids > 0], p_ids[p_ids > 0]
    missed = t_ids[~(iou > threshold).any(axis=1)] if iou.size else t_ids
    invented = p_ids[~(iou > threshold).any(axis=0)] if iou.size else p_ids
    mask = np.isin(truth, missed) & (truth > 0) | np.isin(prediction, invented) & (prediction > 0)
    return mask, len(missed) + len(invented)


def dice(truth: np.ndarray, prediction: np.ndarray) -> float:
    """Foreground Dice (objects vs background)."""
    t, p = np.asarray(truth) > 0, np.asarray(prediction) > 0
    denominator = t.sum() + p.sum()
    return 1.0 if denominator == 0 else float(2 * (t & p).sum() / denominator)


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


def average_precision(truth: np.ndarray, prediction: np.ndarray, threshold: float = 0.5) -> float:
    """Deprecated name of :func:`matching_accuracy` (which says what it computes)."""
    warnings.warn("average_precision is deprecated; use matching_accuracy (the same TP/(TP+FP+FN))",
                  DeprecationWarning, stacklevel=2)
    return matching_accuracy(truth, prediction, threshold)
