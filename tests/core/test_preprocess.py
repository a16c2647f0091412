import dask.array as da
import numpy as np
import pytest

from napari_unet_seg.core.preprocess import PreparedImage, fit_normalization


def test_percentiles_computed_once_for_the_whole_image():
    image = np.zeros((100, 100), np.uint16)
    image[:, 50:] = 1000
    prepared = PreparedImage(image, in_channels=1, normalization_settings={"low": 1, "high": 99})
    left = prepared[:, 0:10, 0:10]
    right = prepared[:, 0:10, 60:70]
    assert left.max() == pytest.approx(0.0) and right.min() == pytest.approx(1.0)


def test_bright_background_is_inverted_dark_is_not():
    rng = np.random.default_rng(0)
    dark = rng.normal(10, 1, (64, 64))
    dark[10:20, 10:20] = 200
    bright = 255 - dark
    settings = {"invert": "auto"}
    assert not fit_normalization(dark[None], settings).invert
    assert fit_normalization(bright[None], settings).invert
    assert not fit_normalization(bright[None], {"invert": False}).invert


def test_rgb_reduced_to_gray_and_lazy_dask():
    rgb = np.zeros((30, 40, 3), np.uint8)
    rgb[5:10, 5:10] = (255, 255, 255)
    p = PreparedImage(da.from_array(rgb, chunks=(16, 16, 3)), in_channels=1, normalization_settings={"invert": False}, rgb=True)
    assert p.shape == (1, 30, 40)
    window = p[:, 0:12, 0:12]
    assert window.shape == (1, 12, 12) and window[0, 6, 6] > window[0, 0, 0]


def test_channel_mismatch_is_clear():
    with pytest.raises(ValueError, match="expects 2 channel"):
        PreparedImage(np.zeros((5, 8, 8)), in_channels=2, normalization_settings={})


def test_constant_image_does_not_divide_by_zero():
    p = PreparedImage(np.full((8, 8), 7, np.uint8), in_channels=1, normalization_settings={})
    assert np.isfinite(np.asarray(p)).all()
