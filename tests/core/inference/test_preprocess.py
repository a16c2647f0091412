import dask.array as da
import numpy as np
import pytest

from scipy import ndimage as ndi

from napari_unet_seg.core.inference.preprocess import PreparedImage, fit_normalization, lower_spikes, noise_level

DENOISE = {"above": 0.035, "sigma": 0.55}


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


def test_lone_bright_pixels_are_lowered_but_blobs_and_lines_are_not():
    raw = np.zeros((1, 20, 20), np.float32)
    raw[0, 3, 3] = 100  # a hot pixel
    raw[0, 10:12, 10:12] = 100  # the smallest blob: 2x2
    raw[0, 16, 2:18] = 100  # a one-pixel-wide line
    raw[0, 0, 19] = 100  # a hot pixel in the corner
    out = lower_spikes(raw, np.array([25.0]))
    assert out[0, 3, 3] == 0 and out[0, 0, 19] == 0
    assert (out[0, 10:12, 10:12] == 100).all() and (out[0, 16, 2:18] == 100).all()
    assert np.array_equal(lower_spikes(raw, np.array([100.0])), raw)  # not above the threshold: kept


def test_despiked_windows_agree_with_the_whole_image():
    rng = np.random.default_rng(0)
    image = rng.normal(100, 5, (70, 90)).astype(np.float32)
    image[3::7, 4::9] = 5000  # isolated hot pixels, some on window edges
    image[0, 10] = image[69, 50] = image[30, 0] = image[40, 89] = 5000  # and on the image's edges
    prepared = PreparedImage(image, in_channels=1, normalization_settings={"despike": 0.25})
    whole = np.asarray(prepared)
    assert whole.max() < 2  # every hot pixel lowered, wherever it is
    for ys, xs in [(slice(0, 32), slice(0, 41)), (slice(31, 70), slice(40, 90)), (slice(3, 4), slice(0, 90))]:  # edges on hot pixels
        np.testing.assert_array_equal(prepared[:, ys, xs], whole[:, ys, xs])


def test_hot_pixels_do_not_stretch_the_intensity_window():
    rng = np.random.default_rng(1)
    clean = rng.normal(100, 3, (100, 100))
    clean[20:40, 20:40] = 1000  # a nucleus
    hot = clean.copy()
    hot[rng.random(hot.shape) < 0.005] = 60000  # 0.5 % hot pixels: more than the top 0.2 % the window ignores
    fitted = fit_normalization(hot[None], {"despike": 0.25})
    assert fitted.high[0] == pytest.approx(fit_normalization(clean[None], {}).high[0], rel=0.05)
    assert fit_normalization(hot[None], {}).high[0] > 10000  # without despiking the hot pixels set the window


def test_confluent_or_saturated_fluorescence_is_not_inverted_but_a_stain_is():
    rng = np.random.default_rng(2)
    yy, xx = np.mgrid[0:128, 0:128]
    confluent = ((yy % 16 - 8) ** 2 + (xx % 16 - 8) ** 2) < 60  # ~75 % of the field
    texture = rng.uniform(0.3, 1.0, (128, 128))  # nuclei of all brightnesses, as real ones
    fluorescence = np.where(confluent, 1000 * texture, 100 + rng.normal(0, 3, (128, 128)))
    assert confluent.mean() > 0.7 and np.median(fluorescence) > 500  # a median test alone would invert it
    assert not fit_normalization(fluorescence[None], {"invert": "auto"}).invert
    sparse = ((yy % 32 - 16) ** 2 + (xx % 32 - 16) ** 2) < 70  # ~20 % of the field
    dense = ((yy % 20 - 10) ** 2 + (xx % 20 - 10) ** 2) < 45  # ~35 %
    saturated = np.where(dense, 255, 20 + 130 * xx / 127 + rng.normal(0, 2, (128, 128)))  # clipped, uneven background
    assert np.mean(saturated >= 255) > 0.3  # more pixels at the top than near the bottom: a tail test alone inverts
    assert not fit_normalization(saturated[None], {"invert": "auto"}).invert
    stained = np.where(sparse, 200 - 150 * texture, 230 + rng.normal(0, 2, (128, 128)))  # dark nuclei on white
    assert fit_normalization(stained[None], {"invert": "auto"}).invert


def test_despiking_works_in_the_networks_polarity_and_on_large_images():
    rng = np.random.default_rng(3)
    brightfield = rng.normal(200, 2, (64, 64))
    brightfield[20:30, 20:30] = 80  # a dark nucleus
    brightfield[5, 50] = 0  # a dead pixel: bright once inverted
    prepared = PreparedImage(brightfield, in_channels=1, normalization_settings={"despike": 0.25})
    assert prepared.normalization.invert and np.asarray(prepared).max() < 1.2
    large = rng.normal(100, 3, (2100, 2100)).astype(np.float32)  # over the 4 M pixels sampled with a stride
    large[::40, ::40] = 1000  # nuclei, as blobs
    large[1::40, ::40] = large[::40, 1::40] = large[1::40, 1::40] = 1000
    hot = large.copy()
    hot[7::13, 5::11] = 60000  # ~0.7 % hot pixels
    clean_high = fit_normalization(large[None], {}).high[0]
    assert fit_normalization(hot[None], {"despike": 0.25}).high[0] == pytest.approx(clean_high, rel=0.05)


