"""Annotations a model cannot learn from are refused in one line; a model that learned nothing is noticed."""

from __future__ import annotations

import numpy as np
import pytest

from helpers import synthetic_nuclei
from napari_unet_seg.core.training.checks import UnusableAnnotation, check_pairs
from napari_unet_seg.core.training.data import TrainingPair
from napari_unet_seg.core.training.finetune import starting_model

TINY = dict(depth=2, width=4)


def test_clear_errors_for_unusable_annotations():
    image, labels = synthetic_nuclei((64, 64))
    instances = starting_model("none", **TINY)
    with pytest.raises(ValueError, match="scribbles train class models"):
        check_pairs(instances, [TrainingPair(image, np.where(labels > 0, 2, 1))], scribbles=True)
    with pytest.raises(ValueError, match="nothing is annotated"):
        check_pairs(instances, [TrainingPair(image, labels, valid=np.zeros(labels.shape, bool))], scribbles=False)
    empty = np.zeros_like(labels)  # a new Labels layer, never painted
    with pytest.raises(ValueError, match="no objects are annotated in the labels for new layer: paint each object"):
        check_pairs(instances, [TrainingPair(image, empty, name="new layer")], scribbles=False)
    left = labels == 0  # a region drawn around background only
    with pytest.raises(ValueError, match="no objects are annotated"):  # a region with none, and nothing else
        check_pairs(instances, [TrainingPair(image, labels, valid=left)], scribbles=False)
    # a region with no objects beside an annotated image is a lesson, not a mistake
    check_pairs(instances, [TrainingPair(image, labels, valid=left), TrainingPair(image, labels)], scribbles=False)
    # beside a project's saved corrections (a round's own pairs): a region with none still teaches, a whole
    # never-painted layer is still a slip, refused before it is saved for every later round
    check_pairs(instances, [TrainingPair(image, labels, valid=left)], scribbles=False, require_objects=False)
    with pytest.raises(UnusableAnnotation, match="no objects are annotated in the labels for new layer: paint each"):
        check_pairs(instances, [TrainingPair(image, empty, name="new layer")], scribbles=False, require_objects=False)
    # a dense stack whose first slice holds no nucleus is an annotation all the same
    stack = [TrainingPair(image, empty, name="stack [0]"), TrainingPair(image, labels, name="stack [1]")]
    check_pairs(instances, stack, scribbles=False, require_objects=False)
    counts = image.astype(np.int64) * 7  # the image picked twice, once as labels
    with pytest.raises(UnusableAnnotation, match="the labels in cells are the image itself: pick the labels painted"):
        check_pairs(instances, [TrainingPair(counts, counts.copy(), name="cells")], scribbles=False)
    semantic = starting_model("none", task="semantic", classes=3, **TINY)
    with pytest.raises(UnusableAnnotation, match="only class 0 is annotated: a class model needs at least two"):
        check_pairs(semantic, [TrainingPair(image, empty)], scribbles=False)
    two_classes = (labels > 0).astype(np.int64)
    check_pairs(semantic, [TrainingPair(image, empty), TrainingPair(image, two_classes)], scribbles=False)
    check_pairs(semantic, [TrainingPair(image, empty)], scribbles=False, require_objects=False)  # beside a project's
    with pytest.raises(ValueError, match="too large for a 3-class model"):
        check_pairs(semantic, [TrainingPair(image, np.full(labels.shape, 3))], scribbles=False)


def test_sanity_check_warns_when_nothing_is_found():
    from napari_unet_seg.core.training.checks import sanity_check

    image, labels = synthetic_nuclei((96, 96))
    model = starting_model("none", **TINY)
    model.net.head.weight.data.zero_()  # logits of -50 everywhere: nothing is foreground
    model.net.head.bias.data.fill_(-50)
    warnings = sanity_check(model, [TrainingPair(image, labels, name="cells")])
    assert warnings and "finds no objects on cells" in warnings[0]


