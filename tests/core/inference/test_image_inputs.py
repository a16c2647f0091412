"""Any image a user can hand the pipeline gives labels of its shape, or one clear ValueError line.

Property-based (hypothesis): every numeric dtype, odd and tiny shapes,
stacks, colour and channel axes, constant images, NaN and infinities,
extreme values. Never a hang, never another exception type.
"""

from __future__ import annotations

import faulthandler
import sys

import numpy as np
import pytest
import torch
from helpers import randomize_batchnorm
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from napari_unet_seg.core.inference.options import RunOptions
from napari_unet_seg.core.inference.pipeline import segment, segment_image
from napari_unet_seg.core.inference.prediction import BLANK_NOTE
from napari_unet_seg.core.inference.preprocess import as_float32
from napari_unet_seg.core.model.modelfile import new_model

DTYPES = [np.bool_, np.uint8, np.uint16, np.uint32, np.uint64, np.int8, np.int16, np.int32, np.int64,
          np.float16, np.float32, np.float64]
FILLS = ["random", "constant", "extremes", "huge", "negative", "nan", "inf", "-inf", "mixed non-finite", "some nan"]
# float32/float64 pixels beyond ~1e38 once overflowed float32 arithmetic in preprocess.py (NaN network input, 0
# objects, or "infinite pixels" said of finite ones); preprocess.FLOAT_LIMIT now clips them, and
# test_every_dtype_at_its_extremes_gives_labels_without_overflow below holds that
SETTINGS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(autouse=True)
def no_hang():
    """A hang (as the seed search once did on NaN maps) ends the run with a traceback instead of waiting forever."""
    faulthandler.dump_traceback_later(300, exit=True, file=sys.__stderr__)
    yield
    faulthandler.cancel_dump_traceback_later()


def tiny(in_channels: int = 1, object_diameter: float | None = None):
    torch.manual_seed(in_channels)
    model = new_model("instances", in_channels=in_channels, depth=2, base_channels=4)
    randomize_batchnorm(model.net)
    model.metadata["object_diameter"] = object_diameter
    model.net.eval()
    return model


MODELS = {(1, None): tiny(1), (1, 12.0): tiny(1, 12.0), (3, None): tiny(3)}


