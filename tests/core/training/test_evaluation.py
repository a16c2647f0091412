"""Scoring a model on annotated pairs: only annotated pixels count; one number picks the best checkpoint."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from helpers import randomize_batchnorm, synthetic_nuclei, threshold_model
from napari_unet_seg.core.model.modelfile import new_model
from napari_unet_seg.core.training.data import TrainingPair
from napari_unet_seg.core.training.evaluation import evaluate_pairs, main_score


@pytest.fixture(scope="module")
def nuclei():
    image, truth = synthetic_nuclei((96, 128), n=14, seed=1)
    valid = np.zeros(truth.shape, bool)
    valid[:, :60] = True  # only the left part was annotated
    return image, truth, valid


def test_instance_scores_ignore_what_lies_outside_the_annotation(nuclei):
    image, truth, valid = nuclei
    model = threshold_model()
    clean = evaluate_pairs(model, [TrainingPair(image, truth, valid)], device="cpu", precision="fp32")
    assert set(clean) == {"ap50_90", "ap50", "dice", "wrong_objects"} and clean["ap50"] > 0.8
    assert 0 < clean["ap50_90"] <= clean["ap50"]  # stricter thresholds match fewer
    unpainted = np.where(valid, truth, 0)  # nuclei outside the region simply not painted
    scribbled = truth.copy()
    scribbled[~valid] = np.random.default_rng(0).integers(0, 50, int((~valid).sum()))  # or garbage there
    for labels in (unpainted, scribbled):
        scores = evaluate_pairs(model, [TrainingPair(image, labels, valid)], device="cpu", precision="fp32")
        assert scores == clean
        # the same labels without the region would count every pixel: the test above can fail
        whole = evaluate_pairs(model, [TrainingPair(image, labels)], device="cpu", precision="fp32")
        assert whole["ap50"] < clean["ap50"] - 0.1


def test_semantic_scores_ignore_what_lies_outside_the_annotation(nuclei):
    image, truth, valid = nuclei
    torch.manual_seed(0)
    model = new_model("semantic", num_classes=3, depth=2, base_channels=4)
    randomize_batchnorm(model.net)
    model.net.eval()
    classes = np.where(truth > 0, 1 + truth % 2, 0).astype(np.uint8)
    garbage = classes.copy()
    garbage[~valid] = np.random.default_rng(1).integers(0, 3, int((~valid).sum()))
    clean = evaluate_pairs(model, [TrainingPair(image, classes, valid)], device="cpu", precision="fp32")
    assert set(clean) == {"mean_iou"} and 0 <= clean["mean_iou"] <= 1
    assert evaluate_pairs(model, [TrainingPair(image, garbage, valid)], device="cpu", precision="fp32") == clean
    whole = evaluate_pairs(model, [TrainingPair(image, garbage)], device="cpu", precision="fp32")
    assert whole["mean_iou"] != pytest.approx(clean["mean_iou"], abs=1e-3)


def test_scribble_scores_count_only_scribbled_pixels(nuclei):
    image, truth, _ = nuclei
    torch.manual_seed(0)
    model = new_model("semantic", num_classes=3, depth=2, base_channels=4)
    model.net.eval()
    classes = np.where(truth > 0, 1 + truth % 2, 0)
    scribbles = np.zeros_like(classes)
    scribbles[::5] = classes[::5] + 1  # lines every 5 rows: 1 = background, 2 and 3 = classes
    sparse = evaluate_pairs(model, [TrainingPair(image, scribbles)], scribbles=True, device="cpu", precision="fp32")
    # the same as dense classes annotated only where scribbled
    region = evaluate_pairs(model, [TrainingPair(image, classes, scribbles > 0)], device="cpu", precision="fp32")
    assert sparse == region
    dense = evaluate_pairs(model, [TrainingPair(image, classes)], device="cpu", precision="fp32")
    assert dense["mean_iou"] != pytest.approx(sparse["mean_iou"], abs=1e-4)


def test_scores_are_averaged_over_pairs(nuclei):
    image, truth, valid = nuclei
    model = threshold_model()
    good = TrainingPair(image, truth, valid)
    nothing_found = TrainingPair(np.zeros_like(image), truth, valid)  # a blank image: no object found
    one = evaluate_pairs(model, [good], device="cpu", precision="fp32")
    none = evaluate_pairs(model, [nothing_found], device="cpu", precision="fp32")
    assert none == {"ap50_90": 0.0, "ap50": 0.0, "dice": 0.0, "wrong_objects": float(len(np.unique(truth[valid])) - 1)}
    both = evaluate_pairs(model, [good, nothing_found], device="cpu", precision="fp32")
    assert both["ap50"] == pytest.approx(one["ap50"] / 2) and both["dice"] == pytest.approx(one["dice"] / 2)


def test_main_score_is_ap50_for_instances_and_mean_iou_for_classes():
    assert main_score({"ap50": 0.3, "dice": 0.9}) == 0.3
    assert main_score({"mean_iou": 0.4}) == 0.4
    assert main_score({"ap50": 0.0, "mean_iou": 0.9}) == 0.0
    assert math.isnan(main_score({"dice": 1.0}))
    assert math.isnan(main_score({}))


def test_earlier_rounds_corrections_are_scored_apart(nuclei):
    from napari_unet_seg.core.training.data import PreparedPair
    from napari_unet_seg.core.training.evaluation import replay_scores, score_groups

    image, truth, valid = nuclei
    model = threshold_model()
    good = TrainingPair(image, truth, valid)
    blank = TrainingPair(np.zeros_like(image), truth, valid, replay=True)  # an earlier round's, found nothing
    items = [PreparedPair(good, model), PreparedPair(blank, model)]
    scores = score_groups(model, items, device="cpu", precision="fp32", scribbles=False)
    one = evaluate_pairs(model, [good], device="cpu", precision="fp32")
    assert scores["ap50"] == pytest.approx(one["ap50"]) and scores["ap50_earlier"] == 0.0
    missed = float(len(np.unique(truth[valid])) - 1)
    assert replay_scores(scores) == {"ap50_90": 0.0, "ap50": 0.0, "dice": 0.0, "wrong_objects": missed}
    only_earlier = score_groups(model, items[1:], device="cpu", precision="fp32", scribbles=False)
    assert only_earlier == {"ap50_90": 0.0, "ap50": 0.0, "dice": 0.0, "wrong_objects": missed}  # with nothing newer held out, they are the judge