def test_scribbles_of_one_value_are_refused_and_unpainted_classes_said():
    """napari's brush starts at 1, which means background in scribbles: painting nuclei with it teaches nothing."""
    from napari_unet_seg.core.training.checks import classes_called_for, unpainted_classes

    image, labels = synthetic_nuclei((64, 64))
    semantic = starting_model("none", task="semantic", classes=3, **TINY)
    strokes = np.zeros(labels.shape, np.int64)
    strokes[::6] = np.where(labels[::6] > 0, 1, 0)  # nuclei painted with 1
    with pytest.raises(UnusableAnnotation, match=r"only background \(value 1\) is painted: paint each class"):
        check_pairs(semantic, [TrainingPair(image, strokes)], scribbles=True)
    with pytest.raises(UnusableAnnotation, match="only value 2 is painted: paint some background too, with value 1"):
        check_pairs(semantic, [TrainingPair(image, strokes * 2)], scribbles=True)
    both = np.where(labels > 0, 2, 1) * (np.arange(64) % 6 == 0)[:, None]
    check_pairs(semantic, [TrainingPair(image, both)], scribbles=True)
    assert unpainted_classes(semantic, [TrainingPair(image, both)], scribbles=True) == [
        "'class 2' (value 3) is annotated nowhere: the model will not learn it"]
    assert classes_called_for([TrainingPair(image, both)], scribbles=True) == 2  # background + one class
    assert classes_called_for([TrainingPair(image, both * 0 + 5 * (both > 0))], scribbles=True) == 5
    assert classes_called_for([TrainingPair(image, (labels > 0).astype(int))], scribbles=False) == 2


def test_labels_of_another_size_or_a_bare_pair_are_one_line_before_anything_runs():
    # from Python, a cropped or transposed labels array reached numpy's boolean indexing (an IndexError
    # six frames deep) before anything compared the sizes
    image, labels = synthetic_nuclei((64, 80))
    model = starting_model("none", **TINY)
    with pytest.raises(UnusableAnnotation, match=r"labels in a have shape \(80, 64\) but the image is \(64, 80\)"):
        check_pairs(model, [TrainingPair(image, labels.T, name="a")], scribbles=False)
    with pytest.raises(UnusableAnnotation, match=r"the annotated region has shape \(10, 10\) but the image is"):
        check_pairs(model, [TrainingPair(image, labels, valid=np.ones((10, 10), bool))], scribbles=False)
    with pytest.raises(TypeError, match=r"as a list: \[TrainingPair"):
        check_pairs(model, TrainingPair(image, labels), scribbles=False)
    colour = np.repeat(image[..., None], 3, axis=-1).astype(np.uint8)
    check_pairs(model, [TrainingPair(colour, labels)], scribbles=False)  # colour guessed, as segment() guesses it
    assert TrainingPair(colour, labels).rgb and not TrainingPair(colour, labels, rgb=False).rgb
    assert not TrainingPair(image, labels).rgb
    with pytest.raises(TypeError, match="TrainingPair\\(image, labels\\), not tuple"):
        check_pairs(model, [(image, labels)], scribbles=False)
    with pytest.raises(UnusableAnnotation, match="fractional values"):
        check_pairs(model, [TrainingPair(image, labels + 0.5)], scribbles=False)


def test_a_mask_given_as_instance_labels_is_refused_with_what_to_do():
    # every nucleus painted 1: trained silently, scored AP50-90 0 and advised "annotate more"
    image, labels = synthetic_nuclei((64, 64), n=6)
    model = starting_model("none", **TINY)
    with pytest.raises(UnusableAnnotation, match=r"one value to \d+ separate objects: a mask, not labels"):
        check_pairs(model, [TrainingPair(image, (labels > 0).astype(np.uint8), name="a")], scribbles=False)
    one = (labels == 1).astype(np.uint8)  # one object, id 1: labels all the same
    check_pairs(model, [TrainingPair(image, one)], scribbles=False)
    semantic = starting_model("none", task="semantic", classes=2, **TINY)
    check_pairs(semantic, [TrainingPair(image, (labels > 0).astype(np.uint8))], scribbles=False)  # classes: fine