def test_window_steps_and_bad_despike_values():
    image = np.arange(100 * 120, dtype=np.float32).reshape(100, 120) % 97
    prepared = PreparedImage(image, in_channels=1, normalization_settings={"despike": 0.25})
    whole = np.asarray(prepared)
    np.testing.assert_array_equal(prepared[:, ::2, 3:90:3], whole[:, ::2, 3:90:3])
    np.testing.assert_array_equal(prepared[:, ::-1, :], whole[:, ::-1, :])
    for bad in (-0.1, 1.5, "yes"):
        with pytest.raises(ValueError, match="despike"):
            PreparedImage(image, in_channels=1, normalization_settings={"despike": bad})


def _nuclei_field(shape=(120, 150), seed=0):
    """Smooth blobs on a dark background, 0..1: structure without pixel noise."""
    rng = np.random.default_rng(seed)
    field = np.zeros(shape, np.float32)
    field[tuple(rng.integers(0, s, 40) for s in shape)] = 1
    field = ndi.gaussian_filter(ndi.maximum_filter(field, 9), 2)
    return field / field.max()


def test_noise_level_measures_pixel_noise_not_nuclei():
    field = _nuclei_field()
    assert noise_level([field[None]]) < 0.005  # edges and blobs are not noise
    rng = np.random.default_rng(1)
    for sigma in (0.02, 0.08):
        noisy = field + rng.normal(0, sigma, field.shape).astype(np.float32)
        assert noise_level([noisy[None]]) == pytest.approx(sigma, rel=0.15)


def test_only_noisy_images_are_smoothed():
    field = 1000 * _nuclei_field()
    rng = np.random.default_rng(2)
    settings = {"despike": 0.25, "denoise": DENOISE}
    clean = fit_normalization((field + rng.normal(0, 5, field.shape))[None], settings)
    noisy = fit_normalization((field + rng.normal(0, 80, field.shape))[None], settings)
    assert clean.smooth == 0 and noisy.smooth == DENOISE["sigma"]
    assert fit_normalization((field + rng.normal(0, 80, field.shape))[None], {"despike": 0.25}).smooth == 0  # not asked
    raw = (field + rng.normal(0, 80, field.shape)).astype(np.float32)
    smoothed = np.asarray(PreparedImage(raw, in_channels=1, normalization_settings=settings))
    plain = np.asarray(PreparedImage(raw, in_channels=1, normalization_settings={"despike": 0.25}))
    truth = (field - field.min()) / (np.ptp(field))
    assert np.abs(smoothed - truth).std() < 0.8 * np.abs(plain - truth).std()  # closer to the noiseless field


def test_smoothed_windows_agree_with_the_whole_image():
    rng = np.random.default_rng(3)
    image = (1000 * _nuclei_field((70, 90)) + rng.normal(0, 100, (70, 90))).astype(np.float32)
    image[3::7, 4::9] = 9000  # hot pixels, some on window edges
    prepared = PreparedImage(image, in_channels=1,
                             normalization_settings={"despike": 0.25, "denoise": {"above": 0.035, "sigma": 1.5}})
    assert prepared.normalization.smooth == 1.5 and prepared.normalization.context == 1 + 6
    whole = np.asarray(prepared)
    for ys, xs in [(slice(0, 32), slice(0, 41)), (slice(31, 70), slice(40, 90)), (slice(3, 4), slice(0, 90)),
                   (slice(10, 12), slice(5, 7))]:
        np.testing.assert_array_equal(prepared[:, ys, xs], whole[:, ys, xs])
    np.testing.assert_array_equal(prepared[:, ::2, 3:90:3], whole[:, ::2, 3:90:3])


def test_large_noisy_images_are_judged_on_full_resolution_patches():
    rng = np.random.default_rng(4)
    field = np.tile(1000 * _nuclei_field((256, 256)), (9, 9))  # 2304 x 2304: over the strided-sample limit
    noisy = field + rng.normal(0, 80, field.shape)
    clean = field + rng.normal(0, 5, field.shape)
    assert fit_normalization(noisy[None], {"denoise": DENOISE}).smooth == DENOISE["sigma"]
    assert fit_normalization(clean[None], {"denoise": DENOISE}).smooth == 0


@pytest.mark.parametrize("bad", [0.05, {"above": 0.035}, {"above": 0, "sigma": 1}, {"above": 0.03, "sigma": 9},
                                 {"above": "x", "sigma": 1}])
def test_bad_denoise_settings_are_refused_clearly(bad):
    with pytest.raises(ValueError, match="denoise"):
        PreparedImage(np.zeros((8, 8)), in_channels=1, normalization_settings={"denoise": bad})
