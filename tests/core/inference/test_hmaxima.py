"""The fast h-maxima must be scikit-image's, bit for bit, wherever seeds are wanted."""

import numpy as np
import pytest
from scipy import ndimage as ndi
from skimage.morphology import h_maxima

from napari_unet_seg.core.inference import hmaxima
from napari_unet_seg.core.inference.hmaxima import h_maxima_within


def reference(image, h, where):
    return h_maxima(image, h).astype(bool) & where


@pytest.fixture
def fast_path_only(monkeypatch):
    """Every local maximum decided by the window test; a fallback to scikit-image fails the test."""
    monkeypatch.setattr(hmaxima, "MAX_SHARE", 1.0)
    monkeypatch.setattr(hmaxima, "MAX_WORK", 10**9)

    def no_fallback(*args):
        raise AssertionError("fell back to the whole-image reconstruction")

    monkeypatch.setattr(hmaxima, "_reference", no_fallback)


def random_case(rng, kind):
    shape = tuple(int(n) for n in rng.integers(1, 70, 2))
    if kind == "smooth":
        image = ndi.gaussian_filter(rng.random(shape), rng.uniform(0.5, 4)).astype(np.float32)
    elif kind == "ties":  # plateaus and equal neighbours everywhere
        image = rng.integers(0, 5, shape).astype(np.float32)
    elif kind == "float64":
        image = ndi.gaussian_filter(rng.random(shape), 2) * 1000
    elif kind == "rounded":
        image = np.round(ndi.gaussian_filter(rng.random(shape), 1.5), 2).astype(np.float32)
    elif kind == "tiny values":
        image = (rng.random(shape).astype(np.float32) - 0.5) * 1e-3
    else:  # faint peaks a little above h over a flat zero background: thresholds near 0
        image = np.zeros(shape, np.float32)
        image[rng.random(shape) < 0.05] = rng.uniform(0.09, 0.11)
        return ndi.gaussian_filter(image, 1), 0.1 * max(float(image.max()), 1e-3)
    return image, float(rng.choice([0.05, 0.1, 0.3, 1.0, 1e-4]) * (np.ptp(image) + 1e-9) * rng.uniform(0.2, 1.5))


@pytest.mark.parametrize("kind", ["smooth", "ties", "float64", "rounded", "tiny values", "faint peaks"])
def test_random_images_give_scikit_images_mask(kind, fast_path_only):
    rng = np.random.default_rng(abs(hash(kind)) % 2**32)
    for _ in range(60):
        image, h = random_case(rng, kind)
        where = rng.random(image.shape) < 0.7
        np.testing.assert_array_equal(h_maxima_within(image, h, where), reference(image, h, where))


def test_a_real_centre_map_gives_the_same_seeds(fast_path_only):
    """The built-in model's centre map of a sample image, thresholded as post-processing does."""
    from napari_unet_seg import load_model
    from napari_unet_seg._sample_data import _pair, sample_stems
    from napari_unet_seg.core.inference.postprocess import _maps
    from napari_unet_seg.core.inference.prediction import predict_network

    image, _ = _pair(sample_stems()[0])
    logits = predict_network(load_model("nuclei"), image[:256, :256]).image_logits
    foreground, centre = _maps(logits, 0.5, 1.0)
    expected = reference(centre, 0.1, foreground)
    assert expected.sum() > 10
    np.testing.assert_array_equal(h_maxima_within(centre, 0.1, foreground), expected)


@pytest.mark.parametrize("image, h", [
    (np.zeros((5, 7), np.float32), 0.1),  # h above the range: nothing
    (np.full((1, 1), 0.5, np.float32), 0.1),
    (np.array([[0.0, 1.0, 0.0]], np.float32), 0.5),
    (np.array([[0.2, 0.2], [0.2, 0.2]], np.float32), 0.1),
])
def test_degenerate_images(image, h):
    where = np.ones(image.shape, bool)
    np.testing.assert_array_equal(h_maxima_within(image, h, where), reference(image, h, where))