def fill(shape: tuple[int, ...], dtype: type, how: str, seed: int) -> np.ndarray:
    """An image of ``shape`` and ``dtype`` filled as ``how`` says (non-finite fills only apply to floats)."""
    rng = np.random.default_rng(seed)
    info = np.finfo(dtype) if np.issubdtype(dtype, np.floating) else (np.iinfo(dtype) if dtype is not np.bool_ else None)
    if dtype is np.bool_:
        return rng.random(shape) > (0.5 if how == "random" else 2.0 if how == "constant" else -1.0)
    if how == "constant":
        return np.full(shape, 7, dtype)
    if how == "extremes":  # the type's own ends, side by side
        return np.where(rng.random(shape) > 0.5, info.max, info.min).astype(dtype)
    if how == "huge":  # far beyond any camera: 1e30 for float32, 1e300 for float64, the top of the range for ints
        top = {np.float16: 6e4, np.float32: 1e30, np.float64: 1e300}.get(dtype, float(info.max) if info else 1)
        return (top * (0.5 + 0.5 * rng.random(shape))).astype(dtype)
    if how == "negative":
        low = info.min if np.issubdtype(dtype, np.integer) else -1e4
        return rng.uniform(max(float(low), -1e4), 0, shape).astype(dtype)
    image = (rng.random(shape) * min(float(info.max), 1000.0)).astype(dtype)
    if np.issubdtype(dtype, np.floating):
        if how in ("nan", "inf", "-inf"):
            image[...] = float(how)
        elif how == "mixed non-finite":
            image = rng.choice(np.array([np.nan, np.inf, -np.inf], dtype), shape)
        elif how == "some nan":
            image.flat[rng.integers(0, image.size, max(1, image.size // 10))] = np.nan
    return image


def plane_shapes():
    """Tiny, thin (1xN, Nx1) and odd plane sizes."""
    side = st.integers(1, 37)
    return st.one_of(st.tuples(side, side), st.tuples(st.just(1), side), st.tuples(side, st.just(1)))


def check(run, expected_shape: tuple[int, ...]) -> None:
    """Labels of ``expected_shape`` and an integer dtype, or a ValueError of one line."""
    try:
        labels = run()
    except ValueError as exc:
        text = str(exc)
        assert text and "\n" not in text, repr(text)
        return
    labels = np.asarray(labels)
    assert labels.shape == expected_shape
    assert labels.dtype in (np.uint16, np.uint32)


@SETTINGS
@given(dtype=st.sampled_from(DTYPES), shape=plane_shapes(), how=st.sampled_from(FILLS),
       lead=st.sampled_from([(), (2,), (1, 2)]), diameter=st.sampled_from([None, 12.0]), seed=st.integers(0, 3))
def test_grey_planes_and_stacks_of_every_dtype(dtype, shape, how, lead, diameter, seed):
    image = fill(lead + shape, dtype, how, seed)
    model = MODELS[(1, diameter)]
    # rgb=None would guess colour for a uint8 (..., 3|4) grey stack, as documented; say it is grey
    check(lambda: segment_image(image, RunOptions(device="cpu"), model=model, rgb=False).labels, lead + shape)


@SETTINGS
@given(dtype=st.sampled_from(DTYPES), shape=plane_shapes(), how=st.sampled_from(FILLS),
       colours=st.sampled_from([3, 4]), lead=st.sampled_from([(), (2,)]), seed=st.integers(0, 3))
def test_rgb_and_rgba_of_every_dtype(dtype, shape, how, colours, lead, seed):
    image = fill(lead + shape + (colours,), dtype, how, seed)
    rgb = None if dtype is np.uint8 else True  # 8-bit colour is recognised without being told
    check(lambda: segment(image, MODELS[(3, None)], rgb=rgb, device="cpu"), lead + shape)


@SETTINGS
@given(dtype=st.sampled_from(DTYPES), shape=plane_shapes(), how=st.sampled_from(FILLS),
       axis=st.integers(0, 2), channels=st.sampled_from([1, 3]), seed=st.integers(0, 3))
def test_channel_axes_anywhere(dtype, shape, how, axis, channels, seed):
    """A (C, H, W), (H, C, W) or (H, W, C) image; a 1-channel image given to a 3-channel model is refused."""
    full = list(shape)
    full.insert(axis, channels)
    image = fill(tuple(full), dtype, how, seed)
    check(lambda: segment(image, MODELS[(3, None)], channel_axis=axis, device="cpu"), shape)


@pytest.mark.parametrize("dtype, how", [(d, h) for d in DTYPES for h in ("extremes", "huge")])
def test_every_dtype_at_its_extremes_gives_labels_without_overflow(dtype, how):
    """Not only "no crash": the extremes of every dtype are segmented, with no overflow on the way (no NaN input)."""
    image = fill((20, 23), dtype, how, 0)
    result = segment_image(image, RunOptions(device="cpu"), model=MODELS[(1, None)])
    assert result.labels.shape == (20, 23)
    # every pixel is finite: nothing to say about NaN or infinities; an image read as one value is said to be
    # blank (bool "extremes" are all True; float64 "huge" pixels are all beyond float32's range, read as 1e37)
    read = as_float32(image)
    assert result.notes == ([BLANK_NOTE] if read.min() == read.max() else [])


@pytest.mark.parametrize("image, words", [
    (np.ones((8, 8), np.complex64), "complex"),
    (np.ones((8, 8)).astype(str), "must be numbers"),
    (np.zeros((8, 8), "datetime64[s]"), "must be numbers"),
    (np.ones((8, 8), object), "must be numbers"),
])
def test_pixels_that_are_not_numbers_are_refused_in_one_line(image, words):
    with pytest.raises(ValueError, match=words):
        segment_image(image, RunOptions(device="cpu"), model=MODELS[(1, None)])


def test_a_nested_list_is_an_image():
    assert segment(np.ones((9, 11)).tolist(), MODELS[(1, None)], device="cpu").shape == (9, 11)


@pytest.mark.parametrize("how", ["nan", "inf", "-inf", "mixed non-finite", "some nan"])
def test_non_finite_images_give_labels_and_a_note(how):
    image = fill((2, 24, 31), np.float32, how, 1)
    result = segment_image(image, RunOptions(device="cpu"), model=MODELS[(1, 12.0)])
    assert result.labels.shape == (2, 24, 31)
    assert any("NaN or infinite" in note for note in result.notes)
