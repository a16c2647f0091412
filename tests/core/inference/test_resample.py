"""Resizing on the whole image's grid: any window gives the whole image's values, bit for bit."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from napari_unet_seg.core.inference.resample import resample, source_span


@pytest.mark.parametrize("factor", [0.37, 0.5, 0.82, 1.0, 1.3, 2.5])
def test_the_filter_is_torchs_bilinear_pixel_centre_to_pixel_centre(factor):
    """What the network was trained on: F.interpolate's bilinear (antialiased when shrinking) at this factor."""
    x = np.random.default_rng(0).random((2, 61, 47)).astype(np.float32)
    shrink = factor < 1
    reference = F.interpolate(torch.from_numpy(x)[None], scale_factor=factor, mode="bilinear", align_corners=False,
                              antialias=shrink, recompute_scale_factor=False)[0].numpy()
    h, w = reference.shape[-2:]
    ours = resample(x, factor, rows=(0, h), cols=(0, w), antialias=shrink)
    np.testing.assert_allclose(ours, reference, atol=1e-4)


@settings(max_examples=40, deadline=None)
@given(factor=st.sampled_from([0.3, 0.55, 0.82, 1.0, 1.25, 2.4, 4.0]), data=st.data())
def test_any_window_gives_the_whole_images_values_exactly(factor, data):
    x = np.random.default_rng(1).normal(size=(1, 53, 41)).astype(np.float32)
    antialias = factor < 1
    h, w = max(1, round(53 * factor)), max(1, round(41 * factor))
    whole = resample(x, factor, rows=(0, h), cols=(0, w), antialias=antialias)
    r0 = data.draw(st.integers(0, h - 1))
    r1 = data.draw(st.integers(r0 + 1, h))
    c0 = data.draw(st.integers(0, w - 1))
    c1 = data.draw(st.integers(c0 + 1, w))
    a, b = source_span(r0, r1, factor, 53, antialias=antialias)
    c, d = source_span(c0, c1, factor, 41, antialias=antialias)
    window = resample(x[:, a:b, c:d], factor, rows=(r0, r1), cols=(c0, c1), origin=(a, c), full_shape=(53, 41),
                      antialias=antialias)
    np.testing.assert_array_equal(window, whole[:, r0:r1, c0:c1])


def test_a_window_missing_taps_is_refused_not_guessed():
    x = np.zeros((1, 40, 40), np.float32)
    with pytest.raises(ValueError, match="lacks taps"):
        resample(x[:, 10:20, :], 0.5, rows=(0, 10), cols=(0, 20), origin=(10, 0), full_shape=(40, 40),
                 antialias=True)


def test_per_axis_size_factors_give_torchs_resize_to_a_size():
    """The pipeline resizes to rounded sizes, as F.interpolate(size=...) does: same geometry, per axis."""
    from napari_unet_seg.core.inference.resample import size_factors

    x = np.random.default_rng(2).random((1, 61, 47)).astype(np.float32)
    for size in ((47, 36), (150, 118)):
        shrink = size[0] < 61
        reference = F.interpolate(torch.from_numpy(x)[None], size=size, mode="bilinear", align_corners=False,
                                  antialias=shrink)[0].numpy()
        ours = resample(x, size_factors((61, 47), size), rows=(0, size[0]), cols=(0, size[1]), antialias=shrink)
        np.testing.assert_allclose(ours, reference, atol=1e-4)
