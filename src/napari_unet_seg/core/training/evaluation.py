"""Scoring a model on annotated pairs, counting annotated pixels only (held-out scores during training).

AP at IoU 0.5, AP averaged over IoU 0.5-0.9 ("AP50-90", the judge of
fine-tuning) and foreground Dice for instance models, mean IoU over classes
for semantic ones. The labels scored are the pipeline's own result at the
image's size -- resized to the network's scale, the network, post-processing
-- so the best checkpoint is chosen by what Segment will give the user.
Prediction covers only the annotation's bounding box plus context, so
scoring a held-out strip during training stays cheap.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ..inference.options import RunOptions
from ..inference.prediction import empty_side, predict_at_scale
from ..model.modelfile import Model
from .data import PreparedPair, TrainingPair
from .metrics import STRICT_THRESHOLDS, dice, matching_accuracies, mean_iou, wrong_objects
from .targets import semantic_targets


def labels_around_annotation(
    model: Model, item: PreparedPair, *, device: str = "auto", precision: str = "auto",
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Segment's labels around a pair's annotation, with the truth and valid mask of that box.

    The box is resized by the pair's scale exactly as the pipeline resizes the
    image, and its labels come back at the image's own size.
    """
    ys, xs = item.box()
    options = RunOptions(device=device, precision=precision)
    pred = predict_at_scale(model.net, item.image[:, ys, xs], item.scale, options,
                            empty_side=empty_side(model, item.scale)).labels(model)
    return pred, item.labels[ys, xs], None if item.valid is None else item.valid[ys, xs]


REPLAY_SUFFIX = "_earlier"


def score_groups(
    model: Model, items: Sequence[PreparedPair], *, device: str, precision: str, scribbles: bool,
) -> dict[str, float]:
    """Scores on the latest corrections (``ap50``...) and, apart, on earlier rounds' (``ap50_earlier``...).

    Earlier rounds' corrections (``pair.replay``) check that a new round does
    not forget what the last ones taught; with no latest correction held
    out, they are the only judge and score under the plain names.
    """
    latest = [item for item in items if not item.pair.replay]
    earlier = [item for item in items if item.pair.replay]
    if not latest or not earlier:
        return score_prepared(model, items, device=device, precision=precision, scribbles=scribbles)
    scores = score_prepared(model, latest, device=device, precision=precision, scribbles=scribbles)
    replayed = score_prepared(model, earlier, device=device, precision=precision, scribbles=scribbles)
    return {**scores, **{k + REPLAY_SUFFIX: v for k, v in replayed.items()}}


def replay_scores(scores: dict[str, float]) -> dict[str, float]:
    """The earlier rounds' part of :func:`score_groups`' scores, under the plain names."""
    return {k[: -len(REPLAY_SUFFIX)]: v for k, v in scores.items() if k.endswith(REPLAY_SUFFIX)}


def score_prepared(
    model: Model, items: Sequence[PreparedPair], *, device: str, precision: str, scribbles: bool,
) -> dict[str, float]:
    """Scores of the current weights on prepared pairs, predicting only around their annotation."""
    aps, strict, dices, ious = [], [], [], []
    wrong = 0
    for item in items:
        pred, truth, valid = labels_around_annotation(model, item, device=device, precision=precision)
        if model.task == "instances":
            if valid is not None:
                pred, truth = np.where(valid, pred, 0), np.where(valid, truth, 0)
            accuracies = matching_accuracies(truth, pred, STRICT_THRESHOLDS)  # from IoU 0.5 up
            aps.append(accuracies[0])
            strict.append(float(np.mean(accuracies)))
            dices.append(dice(truth, pred))
            wrong += wrong_objects(truth, pred)[1]
        else:
            target = semantic_targets(truth, valid, scribbles=scribbles)
            ious.append(mean_iou(target, pred, len(model.class_names)))
    if model.task == "instances":
        return {"ap50_90": float(np.mean(strict)), "ap50": float(np.mean(aps)), "dice": float(np.mean(dices)),
                "wrong_objects": float(wrong)}
    ious = [v for v in ious if not math.isnan(v)]
    return {"mean_iou": float(np.mean(ious)) if ious else float("nan")}


def evaluate_pairs(
    model: Model, pairs: Sequence[TrainingPair], *, device: str = "auto", precision: str = "auto",
    scribbles: bool = False,
) -> dict[str, float]:
    """Mean AP@0.5 and Dice (instances) or mean IoU over classes (semantic) on annotated pairs.

    Only annotated pixels count: a ``valid`` mask limits both truth and prediction.
    """
    items = [PreparedPair(p, model) for p in pairs]
    return score_prepared(model, items, device=device, precision=precision, scribbles=scribbles)


SCORE_NAMES = {"ap50_90": "AP50-90", "ap50": "AP50", "dice": "Dice", "mean_iou": "mean IoU"}
JUDGES = ("ap50_90", "ap50")  # held-out scores that may pick an instance model's weights (TrainConfig.judge)


def _main_key(scores: dict[str, float], judge: str) -> str | None:
    return next((k for k in (judge, "ap50", "mean_iou") if k in scores), None)


def main_score(scores: dict[str, float], judge: str = "ap50_90") -> float:
    """The one number the best checkpoint is chosen by: ``judge`` for instance models, mean IoU for class models.

    AP50-90 by default, not AP50: on a held-out strip of a few dozen objects
    AP50 ties between models that differ (outlines that fit better), and a
    tie keeps the parent. On the fine-tuning matrix, every scored checkpoint
    of one run also scored on the domain's other images, AP50-90 picked
    weights that gained +0.041 AP50 there on average against AP50's +0.027,
    with one cell of twenty worse instead of two
    (``benchmarks/bench_finetune_judges.py``). Scores without ``judge``
    (semantic models; hand-made dicts) fall back to AP50, then mean IoU.
    """
    key = _main_key(scores, judge)
    return float("nan") if key is None else scores[key]


def main_score_name(scores: dict[str, float], judge: str = "ap50_90") -> str:
    """What :func:`main_score` is, for people: "AP50-90", "AP50" or "mean IoU"."""
    key = _main_key(scores, judge)
    return "score" if key is None else SCORE_NAMES[key]


def replay_check_score(scores: dict[str, float]) -> float:
    """The score earlier rounds' corrections must not lose: AP50 (instances) or mean IoU.

    Coarser than the judge on purpose: a new round may refine old outlines,
    but must still find the old objects.
    """
    return main_score(scores, judge="ap50")
