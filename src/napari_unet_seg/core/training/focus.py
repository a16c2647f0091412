"""Where the starting model is wrong: what a fine-tune looks at first.

A user's corrected image is mostly what the model already got right; the
few nuclei it missed, merged, split or invented are what training must
learn, and uniform random crops spend most steps elsewhere. Before training,
the starting model segments each annotation once (Segment's own result, as
held-out scoring sees it); every annotated object it got wrong, and every
object it invented, becomes an *error*. Training then centres a share of
its crops on errors and weights their pixels more in the loss.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from ..model.modelfile import Model
from .data import PreparedPair, resize_labels
from .evaluation import labels_around_annotation
from .metrics import wrong_objects


@dataclass
class ErrorFocus:
    """A pair's errors at the network's scale: a loss-weight map and points to centre crops on."""

    weights: np.ndarray  # (H, W) float32 at train scale: 0 not annotated, 1 annotated, ``error_weight`` on errors
    centres: np.ndarray  # (N, 2) int: one point per wrong object, at train scale
    objects: int  # how many objects were wrong


def error_focus(model: Model, item: PreparedPair, *, error_weight: float, device: str = "auto",
                precision: str = "auto", grow: int = 2) -> ErrorFocus:
    """Segment the pair with the (starting) model, find its errors, bring them to the network's scale.

    Errors are counted inside the annotated region only; each is grown by
    ``grow`` px so the edges the model must learn to place weigh in too.
    """
    pred, truth, valid = labels_around_annotation(model, item, device=device, precision=precision)
    if valid is not None:
        pred, truth = np.where(valid, pred, 0), np.where(valid, truth, 0)
    wrong_box, objects = wrong_objects(truth, pred)
    wrong = np.zeros(item.labels.shape, bool)
    wrong[item.box()] = wrong_box
    if item.train_labels.shape != wrong.shape:
        wrong = resize_labels(wrong, item.train_labels.shape)
    if grow and wrong.any():
        wrong = ndi.binary_dilation(wrong, iterations=grow)
    annotated = np.ones(item.train_labels.shape, bool) if item.train_valid is None else item.train_valid > 0
    wrong &= annotated
    weights = annotated.astype(np.float32)
    weights[wrong] = error_weight
    components, count = ndi.label(wrong)
    centres = (np.round(np.array(ndi.center_of_mass(wrong, components, range(1, count + 1)))).astype(np.int64)
               .reshape(-1, 2) if count else np.zeros((0, 2), np.int64))
    return ErrorFocus(weights, centres, objects)
