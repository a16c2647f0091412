"""The ignore rule: unannotated pixels have exactly zero effect on the gradients."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import synthetic_nuclei

from napari_unet_seg.core.model.modelfile import new_model
from napari_unet_seg.core.training.batches import sample_crop
from napari_unet_seg.core.training.data import PreparedPair, TrainingPair
from napari_unet_seg.core.training.loop import TrainConfig
from napari_unet_seg.core.training.losses import instance_loss, semantic_loss
from napari_unet_seg.core.training.targets import instance_targets, semantic_targets


def _region(shape, seed=1):
    """An irregular annotated region that cuts through objects."""
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]]
    return (xx < shape[1] * 0.55 + 10 * np.sin(yy / 7)) | ((yy - 20) ** 2 + (xx - 100) ** 2 < 200)


def _scramble_outside(labels, valid, seed=2):
    rng = np.random.default_rng(seed)
    other = labels.copy()
    other[~valid] = rng.integers(0, 40, int((~valid).sum()))
    return other


def _grads(net, image, target, loss_fn):
    net.zero_grad(set_to_none=True)
    x = torch.from_numpy(image)[None, None].float() / 255
    loss_fn(net(x), torch.from_numpy(target)[None]).backward()
    return [p.grad.clone() for p in net.parameters()]


def _cases():
    image, labels = synthetic_nuclei((96, 128), n=14, touching=True)
    valid = _region(labels.shape)
    classes = np.where(labels > 0, 1 + labels % 2, 0)
    return [
        ("instances", image, labels, valid, lambda lab, v: instance_targets(lab, v), instance_loss, 2),
        ("instances-contact", image, labels, valid, lambda lab, v: instance_targets(lab, v, 5.0), instance_loss, 2),
        ("semantic-region", image, classes, valid, lambda lab, v: semantic_targets(lab, v), semantic_loss, 3),
        ("scribbles", image, np.where(valid, classes + 1, 0), labels > -1,
         lambda lab, v: semantic_targets(lab, None, scribbles=True), semantic_loss, 3),
    ]


@pytest.mark.parametrize("case", _cases()[:3], ids=lambda c: c[0])
def test_labels_outside_annotation_do_not_change_gradients(case):
    """(Scribbles have no labels outside the annotation: 0 is what marks it.)"""
    name, image, labels, valid, make_target, loss_fn, channels = case
    other = _scramble_outside(labels, valid)
    torch.manual_seed(0)
    net = new_model("semantic" if channels == 3 else "instances", num_classes=channels, depth=2, base_channels=4).net
    t1, t2 = make_target(labels, valid), make_target(other, valid)
    g1 = _grads(net, image, t1, loss_fn)
    g2 = _grads(net, image, t2, loss_fn)
    assert all(torch.equal(a, b) for a, b in zip(g1, g2))


@pytest.mark.parametrize("case", _cases(), ids=lambda c: c[0])
def test_loss_gradient_is_exactly_zero_on_unannotated_pixels(case):
    name, image, labels, valid, make_target, loss_fn, channels = case
    annotated = valid if name != "scribbles" else labels > 0
    target = torch.from_numpy(make_target(labels, valid))[None]
    logits = torch.randn(1, channels, *labels.shape, requires_grad=True)
    loss_fn(logits, target).backward()
    grad = logits.grad[0]
    assert torch.all(grad[:, torch.from_numpy(~annotated)] == 0)
    assert torch.any(grad[:, torch.from_numpy(annotated)] != 0)


@pytest.mark.parametrize("task", ["instances", "semantic"])
def test_sampled_training_batches_ignore_labels_outside_the_region(task):
    """Crops, augmentation and targets together: the whole data path obeys the ignore rule."""
    image, labels = synthetic_nuclei((96, 128), n=14, touching=True)
    valid = _region(labels.shape)
    if task == "semantic":
        labels = np.where(labels > 0, 1 + labels % 2, 0)
    other = _scramble_outside(labels, valid) % (40 if task == "instances" else 3)
    model = new_model(task, num_classes=3, depth=2, base_channels=4)
    config = TrainConfig(crop_size=48, contact_weight=5.0)
    a = PreparedPair(TrainingPair(image, labels, valid), model)
    b = PreparedPair(TrainingPair(image, other, valid), model)
    for seed in range(8):
        xa, ya = sample_crop(a, model.task, config, np.random.default_rng(seed))
        xb, yb = sample_crop(b, model.task, config, np.random.default_rng(seed))
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
