"""Fine-tuning looks first where the starting model was wrong: errors found, crops centred there, pixels weighted."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import synthetic_nuclei, threshold_model

from napari_unet_seg.core.training.augment import random_crop
from napari_unet_seg.core.training.data import PreparedPair, TrainingPair
from napari_unet_seg.core.training.finetune import starting_model
from napari_unet_seg.core.training.focus import error_focus, wrong_objects
from napari_unet_seg.core.training.loop import TrainConfig, Trainer, train
from napari_unet_seg.core.training.targets import instance_targets


def test_wrong_objects_are_the_missed_merged_and_invented_ones():
    truth = np.zeros((40, 40), int)
    truth[2:8, 2:8] = 1  # found
    truth[10:18, 10:18] = 2  # missed
    truth[25:30, 2:7], truth[25:30, 8:13] = 3, 4  # merged into one prediction
    pred = np.zeros_like(truth)
    pred[2:8, 2:8] = 9
    pred[25:30, 2:13] = 5
    pred[32:36, 30:36] = 7  # invented
    mask, count = wrong_objects(truth, pred)
    assert count == 5  # 2, 3, 4 missed; 5 (the merge) and 7 invented
    assert not mask[2:8, 2:8].any()
    assert mask[10:18, 10:18].all() and mask[25:30, 2:13].all() and mask[32:36, 30:36].all()


def _pair_with_errors():
    """Disks the threshold model finds, plus one annotated dim nucleus it misses and one bright blob not annotated."""
    image, labels = synthetic_nuclei((128, 128), n=6, seed=3)
    labels = labels.astype(np.int64)
    image = image.copy()
    labels[100:112, 100:112] = labels.max() + 1  # annotated, but as dark as the background: missed
    image[5:15, 110:120] = 200  # bright, but not a nucleus according to the user: invented
    labels[5:15, 110:120] = 0
    return image, labels


def test_error_focus_marks_the_starting_models_errors_at_the_networks_scale():
    image, labels = _pair_with_errors()
    model = threshold_model()
    model.metadata["object_diameter"] = 14.0
    focus = error_focus(model, PreparedPair(TrainingPair(image, labels), model), error_weight=4.0)
    assert focus.objects == 2 and len(focus.centres) == 2
    assert focus.weights.shape == labels.shape
    assert focus.weights[106, 106] == 4.0 and focus.weights[10, 115] == 4.0
    assert set(np.unique(focus.weights)) == {1.0, 4.0}
    assert (focus.weights == 4.0).mean() < 0.05  # the found nuclei weigh as usual

    half = TrainingPair(image, labels, diameter=2.0 * model.object_diameter)  # Segment halves this image
    small = error_focus(model, PreparedPair(half, model), error_weight=4.0)
    assert small.weights.shape == (64, 64) and small.weights[53, 53] == 4.0


def test_errors_outside_the_annotated_region_do_not_count():
    image, labels = _pair_with_errors()
    model = threshold_model()
    valid = np.zeros(labels.shape, bool)
    valid[:, :64] = True  # both errors lie in the right half
    focus = error_focus(model, PreparedPair(TrainingPair(image, labels, valid), model), error_weight=4.0)
    assert focus.objects == 0 and len(focus.centres) == 0
    assert focus.weights[:, 64:].max() == 0 and set(np.unique(focus.weights[:, :64])) == {1.0}


def test_a_crop_centred_on_a_point_holds_it_even_at_the_image_edge():
    image = np.zeros((1, 200, 300), np.float32)
    labels = np.zeros((200, 300), np.int64)
    rng = np.random.default_rng(0)
    for centre in [(100, 150), (3, 4), (196, 297)]:
        labels[:] = 0
        labels[centre] = 1
        for _ in range(20):
            _, lab, _ = random_crop(image, labels, None, 64, 1.0, rng, centre=centre)
            assert lab.max() == 1


def test_weighted_pixels_weigh_in_the_targets():
    labels = np.zeros((32, 32), int)
    labels[8:16, 8:16] = 1
    weights = np.ones(labels.shape, np.float32)
    weights[8:16, 8:16] = 3.0
    weights[:, 28:] = 0
    target = instance_targets(labels, weights)
    assert target[2, 10, 10] == 3.0 and target[3, 10, 10] == 3.0
    assert target[2, 0, 0] == 1.0 and target[2, 0, 30] == 0.0


def test_training_with_focus_draws_crops_around_the_errors():
    image, labels = _pair_with_errors()
    model = starting_model("none", depth=2, width=4)
    config = TrainConfig(max_steps=1, crop_size=32, batch_size=1, focus_errors=1.0, error_weight=3.0,
                         eval_initial=False)
    trainer = Trainer(model, [TrainingPair(image, labels)], config, ())
    focus = trainer.focus[0]
    assert focus is not None and focus.objects > 0
    from napari_unet_seg.core.training.batches import sample_crop

    rng = np.random.default_rng(1)
    for _ in range(10):
        _, target = sample_crop(trainer.prepared[0], model.task, config, rng, focus)
        assert target[2].max() == 3.0  # every crop holds part of an error


def test_focus_is_off_by_default_and_for_semantic_models():
    image, labels = synthetic_nuclei((64, 64))
    instances = starting_model("none", depth=2, width=4)
    assert Trainer(instances, [TrainingPair(image, labels)], TrainConfig(), ()).focus == [None]
    semantic = starting_model("none", task="semantic", classes=2, depth=2, width=4)
    config = TrainConfig(focus_errors=0.5, error_weight=3.0)
    assert Trainer(semantic, [TrainingPair(image, (labels > 0).astype(int))], config, ()).focus == [None]


@pytest.mark.parametrize("focus_errors", [0.0, 0.7])
def test_training_runs_with_and_without_focus(focus_errors):
    image, labels = _pair_with_errors()
    model = starting_model("none", depth=2, width=4)
    config = TrainConfig(max_steps=3, crop_size=48, batch_size=2, focus_errors=focus_errors, error_weight=2.0,
                         eval_initial=False)
    result = train(model, [TrainingPair(image, labels)], config)
    assert result.steps == 3 and all(np.isfinite(h["loss"]) for h in result.history)


def test_the_errors_found_are_reported_in_words():
    from napari_unet_seg.core.training.finetune import FinetuneResult
    from napari_unet_seg.core.training.loop import TrainResult

    image, labels = _pair_with_errors()
    model = threshold_model()
    model.metadata["object_diameter"] = 14.0
    config = TrainConfig(max_steps=1, crop_size=48, batch_size=1, focus_errors=0.5, error_weight=3.0,
                         eval_initial=False)
    result = train(model, [TrainingPair(image, labels)], config)
    assert result.errors_found == 2
    done = FinetuneResult(model, result, {"ap50": 0.5, "dice": 0.7, "wrong_objects": 3.0, "ap50_earlier": 0.9,
                                          "dice_earlier": 0.95, "wrong_objects_earlier": 1.0}, held_out=True)
    assert "got 2 object(s) wrong in the part of your annotation it trained on" in done.focus_text()
    assert done.score_text() == ("AP50 0.500, Dice 0.700, 3 object(s) wrong (earlier corrections: AP50 0.900, "
                                 "Dice 0.950, 1 object(s) wrong)")
    alone = FinetuneResult(model, result, {"ap50": 0.5}, held_out=False)  # nothing held out: the whole annotation
    assert "got 2 object(s) wrong across your annotation" in alone.focus_text()
    none = TrainResult(model, 1, 1.0, [], None, False)
    assert FinetuneResult(model, none, {"ap50": 0.5}, held_out=False).focus_text() is None


def test_a_pair_too_big_to_segment_first_leaves_the_others_their_focus():
    image, labels = _pair_with_errors()
    big_image, big_labels = synthetic_nuclei((256, 256), n=20, seed=5)
    model = threshold_model()
    model.metadata["object_diameter"] = 14.0
    config = TrainConfig(max_steps=1, crop_size=48, batch_size=1, focus_errors=0.5, error_weight=3.0)
    trainer = Trainer(model, [TrainingPair(big_image, big_labels), TrainingPair(image, labels)], config, ())
    assert all(f is not None for f in trainer.focus)
    limited = trainer.find_errors(budget=image.size + 1)  # room for the small pair only
    assert limited[0] is None and limited[1] is not None and limited[1].objects == 2
