"""Non-finite pixels and losses: handled and said, never a silent NaN model, a hang or a crash."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from helpers import synthetic_nuclei, threshold_model
from napari_unet_seg.core.inference.options import RunOptions
from napari_unet_seg.core.inference.pipeline import segment, segment_image
from napari_unet_seg.core.training import loop
from napari_unet_seg.core.training.data import TrainingPair
from napari_unet_seg.core.training.finetune import finetune
from napari_unet_seg.core.training.loop import TrainConfig


@pytest.mark.parametrize("bad", [np.nan, -np.inf, np.inf])
def test_non_finite_pixels_are_read_as_the_window_ends_and_said(bad):
    image, _ = synthetic_nuclei((96, 128), seed=2)
    model = threshold_model()
    clean = segment(image.astype(np.float32), model, device="cpu")
    broken = image.astype(np.float32)
    broken[5, 5] = bad
    broken[60:62, 0:2] = bad  # a few background pixels (fewer than an object has)
    result = segment_image(broken, RunOptions(device="cpu"), model=model)
    assert result.notes and "NaN or infinite" in result.notes[0]
    assert result.objects == clean.max()
    np.testing.assert_array_equal(result.labels > 0, clean > 0)


def test_an_image_of_nothing_but_nan_gives_no_objects_and_no_warning_noise():
    result = segment_image(np.full((40, 40), np.nan, np.float32), RunOptions(device="cpu"), model=threshold_model())
    assert result.objects == 0 and result.notes


def test_empty_images_are_refused_in_one_line():
    for shape in [(0, 10), (10, 0), (0, 32, 32)]:
        with pytest.raises(ValueError, match="empty"):
            segment(np.zeros(shape, np.float32), threshold_model())


def test_a_diverging_loss_stops_training_and_keeps_the_last_good_weights(monkeypatch):
    image, labels = synthetic_nuclei((64, 64), seed=1)
    model = threshold_model()
    calls = []
    real = loop.instance_loss

    def explodes(logits, targets):
        calls.append(1)
        value = real(logits, targets)
        return value * float("nan") if len(calls) > 2 else value

    monkeypatch.setattr(loop, "instance_loss", explodes)
    config = TrainConfig(max_steps=10, batch_size=1, crop_size=32, device="cpu", precision="fp32")
    result = finetune(model, [TrainingPair(image, labels)], config=config, base="parent")
    assert result.train.steps == 2
    assert all(torch.isfinite(p).all() for p in model.net.state_dict().values() if p.is_floating_point())
    assert "diverged" in result.warnings[0]
    assert segment(image, model, device="cpu").max() > 0  # still a working model


@pytest.mark.parametrize("bad", [np.nan, -np.inf])
def test_training_on_an_image_with_non_finite_pixels_gives_finite_weights_and_says_so(bad):
    image, labels = synthetic_nuclei((96, 96), seed=4)
    broken = image.astype(np.float32)
    broken[3:6, 3:6] = bad
    model = threshold_model()
    config = TrainConfig(max_steps=3, batch_size=2, crop_size=48, device="cpu", precision="fp32")
    result = finetune(model, [TrainingPair(broken, labels, name="cells")], config=config, base="parent")
    assert all(torch.isfinite(p).all() for p in model.net.state_dict().values() if p.is_floating_point())
    assert any(w.startswith("cells: the image has NaN or infinite pixels") for w in result.warnings)
    clean = finetune(threshold_model(), [TrainingPair(image, labels, name="cells")], config=config, base="parent")
    assert not any("NaN" in w for w in clean.warnings)
