"""Training, its held-out score and Segment see the same pixels at the same scale."""

from __future__ import annotations

import numpy as np

from helpers import synthetic_nuclei, threshold_model
from napari_unet_seg.core.inference import prediction
from napari_unet_seg.core.inference.pipeline import segment
from napari_unet_seg.core.training.data import PreparedPair, TrainingPair, resize_labels
from napari_unet_seg.core.training.evaluation import labels_around_annotation
from napari_unet_seg.core.training.finetune import at_pipeline_scale, finetune
from napari_unet_seg.core.training.loop import TrainConfig


def big_nuclei():
    return synthetic_nuclei((120, 160), n=6, radius=(17, 21), seed=5)  # ~40 px across


def model_of_size(diameter: float):
    model = threshold_model()
    model.metadata["object_diameter"] = diameter
    return model


def test_training_crops_from_the_array_segment_feeds_the_network(monkeypatch):
    image, labels = big_nuclei()
    model = model_of_size(20.0)
    seen = []
    original = prediction.predict_tiled

    def recording(net, array, **kwargs):
        seen.append(np.array(np.asarray(array)))
        return original(net, array, **kwargs)

    monkeypatch.setattr(prediction, "predict_tiled", recording)
    segment(image, model, diameter=40.0)
    prepared = PreparedPair(TrainingPair(image, labels, diameter=40.0), model)
    assert prepared.scale == 0.5
    assert prepared.train_image.shape == seen[-1].shape == (1, 60, 80)
    np.testing.assert_array_equal(prepared.train_image, seen[-1])
    assert prepared.train_labels.shape == (60, 80)
    assert set(np.unique(prepared.train_labels)) == set(np.unique(labels))  # every nucleus is still there


def test_the_held_out_score_scores_segments_own_result():
    image, labels = big_nuclei()
    model = model_of_size(20.0)
    for diameter in (40.0, 8.0, None):  # shrunk, enlarged, the image's own scale
        prepared = PreparedPair(TrainingPair(image, labels, diameter=diameter), model)
        predicted, truth, valid = labels_around_annotation(model, prepared, device="cpu")
        np.testing.assert_array_equal(predicted, segment(image, model, diameter=diameter or 20.0, device="cpu"))
        np.testing.assert_array_equal(truth, labels)
        assert valid is None


def test_pairs_get_the_diameter_segment_would_use():
    image, labels = big_nuclei()
    model = model_of_size(20.0)
    given = at_pipeline_scale(model, [TrainingPair(image, labels)], diameter=40.0)
    assert given[0].diameter == 40.0
    unknown_size = threshold_model()  # no object size: never rescaled, by Segment or by training
    assert at_pipeline_scale(unknown_size, [TrainingPair(image, labels)])[0].diameter is None


def test_the_model_file_records_the_scale_it_was_trained_at():
    image, labels = big_nuclei()
    model = model_of_size(20.0)
    config = TrainConfig(max_steps=2, batch_size=1, crop_size=32, eval_every=1, device="cpu", precision="fp32")
    result = finetune(model, [TrainingPair(image, labels, name="big")], config=config, base="nuclei", diameter=40.0)
    run = model.metadata["lineage"][-1]
    assert run["data"][0]["scale"] == 0.5 and run["data"][0]["object_diameter"] == 40.0
    assert result.train.steps == 2


def test_shrinking_labels_never_loses_a_thin_object():
    labels = np.zeros((64, 64), np.int32)
    labels[10:50, 20] = 1  # one pixel wide
    labels[5, 5] = 2  # a single pixel
    labels[30:40, 30:45] = 3
    small = resize_labels(labels, (16, 16))
    assert set(np.unique(small)) == {0, 1, 2, 3}
    grown = resize_labels(labels, (128, 128))
    assert (grown == 3).sum() == 4 * (labels == 3).sum()
    mask = resize_labels(labels > 0, (32, 32))
    assert mask.dtype == bool and mask.shape == (32, 32)


def test_huge_instance_ids_train_like_small_ones():
    """Ids of 2**40, or uint64 ids past int64, are renumbered: no terabyte allocation, no negative wrap."""
    from napari_unet_seg.core.training.targets import instance_targets

    image, labels = synthetic_nuclei((64, 64), seed=3)
    model = threshold_model()
    small = PreparedPair(TrainingPair(image, labels), model)
    for big in (labels.astype(np.int64) * 2**40, np.where(labels > 0, labels.astype(np.uint64) + 2**63, 0)):
        prepared = PreparedPair(TrainingPair(image, big), model)
        np.testing.assert_array_equal(prepared.labels, small.labels)
        np.testing.assert_array_equal(instance_targets(prepared.labels, None), instance_targets(small.labels, None))
