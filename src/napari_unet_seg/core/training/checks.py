"""Refusing annotations a model cannot learn from, and noticing a model that learned nothing.

Both say what is wrong in one line a biologist can act on.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..common.labels_checks import looks_like_an_intensity_image
from ..inference.prediction import image_notes, prepare
from ..model.modelfile import Model
from .data import PreparedPair, TrainingPair
from .evaluation import labels_around_annotation


class UnusableAnnotation(ValueError):
    """An annotation training cannot start from: the user fixes it, nothing was trained."""


def check_pairs(model: Model, pairs: Sequence[TrainingPair], *, scribbles: bool, require_objects: bool = True) -> None:
    """Refuse annotations the model cannot learn from, with a one-line reason.

    ``require_objects=False`` leaves out the one rule about all ``pairs`` together (an instance model needs
    an object somewhere): a round's own pairs beside a project's saved ones. A region drawn over an area
    with no objects teaches something there; a whole image with none is a Labels layer never painted (or
    emptied), and is refused all the same, before it is saved into the project for every later round.
    """
    if isinstance(pairs, TrainingPair):
        raise TypeError("give the training pairs as a list: [TrainingPair(image, labels), ...]")
    if not pairs:
        raise UnusableAnnotation("nothing to train on: give at least one annotated image")
    if strays := [type(pair).__name__ for pair in pairs if not isinstance(pair, TrainingPair)]:
        raise TypeError(f"each training pair is a TrainingPair(image, labels), not {strays[0]}")
    if scribbles and model.task == "instances":
        # measured (benchmarks/RESULTS.md): scribbles on the nuclei model made other images worse in 2 of 5
        # domains and better in none, because strokes cannot show where one nucleus ends
        raise UnusableAnnotation("scribbles train class models: strokes cannot show where one nucleus ends, so an "
                                 "instance model is corrected with painted labels (dense or region-limited); start "
                                 "from a new model for classes")
    n_classes = len(model.class_names)
    for pair in pairs:
        labels = np.asarray(pair.labels)
        name = f" in {pair.name}" if pair.name else ""
        if labels.size and labels.min() < 0:
            raise UnusableAnnotation(f"labels{name} contain negative values")
        image = np.asarray(pair.image)
        _refuse_another_size(image, labels, pair, name)
        if image.shape == labels.shape and np.array_equal(image, labels):
            # the commonest slip when picking files or layers; a model trained on it learns nothing useful
            raise UnusableAnnotation(f"the labels{name} are the image itself: pick the labels painted over it")
        if labels.size and not np.issubdtype(labels.dtype, np.integer) and labels.dtype != bool \
                and not np.array_equal(labels, np.round(labels)):
            raise UnusableAnnotation(f"labels{name} hold fractional values: labels are whole numbers (ids or classes)")
        if model.task == "instances" and not scribbles and not pair.replay:
            _refuse_a_mask(labels, name)
        annotated = np.ones(labels.shape, bool) if pair.valid is None else np.asarray(pair.valid) > 0
        if scribbles:
            annotated &= labels > 0
        if not annotated.any():
            raise UnusableAnnotation(f"nothing is annotated{name}: paint some labels (or draw the region) first")
        if model.task == "semantic":
            top = int(labels[annotated].max())
            allowed = n_classes if scribbles else n_classes - 1
            if top > allowed:
                hint = f"scribble values go up to {n_classes} (1 = background)" if scribbles else \
                    f"class ids go up to {n_classes - 1} (0 = background)"
                raise UnusableAnnotation(f"label value {top}{name} is too large for a {n_classes}-class model: {hint}; "
                                         "for more classes, train a new model (its class count follows the labels)")
    dense = [pair for pair in pairs if pair.valid is None]  # a stack's slices may be empty, not all of them
    if not require_objects and model.task == "instances" and not scribbles and dense \
            and not any(_has_objects(pair) for pair in dense):
        names = ", ".join(dict.fromkeys(pair.name.split(" [")[0] for pair in dense if pair.name)) or "the labels"
        raise UnusableAnnotation(  # the pairs are named after their images: the labels are the user's other layer
            f"no objects are annotated in the labels for {names}: paint each object with its own label first "
            "(to teach that an "
            "area holds no objects, draw it as a region: region mode, or --mask)")
    if require_objects and model.task == "semantic":
        _refuse_one_class(painted_classes(pairs, scribbles=scribbles), scribbles)
    if require_objects and model.task == "instances" and not any(_has_objects(pair) for pair in pairs):
        # e.g. a new, never-painted Labels layer: training on it would only teach the model to find nothing
        names = ", ".join(p.name for p in pairs if p.name)
        raise UnusableAnnotation(f"no objects are annotated{f' in the labels for {names}' if names else ''}: "
                                 "paint each object "
                                 "with its own label first (a region with no objects can be trained on beside "
                                 "annotated ones)")


def painted_classes(pairs: Sequence[TrainingPair], *, scribbles: bool) -> set[int]:
    """The class ids (0 = background) annotated anywhere in ``pairs``; scribble value v is class v - 1."""
    found: set[int] = set()
    for pair in pairs:
        labels = np.asarray(pair.labels)
        values = labels if pair.valid is None else labels[np.asarray(pair.valid) > 0]
        ids = np.unique(values)
        found.update(int(v) - 1 for v in ids if v > 0) if scribbles else found.update(int(v) for v in ids)
    return found


MAX_NEW_CLASSES = 32  # more values than this are objects' ids (one per nucleus), not classes someone painted


def classes_called_for(pairs: Sequence[TrainingPair], *, scribbles: bool) -> int:
    """The class count (background included) a new class model needs for these labels: their highest class + 1.

    Raises :class:`UnusableAnnotation` when that is more than
    ``MAX_NEW_CLASSES``: such labels are objects' ids (a Segment result, ground
    truth), and a model of a class per object learns nothing (mean IoU 0.001).
    """
    top = max((int(np.asarray(p.labels).max(initial=0)) for p in pairs), default=0)
    count = max(2, top if scribbles else top + 1)
    if count > MAX_NEW_CLASSES:
        raise UnusableAnnotation(f"the labels hold values up to {top}, which would make {count} classes: they look "
                                 "like objects (one id per nucleus), not painted classes; train them as objects "
                                 f"(not as scribbles or classes), or paint classes with values 1 to "
                                 f"{MAX_NEW_CLASSES if scribbles else MAX_NEW_CLASSES - 1}")
    return count


def _refuse_one_class(found: set[int], scribbles: bool) -> None:
    """A class model learns to tell classes apart: from one class it learns that every pixel is that class."""
    if len(found) != 1:
        return
    if not scribbles:
        raise UnusableAnnotation(f"only class {found.pop()} is annotated: a class model needs at least two classes "
                                 "(0 = background) to learn to tell them apart")
    if found == {0}:
        raise UnusableAnnotation("only background (value 1) is painted: paint each class with its own value, 2, "
                                 "3, ... (napari's brush starts at 1, which means background here)")
    raise UnusableAnnotation(f"only value {found.pop() + 1} is painted: paint some background too, with value 1, "
                             "or the model learns that every pixel is that class")


def unpainted_class_ids(model: Model, pairs: Sequence[TrainingPair], *, scribbles: bool) -> list[int]:
    """The classes (0 = background) of a class model that nothing annotates: they will never be predicted."""
    if model.task != "semantic":
        return []
    found = painted_classes(pairs, scribbles=scribbles)
    return [k for k in range(len(model.class_names)) if k not in found]


def unpainted_classes(model: Model, pairs: Sequence[TrainingPair], *, scribbles: bool) -> list[str]:
    """A warning per class of a class model that nothing annotates: it will never be predicted."""
    return [f"'{model.class_names[k]}' ({'value ' + str(k + 1) if scribbles else 'id ' + str(k)}) is annotated "
            "nowhere: the model will not learn it" for k in unpainted_class_ids(model, pairs, scribbles=scribbles)]


def _has_objects(pair: TrainingPair) -> bool:
    """Whether any annotated pixel belongs to an object."""
    labels = np.asarray(pair.labels)
    return bool((labels > 0).any() if pair.valid is None else (labels[np.asarray(pair.valid) > 0] > 0).any())


def sanity_check(model: Model, pairs: Sequence[TrainingPair], *, scribbles: bool = False) -> list[str]:
    """Warn when the model predicts nothing, or everything, on its own training images."""
    warnings = []
    for pair in pairs:
        pred, truth, valid = labels_around_annotation(model, PreparedPair(pair, model))
        annotated = np.ones(truth.shape, bool) if valid is None else valid
        if scribbles:
            annotated = annotated & (truth > 0)
        name = pair.name or "a training image"
        if model.task == "instances":
            predicted, true = (pred > 0)[annotated].mean(), (truth > 0)[annotated].mean()
            if predicted < 0.001 and true > 0.01:
                warnings.append(f"the model finds no objects on {name}; train longer or check the labels")
            elif predicted > 0.97 and true < 0.9:
                warnings.append(f"the model marks almost everything as object on {name}; check the labels")
        else:
            true_ids = truth[annotated] - 1 if scribbles else truth[annotated]
            found = np.unique(pred[annotated])
            if len(np.unique(true_ids)) > 1 and len(found) == 1:
                warnings.append(f"the model predicts only '{model.class_names[int(found[0])]}' on {name}; "
                                "train longer or annotate more")
    return warnings


def image_warnings(model: Model, pair: TrainingPair) -> list[str]:
    """What the user should know about a training image, as Segment says it: blank, NaN or infinite pixels."""
    return [f"{pair.name or 'a training image'}: {note}" for note in image_notes(prepare(model, pair.image,
                                                                                        rgb=pair.rgb))]


def annotation_warnings(model: Model, pair: TrainingPair) -> list[str]:
    """Signs that labels do not belong to their image: one line each, for the user to judge (not refused)."""
    labels = np.asarray(pair.labels)
    name = pair.name or "the image"
    if looks_like_an_intensity_image(labels):
        return [f"the labels of {name} change value from pixel to pixel, like an image rather than labels: "
                "did you pick the image as labels?"]
    region = np.ones(labels.shape, bool) if pair.valid is None else np.asarray(pair.valid) > 0
    inside, outside = (labels > 0) & region, (labels == 0) & region
    if model.task != "instances" or not inside.any() or not outside.any():
        return []
    seen = np.asarray(prepare(model, pair.image, rgb=pair.rgb))  # nuclei bright, as the model sees them
    # each channel alone: a nuclear stain beside a cytoplasm one (dark where the nuclei are) averages out flat
    if not any(channel[inside].mean() > channel[outside].mean() + 0.02 for channel in seen):
        return [f"the labelled objects in {name} are no brighter than their background: are these the labels "
                "of another image?"]
    return []


def _refuse_another_size(image: np.ndarray, labels: np.ndarray, pair: TrainingPair, name: str) -> None:
    """Labels (and region) must cover the image pixel for pixel; a transposed or cropped array is a slip."""
    if image.ndim not in (2, 3) or (pair.rgb and image.ndim != 3):
        layout = "(H, W, 3|4) colour" if pair.rgb else "(H, W) or (C, H, W)"
        raise UnusableAnnotation(f"the image{name} has shape {image.shape}: give a {layout} image")
    plane = image.shape[:2] if pair.rgb else image.shape[-2:]
    if labels.shape != plane:
        raise UnusableAnnotation(f"the labels{name} have shape {labels.shape} but the image is {plane}: "
                                 "they must match pixel for pixel")
    if pair.valid is not None and np.shape(pair.valid) != plane:
        raise UnusableAnnotation(f"the annotated region{name} has shape {np.shape(pair.valid)} but the image is "
                                 f"{plane}: they must match pixel for pixel")


MASK_PIECES = 3  # separate objects under one value that make labels a mask (a painted outline cut in two is not)


def _refuse_a_mask(labels: np.ndarray, name: str) -> None:
    """A foreground mask (every object 1) teaches an instance model that touching nuclei are one: it trained
    silently, scored AP50-90 0 on its held-out part and advised "annotate more"."""
    if labels.size == 0 or labels.max() != 1:
        return
    from scipy import ndimage

    pieces = ndimage.label(labels == 1)[1]
    if pieces >= MASK_PIECES:
        raise UnusableAnnotation(f"the labels{name} give one value to {pieces} separate objects: a mask, not labels; "
                                 "give each object its own id (napari: a new label per object; Python: "
                                 "skimage.measure.label(mask))")
