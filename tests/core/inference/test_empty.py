"""Black gaps, padding, saturated and constant areas never become objects, in one window or across many."""

import numpy as np
import pytest
import torch

from napari_unet_seg.core.inference.empty import DARK_SIDE, empty_regions, flat_rectangles, flat_side, flat_squares
from napari_unet_seg.core.inference.pipeline import segment
from napari_unet_seg.core.model.modelfile import new_model


def test_flat_squares_cover_exactly_the_pixels_of_flat_squares():
    image = np.random.default_rng(0).normal(size=(1, 40, 50)).astype(np.float32)
    image[0, 10:17, 20:29] = 3.0  # a 7 x 9 flat patch
    flat = flat_squares(image, 5)
    expected = np.zeros((40, 50), bool)
    expected[10:17, 20:29] = True
    assert (flat == expected).all()
    assert not flat_squares(image, 9).any()  # no 9 x 9 square fits in it
    image[0, :3] = 0.0  # a flat strip along the edge, thinner than the square: judged by the pixels it has
    assert not flat_squares(image, 5)[:3].any()


@pytest.mark.parametrize("height, width", [(2, 2), (3, 7), (5, 5), (7, 3), (4, 9)])
def test_flat_rectangles_agree_with_a_brute_force_search(height, width):
    rng = np.random.default_rng(height * 10 + width)
    for _ in range(10):
        image = rng.integers(0, 2, (1, 40, 43)).astype(np.float32)
        for _ in range(3):
            y, x, h, w = rng.integers(0, 35), rng.integers(0, 38), rng.integers(1, 20), rng.integers(1, 20)
            image[0, y:y + h, x:x + w] = rng.integers(0, 2)
        expected = np.zeros((40, 43), bool)
        for y in range(40 - height + 1):
            for x in range(43 - width + 1):
                if (image[0, y:y + height, x:x + width] == image[0, y, x]).all():
                    expected[y:y + height, x:x + width] = True
        assert (flat_rectangles(image, height, width) == expected).all()


def test_a_thin_flat_stripe_is_empty_a_short_one_is_not():
    rng = np.random.default_rng(5)
    image = rng.uniform(0.05, 0.2, (1, 200, 300)).astype(np.float32)
    image[0, 50:60, :] = 1.5  # a saturated line across the image, 10 px thick: narrower than a nucleus
    image[0, 120:135, 40:70] = 1.5  # a saturated elongated nucleus, 15 x 30 px
    empty = empty_regions(image, flat_side(20.0, 1.0))  # stripes must be 5 x 100 px
    assert empty[50:60].all()
    assert not empty[120:135, 40:70].any() and not empty[60:].any()


def test_every_channel_must_be_flat():
    image = np.zeros((2, 20, 20), np.float32)
    image[1] = np.random.default_rng(1).normal(size=(20, 20))
    assert not flat_squares(image, 5).any()


def test_dark_flat_areas_are_empty_at_any_size_bright_ones_only_when_larger_than_objects():
    rng = np.random.default_rng(2)
    image = rng.uniform(0.05, 0.2, (1, 200, 200)).astype(np.float32)
    image[0, 0:8, :] = -0.1  # a black band (below the window's low end)
    yy, xx = np.mgrid[0:200, 0:200]
    nucleus = (yy - 60) ** 2 + (xx - 60) ** 2 <= 12**2  # a saturated nucleus, 24 px across: clipped flat
    image[0, nucleus] = 1.5
    image[0, 120:190, 100:190] = 1.5  # a saturated area much larger than a nucleus
    image[0, 120:190, 10:80] = 0.5  # a constant grey area
    empty = empty_regions(image, flat_side(20.0, 1.0))
    assert empty[0:8].all()
    assert not empty[nucleus].any()
    assert empty[120:190, 100:190].all() and empty[120:190, 10:80].all()
    assert empty.sum() == 8 * 200 + 70 * 90 + 70 * 70  # nothing else
    assert DARK_SIDE < flat_side(20.0, 1.0) == 40 and flat_side(20.0, 0.5) == 80 and flat_side(None, 1.0) == 64


def _everywhere_model():
    """An instance model whose network calls every pixel foreground, a nucleus centre everywhere: the worst case."""
    model = new_model("instances", depth=2, base_channels=4)
    model.metadata.update(object_diameter=20.0, auto_band=[0.01, 100.0])
    model.metadata["normalization"]["invert"] = False
    with torch.no_grad():
        for p in model.net.parameters():
            p.zero_()
        model.net.head.bias.fill_(10.0)
    model.net.eval()
    return model


@pytest.mark.parametrize("tile_size", [None, 64])  # one window, and areas that cross many window borders
def test_zero_bands_padding_saturated_and_constant_areas_get_no_objects(tile_size):
    rng = np.random.default_rng(3)
    image = rng.normal(40, 5, (300, 260)).clip(1, 254).astype(np.uint8)
    image[100:140] = 0  # a black gap between rows of tiles
    image[:, 240:] = 0  # zero padding
    image[200:290, 20:120] = 255  # a saturated area
    image[200:290, 150:230] = 90  # a constant patch
    empty = image.copy()
    empty[:] = 0
    empty[100:140] = empty[:, 240:] = empty[200:290, 20:120] = empty[200:290, 150:230] = 1
    labels = segment(image, _everywhere_model(), tile_size=tile_size)
    assert labels.shape == image.shape and labels.max() > 0  # the rest is foreground, as the network says
    assert not labels[empty > 0].any()


def test_tiles_agree_with_the_whole_image_around_empty_areas():
    rng = np.random.default_rng(4)
    image = rng.normal(40, 5, (256, 256)).clip(1, 254).astype(np.uint8)
    image[60:100, 30:200] = 0
    image[150:230, 150:240] = 255
    model = new_model("instances", depth=2, base_channels=4)
    model.metadata["object_diameter"] = 20.0
    model.net.eval()
    whole = segment(image, model, diameter=20.0)
    tiled = segment(image, model, diameter=20.0, tile_size=64)
    assert (whole == tiled).all()


def test_class_models_are_not_masked():
    model = new_model("semantic", depth=2, base_channels=4, num_classes=2)
    with torch.no_grad():
        for p in model.net.parameters():
            p.zero_()
        model.net.head.bias.copy_(torch.tensor([-5.0, 5.0]))  # class 1 everywhere
    model.net.eval()
    image = np.zeros((64, 64), np.uint8)
    image[:, 32:] = 200
    assert (segment(image, model) == 1).all()  # a class model may have learnt a class for such areas
