"""The object size: a given diameter rescales the image, within limits; measured sizes rescale only far-off images."""

import numpy as np
import pytest

from napari_unet_seg import new_model, segment


def test_diameter_rescales_and_returns_input_size(tiny_model):
    tiny_model.metadata["object_diameter"] = 20.0
    out = segment(np.random.rand(50, 70), tiny_model, diameter=40)
    assert out.shape == (50, 70)
    with pytest.raises(ValueError, match="positive"):
        segment(np.random.rand(50, 70), tiny_model, diameter=-3)
    for absurd in (float("nan"), float("inf")):
        with pytest.raises(ValueError, match="positive"):
            segment(np.random.rand(50, 70), tiny_model, diameter=absurd)
    with pytest.raises(ValueError, match="enlarge the image 10x"):  # 20 px objects said to be 2 px: 10x larger image
        segment(np.random.rand(50, 70), tiny_model, diameter=2)
    assert segment(np.random.rand(50, 70), tiny_model, diameter=2.5).shape == (50, 70)  # 8x is still allowed


def test_rescale_factor_rules(tiny_model):
    from napari_unet_seg.core.inference.object_size import MAX_ENLARGEMENT, rescale_factor

    assert rescale_factor(tiny_model, 40.0) == 1.0  # the model does not know its objects' size
    tiny_model.metadata["object_diameter"] = 20.0
    assert rescale_factor(tiny_model, None) == 1.0
    assert rescale_factor(tiny_model, 40.0) == pytest.approx(0.5)
    assert rescale_factor(tiny_model, 10.0) == pytest.approx(2.0)
    assert rescale_factor(tiny_model, 20.0 / MAX_ENLARGEMENT) == pytest.approx(MAX_ENLARGEMENT)
    with pytest.raises(ValueError, match="at least 2.5 px"):
        rescale_factor(tiny_model, 20.0 / MAX_ENLARGEMENT * 0.99)


def test_measured_sizes_inside_the_band_are_left_alone(tiny_model):
    from napari_unet_seg.core.inference.object_size import auto_diameter_applies, needs_rescale

    tiny_model.metadata["object_diameter"] = 20.0
    assert auto_diameter_applies(tiny_model)
    assert not needs_rescale(tiny_model, None)  # nothing measured
    assert not needs_rescale(tiny_model, 15.0) and not needs_rescale(tiny_model, 34.0)  # 0.75x and 1.7x: inside
    assert needs_rescale(tiny_model, 14.9) and needs_rescale(tiny_model, 34.1)
    tiny_model.metadata["object_diameter"] = None
    assert not auto_diameter_applies(tiny_model)
    semantic = new_model("semantic", num_classes=3, depth=1, base_channels=2)
    semantic.metadata["object_diameter"] = 20.0
    assert not auto_diameter_applies(semantic)  # only instance models measure their objects


def test_median_diameter_weights_objects_by_area():
    from helpers import oracle_logits

    from napari_unet_seg.core.inference.object_size import median_diameter

    labels = np.zeros((200, 200), np.uint16)
    yy, xx = np.mgrid[0:200, 0:200]
    labels[(yy - 60) ** 2 + (xx - 60) ** 2 <= 30 ** 2] = 1  # one big disk, 60 px across...
    for i, (cy, cx) in enumerate([(150, 20), (150, 45), (150, 70), (180, 20), (180, 45)]):
        labels[(yy - cy) ** 2 + (xx - cx) ** 2 <= 5 ** 2] = 2 + i  # ...outnumbered by five 10 px specks
    measured = median_diameter(oracle_logits(labels))
    assert measured == pytest.approx(60, rel=0.1)  # a typical foreground pixel lies in the big disk
    assert median_diameter(oracle_logits(np.where(labels <= 2, labels, 0))) is None  # fewer than 3 objects


def test_only_small_images_are_measured_whole():
    from napari_unet_seg.core.inference.object_size import AUTO_CROP, fits_measuring_crop, measuring_crop

    assert fits_measuring_crop(np.zeros((1, AUTO_CROP, AUTO_CROP)))
    assert not fits_measuring_crop(np.zeros((1, AUTO_CROP + 1, 10)))
    crop = measuring_crop(np.zeros((1, 3000, 500)))
    assert crop.shape == (1, AUTO_CROP, 500)


def test_the_size_found_is_said_in_the_figure_the_object_size_setting_takes():
    from napari_unet_seg.core.inference.object_size import size_in_words

    assert size_in_words(3, np.pi * 10 ** 2, None) == "about 20 px across (object size: auto)"
    assert size_in_words(3, np.pi * 10 ** 2, 25.0) == "about 20 px across (object size given: 25 px)"
    assert size_in_words(0, 0.0, None) == "" and size_in_words(None, 5.0, None) == ""
