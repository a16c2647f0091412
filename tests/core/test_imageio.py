"""Reading user files: TIFF/PNG/JPEG as before, zarr and OME-Zarr lazily, with pixel sizes; clear errors."""

import numpy as np
import pytest
import tifffile
import zarr

from napari_unet_seg.core.imageio import ImageReadError, read_image, write_labels_tiff


def test_plain_zarr_array_is_lazy(tmp_path):
    data = np.arange(60 * 50, dtype=np.uint16).reshape(60, 50)
    z = zarr.open_array(str(tmp_path / "a.zarr"), mode="w", shape=data.shape, chunks=(32, 32), dtype=data.dtype)
    z[:] = data
    z.attrs["pixel_size"] = [0.4, 0.3]
    image = read_image(tmp_path / "a.zarr")
    assert image.lazy and not image.rgb and not image.stack
    assert image.pixel_size == (0.4, 0.3)
    np.testing.assert_array_equal(np.asarray(image.data[10:20, 5:9]), data[10:20, 5:9])


def test_ome_zarr_axes_scale_and_channels(tmp_path):
    root = zarr.open_group(str(tmp_path / "img.ome.zarr"), mode="w")
    data = np.random.default_rng(0).integers(0, 255, (1, 2, 1, 40, 30), dtype=np.uint8)
    arr = root.create_array("0", shape=data.shape, dtype=data.dtype, chunks=(1, 1, 1, 20, 20))
    arr[:] = data
    root.attrs["multiscales"] = [{
        "version": "0.4",
        "axes": [{"name": n} for n in "tczyx"],
        "datasets": [{"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [1, 1, 2, 0.65, 0.65]}]}],
    }]
    image = read_image(tmp_path / "img.ome.zarr")
    assert image.data.shape == (2, 40, 30) and image.channel_axis == -3 and not image.stack
    assert image.pixel_size == (0.65, 0.65)
    np.testing.assert_array_equal(np.asarray(image.data), data[0, :, 0])


def test_zarr_stack_and_rgb(tmp_path):
    stack = zarr.open_array(str(tmp_path / "s.zarr"), mode="w", shape=(3, 20, 20), dtype="f4")
    assert read_image(tmp_path / "s.zarr").stack
    rgb = zarr.open_array(str(tmp_path / "rgb.zarr"), mode="w", shape=(20, 20, 3), dtype="u1")
    assert read_image(tmp_path / "rgb.zarr").rgb
    del stack, rgb


@pytest.mark.parametrize("make", ["empty_group", "not_zarr", "bad_shape"])
def test_bad_zarr_is_one_line(tmp_path, make):
    path = tmp_path / "x.zarr"
    if make == "empty_group":
        zarr.open_group(str(path), mode="w")
    elif make == "not_zarr":
        path.mkdir()
        (path / "zarr.json").write_text("{not json")
    else:
        zarr.open_array(str(path), mode="w", shape=(2, 3, 20, 20, 5), dtype="u1")
    with pytest.raises(ImageReadError) as info:
        read_image(path)
    assert "\n" not in str(info.value) and "x.zarr" in str(info.value)


def test_tiff_pixel_size_round_trip(tmp_path):
    tifffile.imwrite(tmp_path / "a.tif", np.zeros((8, 9), np.uint8), resolution=(1 / 0.25, 1 / 0.5), imagej=True,
                     metadata={"unit": "um"})
    image = read_image(tmp_path / "a.tif")
    assert image.pixel_size == pytest.approx((0.5, 0.25)) and not image.lazy
    out = write_labels_tiff(tmp_path / "o.tif", np.ones((8, 9), np.uint16), image.pixel_size)
    assert read_image(out).pixel_size == pytest.approx((0.5, 0.25))


def test_imagej_hyperstacks_of_channels_keep_their_channels_and_a_lone_cyx_stays_a_stack(tmp_path):
    """ZCYX: the channels before the plane (it was unreadable); (N, H, W) saying C stays a stack: tifffile writes
    every ImageJ stack as channels, so only a channel asked for makes it channels (batch.files.with_channels)."""

    from napari_unet_seg.core.batch.files import with_channels
    from napari_unet_seg.core.inference.options import RunOptions

    zcyx = np.arange(3 * 2 * 5 * 7, dtype=np.uint16).reshape(3, 2, 5, 7)
    tifffile.imwrite(tmp_path / "z.tif", zcyx, imagej=True, metadata={"axes": "ZCYX"})
    image = read_image(tmp_path / "z.tif")
    assert image.channel_axis == -3 and image.stack and image.plane_shape == (5, 7)
    np.testing.assert_array_equal(image.data, zcyx)
    tifffile.imwrite(tmp_path / "c.tif", zcyx[0], imagej=True)
    lone = read_image(tmp_path / "c.tif")
    assert lone.channel_axis is None and lone.stack
    assert with_channels(lone, RunOptions()) is lone
    asked = with_channels(lone, RunOptions(channel=1))
    assert asked.channel_axis == -3 and not asked.stack and asked.plane_shape == (5, 7)
    tifffile.imwrite(tmp_path / "z.tif", np.zeros((9, 5, 7), np.uint16), imagej=True, metadata={"axes": "ZYX"})
    deep = read_image(tmp_path / "z.tif")
    assert with_channels(deep, RunOptions(channel=1)) is deep  # nine slices are no channels: refused, not sliced