def test_what_it_does_not_speed_up_is_scikit_images_own_answer():
    """Integers and too many maxima go to scikit-image itself; NaN is refused (scikit-image crashes on it)."""
    rng = np.random.default_rng(3)
    where = np.ones((40, 40), bool)
    for image in (rng.integers(0, 9, (40, 40)), rng.random((40, 40)).astype(np.float32)):
        np.testing.assert_array_equal(h_maxima_within(image, 2, where), reference(image, 2, where))
    with_nan = rng.random((40, 40)).astype(np.float32)
    with_nan[3, 3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        h_maxima_within(with_nan, 0.2, where)


def shifted(values, h):
    values = np.asarray(values, np.float32)
    return values - h - 2 * np.finfo(np.float32).resolution * np.abs(values)


@pytest.mark.parametrize("v, h", [(0.9, 0.1), (0.35, 0.1), (0.12, 0.1), (5.0, 1.0)])
def test_values_one_step_either_side_of_the_threshold(v, h, fast_path_only):
    """A saddle exactly at the threshold, one float step above it, and a peak whose shifted value equals it.

    Random images almost never land on these; an off-by-one-step threshold or a
    >= where scikit-image means > would only show here.
    """
    value = np.array([v], np.float32)
    t = hmaxima._threshold(value, h)[0]
    step_up = np.nextafter(t, np.float32(np.inf))
    higher = np.float32(v + 0.5)
    # a peak q whose shifted value is exactly t
    start = np.float32(t + h)
    exact = [w for w in (start + np.arange(-3000, 3000, dtype=np.float32) * np.spacing(start)).astype(np.float32)
             if shifted([w], h)[0] == t]
    cases = [[v, t, higher], [v, step_up, higher], [v, np.float32((v + t) / 2), higher]]
    cases += [[v, np.float32((v + t) / 2), exact[0]]] if exact else []
    for row in cases:
        image = np.array([[0, *row]], np.float32)  # the 0 gives the image a range above h
        where = np.ones(image.shape, bool)
        np.testing.assert_array_equal(h_maxima_within(image, h, where), reference(image, h, where), str(row))


def test_h_of_another_numeric_type_gives_scikit_images_mask():
    """An np.float64 or integer h makes scikit-image's seed float64, which it then stores as float32."""
    image = np.full((10, 10), -2, np.float32)
    image[5, 5] = 1e-8
    where = np.zeros(image.shape, bool)
    where[5, 5] = True
    for h in (np.float64(1.0), np.int64(1), 1.0, np.float32(1.0)):
        np.testing.assert_array_equal(h_maxima_within(image, h, where), reference(image, h, where), repr(h))


def test_an_h_that_is_zero_in_float32_lets_every_pixel_pass_as_in_scikit_image():
    image = np.arange(100, dtype=np.float32).reshape(10, 10)
    where = np.ones(image.shape, bool)
    np.testing.assert_array_equal(h_maxima_within(image, 1e-50, where), reference(image, 1e-50, where))


@pytest.mark.parametrize("dtype", [np.float16, ">f4", ">f8", np.longdouble])
def test_other_float_types_are_scikit_images_own_answer(dtype):
    image = np.zeros((10, 10), dtype)
    image[5, 5], image[2, 2] = 1.0, 2.0
    for where in (np.ones(image.shape, bool), np.arange(100).reshape(10, 10) == 55):
        np.testing.assert_array_equal(h_maxima_within(image, 0.99, where), reference(image, 0.99, where))


def test_a_non_finite_h_is_refused_not_passed_on_to_crash():
    with pytest.raises(ValueError, match="finite"):
        h_maxima_within(np.zeros((4, 4), np.float32), float("nan"), np.ones((4, 4), bool))


def test_maxima_whose_windows_grow_over_the_image_hand_over_to_scikit_image(monkeypatch):
    """Equal peaks on a gentle ramp, h above their height: each maximum's component is the whole image."""
    n, spacing = 200, 8
    yy, xx = np.mgrid[0:n, 0:n]
    image = (1.2e-5 * (yy + xx)).astype(np.float32)
    image[0, 0] = -0.01
    image[spacing // 2:n - 1:spacing, spacing // 2:n - 1:spacing] = 0.1
    where = np.ones(image.shape, bool)
    labelled = []
    label = hmaxima.ndi.label

    def counting(mask, structure=None):
        labelled.append(mask.size)
        return label(mask, structure=structure)

    monkeypatch.setattr(hmaxima.ndi, "label", counting)
    np.testing.assert_array_equal(h_maxima_within(image, 0.1, where), reference(image, 0.1, where))
    assert sum(labelled) <= (hmaxima.MAX_WORK + 1) * image.size  # without the budget: ~600 images' worth
