"""Scribbles correct an instance model: 1 = background, 2 = object; foreground is taught, object extents are not."""

from __future__ import annotations

import numpy as np

from helpers import synthetic_nuclei, threshold_model
from napari_unet_seg.core.training.data import TrainingPair
from napari_unet_seg.core.training.evaluation import evaluate_pairs
from napari_unet_seg.core.training.finetune import finetune, starting_model
from napari_unet_seg.core.training.loop import TrainConfig, Trainer, _sample


def _strokes(labels: np.ndarray) -> np.ndarray:
    """A line through every 6th row: 2 on objects, 1 on background, 0 elsewhere."""
    scribbles = np.zeros(labels.shape, np.uint8)
    scribbles[3::6] = np.where(labels[3::6] > 0, 2, 1)
    return scribbles


def test_strokes_teach_foreground_but_not_the_centre_of_objects():
    image, labels = synthetic_nuclei((96, 96), n=8)
    model = starting_model("none", depth=2, width=4)
    config = TrainConfig(crop_size=48, batch_size=1, scribbles=True, eval_initial=False)
    trainer = Trainer(model, [TrainingPair(image, _strokes(labels))], config, ())
    rng = np.random.default_rng(0)
    taught = []
    for _ in range(8):
        img, target = _sample(trainer.prepared[0], model, config, rng)
        fg, _, weight, centre_weight = target
        assert set(np.unique(weight)) <= {0.0, 1.0} and weight.sum() > 0
        assert (weight > 0).mean() < 0.3  # only the strokes teach
        taught += list(np.unique(fg[weight > 0]))
        # strokes say nothing of where objects' middles are: taught only on background, the centre map sank
        assert centre_weight.max() == 0
    assert set(taught) == {0.0, 1.0}  # object strokes teach foreground, background strokes background


def test_instance_scribbles_are_scored_as_foreground_against_background():
    image, labels = synthetic_nuclei((96, 128), n=14, seed=1)
    model = threshold_model()
    scores = evaluate_pairs(model, [TrainingPair(image, _strokes(labels))], scribbles=True, device="cpu",
                            precision="fp32")
    assert set(scores) == {"mean_iou"} and scores["mean_iou"] > 0.8
    swapped = np.where(_strokes(labels) == 2, 1, np.where(_strokes(labels) == 1, 2, 0))
    worse = evaluate_pairs(model, [TrainingPair(image, swapped)], scribbles=True, device="cpu", precision="fp32")
    assert worse["mean_iou"] < 0.2


def test_an_instance_model_fine_tunes_on_scribbles():
    image, labels = synthetic_nuclei((256, 256), n=30, seed=2)
    model = threshold_model()
    model.metadata["object_diameter"] = 14.0
    config = TrainConfig(max_steps=3, crop_size=64, batch_size=2, eval_every=3)
    result = finetune(model, [TrainingPair(image, _strokes(labels))], scribbles=True, config=config, base="parent",
                      diameter=14.0)
    assert result.held_out and set(result.scores) == {"mean_iou"} and result.tuning is None
    assert model.task == "instances" and model.metadata["lineage"][-1]["mode"] == "scribbles"
    assert "mean IoU" in result.verdict("parent")
