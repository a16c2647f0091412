"""How an image's axes map to planes and channels, and lazy views that read only what is sliced."""

import dask.array as da
import numpy as np
import pytest
import zarr

from napari_unet_seg.core.inference.layout import (
    PlaneView, WindowView, as_lazy, central_window, channels_first, check_channels, is_rgb, plane_layout,
)


@pytest.mark.parametrize("shape, dtype, expected", [
    ((40, 50, 3), np.uint8, True),
    ((40, 50, 4), np.uint8, True),
    ((2, 40, 50, 3), np.uint8, True),
    ((40, 50, 3), np.uint16, False),  # 16-bit: three channels, not colour
    ((40, 50, 3), np.float32, False),
    ((3, 40, 50), np.uint8, False),  # channels first is not how colour comes
    ((40, 50), np.uint8, False),
    ((40, 50, 5), np.uint8, False),
])
def test_is_rgb(shape, dtype, expected):
    assert is_rgb(np.zeros(shape, dtype)) is expected


@pytest.mark.parametrize("shape, rgb, axis, expected", [
    ((40, 50), False, None, ((), 1, 40, 50)),
    ((7, 40, 50), False, None, ((7,), 1, 40, 50)),
    ((2, 7, 40, 50), False, None, ((2, 7), 1, 40, 50)),
    ((40, 50, 3), True, None, ((), 3, 40, 50)),
    ((5, 40, 50, 4), True, None, ((5,), 4, 40, 50)),
    ((2, 40, 50), False, 0, ((), 2, 40, 50)),
    ((40, 50, 2), False, -1, ((), 2, 40, 50)),
    ((40, 50, 2), False, 2, ((), 2, 40, 50)),
    ((5, 3, 40, 50), False, 1, ((5,), 3, 40, 50)),
    ((3, 5, 40, 50), False, 0, ((5,), 3, 40, 50)),
    ((5, 40, 50, 3), False, -1, ((5,), 3, 40, 50)),
])
def test_plane_layout(shape, rgb, axis, expected):
    assert plane_layout(shape, rgb, axis) == expected


@pytest.mark.parametrize("shape, axis", [
    ((3, 5, 40, 50), 0), ((5, 40, 50, 3), -1), ((40, 6, 50), 1), ((2, 3, 4, 5), -4),
])
def test_plane_layout_agrees_with_channels_first(shape, axis):
    moved = channels_first(np.zeros(shape, np.uint8), axis).shape
    lead, channels, h, w = plane_layout(shape, False, axis)
    assert moved == (*lead, channels, h, w)


@pytest.mark.parametrize("shape, rgb, axis, match", [
    ((40, 50), True, None, "colour axis"),
    ((40,), False, None, "too few dimensions"),
    ((40, 50), False, 0, "no channel axis"),
    ((3, 40, 50), False, 3, "no channel axis"),
    ((3, 40, 50), False, -4, "no channel axis"),
])
def test_plane_layout_errors(shape, rgb, axis, match):
    with pytest.raises(ValueError, match=match):
        plane_layout(shape, rgb, axis)


def test_channels_first_moves_lazily_for_anything_but_numpy(tmp_path):
    data = np.arange(2 * 10 * 12 * 3).reshape(2, 10, 12, 3)
    assert channels_first(data, None) is data
    moved = channels_first(data, -1)
    assert isinstance(moved, np.ndarray) and moved.shape == (2, 3, 10, 12)
    np.testing.assert_array_equal(moved[1, 2], data[1, :, :, 2])
    store = zarr.open_array(str(tmp_path / "x.zarr"), mode="w", shape=data.shape, chunks=(1, 5, 6, 3), dtype="i8")
    store[:] = data
    lazy = channels_first(store, 3)
    assert isinstance(lazy, da.Array) and lazy.shape == (2, 3, 10, 12)
    np.testing.assert_array_equal(np.asarray(lazy), moved)


def test_as_lazy_passes_numpy_and_dask_and_wraps_the_rest(tmp_path):
    array = np.zeros((4, 4))
    dask_array = da.zeros((4, 4), chunks=2)
    assert as_lazy(array) is array and as_lazy(dask_array) is dask_array
    store = zarr.open_array(str(tmp_path / "y.zarr"), mode="w", shape=(64, 48), chunks=(16, 24), dtype="u1")
    wrapped = as_lazy(store)
    assert isinstance(wrapped, da.Array) and wrapped.chunksize == (16, 24)  # the store's own chunks


