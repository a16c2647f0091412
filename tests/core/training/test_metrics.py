"""Scores: matching accuracy TP/(TP+FP+FN) at an IoU threshold, foreground Dice, mean IoU over annotated pixels."""

from __future__ import annotations

import numpy as np
import pytest

from napari_unet_seg.core.training.metrics import dice, matching_accuracy


def test_metrics():
    a = np.zeros((10, 10), int)
    a[:5, :5] = 1
    a[6:, 6:] = 2
    assert matching_accuracy(a, a) == 1.0 and dice(a, a) == 1.0
    b = np.zeros_like(a)
    b[:5, :5] = 7
    assert matching_accuracy(a, b) == 0.5
    assert matching_accuracy(np.zeros_like(a), np.zeros_like(a)) == 1.0


def _four_nuclei():
    """Truth: four 10x10 nuclei A, B, C, D (ids 1..4) on a 50x50 background."""
    truth = np.zeros((50, 50), np.uint16)
    truth[0:10, 0:10] = 1  # A
    truth[0:10, 20:30] = 2  # B
    truth[20:30, 0:10] = 3  # C
    truth[20:30, 20:30] = 4  # D
    return truth


def _split_and_merge():
    """A found (shifted 1 px), B split in three, C and D merged through a bridge, one false object E."""
    pred = np.zeros((50, 50), np.uint16)
    pred[1:11, 0:10] = 7  # A: IoU 90/110
    pred[0:10, 20:24] = 3  # B in three pieces: IoU 0.4, 0.3, 0.3
    pred[0:10, 24:27] = 9
    pred[0:10, 27:30] = 12
    pred[20:30, 0:30] = 5  # C + bridge + D: IoU 1/3 with each
    pred[40:45, 40:45] = 8  # E: nothing there
    return pred


def test_matching_accuracy_counts_true_and_false_objects_by_hand():
    truth, pred = _four_nuclei(), _split_and_merge()
    # TP = {A}; FP = three pieces of B, the merged C+D, E; FN = B, C, D
    assert matching_accuracy(truth, pred) == pytest.approx(1 / (1 + 5 + 3))
    assert matching_accuracy(pred, truth) == pytest.approx(1 / 9)  # symmetric at IoU >= 0.5
    assert matching_accuracy(truth, pred, threshold=0.85) == 0.0  # the shifted A (IoU 0.82) no longer counts
    # below 0.5 matches are one to one: B's largest piece (0.4) and C (0.33) match; D cannot take the merged object
    assert matching_accuracy(truth, pred, threshold=0.3) == pytest.approx(3 / (3 + 3 + 1))


def test_matching_accuracy_ignores_ids_and_handles_empty_images():
    truth = _four_nuclei()
    shuffled = np.choose(truth, [0, 40, 3, 17, 1000]).astype(np.int32)  # other ids, other dtype: the same objects
    assert matching_accuracy(truth, shuffled) == 1.0
    empty = np.zeros_like(truth)
    assert matching_accuracy(empty, empty) == 1.0
    assert matching_accuracy(truth, empty) == 0.0 and matching_accuracy(empty, truth) == 0.0
    missing_one = np.where(truth == 4, 0, truth)
    assert matching_accuracy(truth, missing_one) == pytest.approx(3 / 4)  # TP 3, FN 1


def test_ap50_90_rewards_outlines_that_fit_where_ap50_ties():
    from napari_unet_seg.core.training.metrics import mean_matching_accuracy

    truth, pred = _four_nuclei(), _split_and_merge()
    by_hand = np.mean([matching_accuracy(truth, pred, t) for t in (0.5, 0.6, 0.7, 0.8, 0.9)])
    assert mean_matching_accuracy(truth, pred) == pytest.approx(by_hand)
    assert mean_matching_accuracy(truth, truth) == 1.0
    assert mean_matching_accuracy(np.zeros_like(truth), np.zeros_like(truth)) == 1.0
    # two predictions that both match every nucleus at IoU 0.5 (AP50 1.0 each): the one whose outlines fit wins
    tight = np.where(np.isin(truth, [1]), 0, truth)
    tight[np.roll(truth == 1, 1, axis=1)] = 1  # A shifted by one pixel
    loose = np.where(np.isin(truth, [1]), 0, truth)
    loose[np.roll(truth == 1, 3, axis=1)] = 1  # A shifted by three
    assert matching_accuracy(truth, tight) == matching_accuracy(truth, loose) == 1.0
    assert mean_matching_accuracy(truth, tight) > mean_matching_accuracy(truth, loose)


def test_iou_matrix_excludes_background():
    from napari_unet_seg.core.training.metrics import iou_matrix

    iou = iou_matrix(_four_nuclei(), _split_and_merge())
    assert iou.shape == (4, 6)
    assert sorted(np.round(iou.max(axis=1), 3)) == [0.333, 0.333, 0.4, 0.818]
    full = np.ones((4, 4), int)  # no background at all: every id is an object
    assert iou_matrix(full, full * 5).tolist() == [[1.0]]


def test_dice_is_about_foreground_only():
    truth = _four_nuclei()  # 400 px of foreground
    assert dice(truth, (truth > 0) * 9) == 1.0  # ids do not matter
    half = truth.copy()
    half[:, 25:] = 0  # half of B and of D gone: 300 px kept, all of them true foreground
    assert dice(truth, half) == pytest.approx(2 * 300 / (400 + 300))
    assert dice(truth, _split_and_merge()) == pytest.approx(2 * 390 / (400 + 100 + 100 + 300 + 25))
    assert dice(np.zeros((5, 5)), np.zeros((5, 5))) == 1.0
    assert dice(truth, np.zeros_like(truth)) == 0.0


def test_mean_iou_ignores_unannotated_pixels():
    from napari_unet_seg.core.training.metrics import mean_iou
    from napari_unet_seg.core.training.targets import IGNORE

    target = np.zeros((10, 10), np.int64)
    target[:, 5:] = 1
    target[8:, :] = 2
    target[:3, :3] = IGNORE  # not annotated
    prediction = np.where(target == IGNORE, 0, target)
    assert mean_iou(target, prediction, 3) == 1.0
    wrong_where_unannotated = prediction.copy()
    wrong_where_unannotated[:3, :3] = 2
    assert mean_iou(target, wrong_where_unannotated, 3) == 1.0  # counts nothing outside the annotation
    one_wrong = prediction.copy()
    one_wrong[5, 0] = 1  # a class-0 pixel called class 1
    n0, n1 = int((target == 0).sum()), int((target == 1).sum())
    expected = np.mean([(n0 - 1) / n0, n1 / (n1 + 1), 1.0])
    assert mean_iou(target, one_wrong, 3) == pytest.approx(expected)
    assert mean_iou(target, prediction, 5) == 1.0  # classes absent from the annotation are not averaged
    assert np.isnan(mean_iou(np.full((4, 4), IGNORE), np.zeros((4, 4), np.int64), 3))


def test_average_precision_is_a_deprecated_alias():
    from napari_unet_seg.core.training.metrics import average_precision

    truth, pred = _four_nuclei(), _split_and_merge()
    for threshold in (0.3, 0.5, 0.85):
        with pytest.warns(DeprecationWarning, match="matching_accuracy"):
            value = average_precision(truth, pred, threshold)
        assert value == matching_accuracy(truth, pred, threshold)