def test_check_channels():
    check_channels(1, 1, "m")
    check_channels(3, 3, "m")
    check_channels(1, 3, "m")  # colour feeds a gray model
    check_channels(1, 4, "m")
    with pytest.raises(ValueError, match="expects 2 channels but the image has one; choose the image's channel axis"):
        check_channels(2, 1, "two-channel")
    with pytest.raises(ValueError, match="model 'm' expects 3 channel\\(s\\) but the image has 2"):
        check_channels(3, 2, "m")
    with pytest.raises(ValueError, match="model 'm' takes one channel but the image has 2: choose the nuclear "
                                         "channel"):
        check_channels(1, 2, "m")  # two channels are not colour


class Recording:
    """A sliceable source that remembers how many pixels each read returned."""

    def __init__(self, data):
        self.data, self.shape, self.dtype, self.reads = data, data.shape, data.dtype, []

    def __getitem__(self, index):
        out = self.data[index]
        self.reads.append(out.size)
        return out


def test_plane_view_reads_only_what_is_sliced():
    data = np.random.default_rng(0).random((4, 3, 30, 40)).astype(np.float32)
    source = Recording(data)
    view = PlaneView(source, (2, 1))
    assert view.shape == (30, 40) and view.ndim == 2 and view.dtype == np.float32
    assert source.reads == []  # nothing read yet
    window = view[5:10, 7:9]
    assert isinstance(window, np.ndarray)
    np.testing.assert_array_equal(window, data[2, 1, 5:10, 7:9])
    assert source.reads == [10]
    np.testing.assert_array_equal(view[3], data[2, 1, 3])  # one index is a row


def test_window_view_is_a_window_of_its_image():
    image = np.arange(2 * 20 * 30, dtype=np.uint16).reshape(2, 20, 30)
    view = WindowView(image, 4, 14, 5, 25)
    assert view.shape == (2, 10, 20) and view.ndim == 3 and view.dtype == np.uint16
    np.testing.assert_array_equal(view[:, 0:3, 2:6], image[:, 4:7, 7:11])
    np.testing.assert_array_equal(view[:, :, -5:], image[:, 4:14, 20:25])  # open and negative ends stay inside
    np.testing.assert_array_equal(view[:, 8:50, :], image[:, 12:14, 5:25])  # clipped at the window, not the image
    np.testing.assert_array_equal(np.asarray(view), image[:, 4:14, 5:25])
    assert np.asarray(view, dtype=np.float32).dtype == np.float32


def test_central_window():
    image = np.zeros((1, 100, 61))
    window = central_window(image, 40)
    assert (window.y0, window.x0, window.shape) == (30, 10, (1, 40, 40))
    small = central_window(image, 200)  # smaller than the side: all of it
    assert (small.y0, small.x0, small.shape) == (0, 0, (1, 100, 61))
    mixed = central_window(image, 80)
    assert (mixed.y0, mixed.x0, mixed.shape) == (10, 0, (1, 80, 61))


def test_a_short_leading_axis_is_taken_for_channels_by_a_one_channel_model():
    from napari_unet_seg.core.inference.layout import channels_as_planes_note, likely_channel_axis

    assert likely_channel_axis((2, 40, 50), False, None, 1) == 0
    assert likely_channel_axis((10, 2, 40, 50), False, None, 1) == 1  # a movie's channels
    assert likely_channel_axis((3, 2, 40, 50), False, None, 1) == 1  # both short: ImageJ puts C last (T Z C Y X)
    assert likely_channel_axis((9, 40, 50), False, None, 1) is None  # a stack
    assert likely_channel_axis((10, 2, 40, 50), False, 1, 1) is None  # channels already chosen
    assert likely_channel_axis((2, 40, 50), False, None, 2) is None  # a two-channel model takes them
    assert likely_channel_axis((40, 50, 3), True, None, 1) is None  # colour
    assert "planes along axis 1 were segmented one by one" in channels_as_planes_note((10, 2, 40, 50), False, None, 1)
