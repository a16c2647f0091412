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


PIXEL = 0.5  # µm, stated every way files state it


@pytest.mark.parametrize("case, kwargs, expected", [
    ("imagej nm", dict(imagej=True, resolution=(1 / 500, 1 / 500), metadata={"unit": "nm"}), PIXEL),
    ("imagej micron", dict(imagej=True, resolution=(2.0, 2.0), metadata={"unit": "micron"}), PIXEL),
    ("imagej escaped mu", dict(imagej=True, resolution=(2.0, 2.0), metadata={"unit": "\\u00B5m"}), PIXEL),
    ("imagej mm", dict(imagej=True, resolution=(2000.0, 2000.0), metadata={"unit": "mm"}), PIXEL),
    ("imagej pixels", dict(imagej=True, resolution=(2.0, 2.0), metadata={"unit": "pixel"}), None),
    ("centimetres", dict(resolution=(20_000.0, 20_000.0), resolutionunit="CENTIMETER"), PIXEL),
    ("inches of a microscope", dict(resolution=(50_800.0, 50_800.0), resolutionunit="INCH"), PIXEL),
    ("72 dpi", dict(resolution=(72.0, 72.0), resolutionunit="INCH"), None),
    ("300 dpi", dict(resolution=(300.0, 300.0), resolutionunit="INCH"), None),
    ("75 dpi", dict(resolution=(75.0, 75.0), resolutionunit="INCH"), None),
    ("72 dpi in centimetres", dict(resolution=(72 / 2.54, 72 / 2.54), resolutionunit="CENTIMETER"), None),
    ("300 dpi in centimetres", dict(resolution=(300 / 2.54, 300 / 2.54), resolutionunit="CENTIMETER"), None),
    ("a script's 1 / um", dict(resolution=(2.0, 2.0)), PIXEL),
    ("ome nm", dict(ome=True, metadata={"PhysicalSizeX": 500, "PhysicalSizeXUnit": "nm", "PhysicalSizeY": 500,
                                        "PhysicalSizeYUnit": "nm"}), PIXEL),
    ("ome default um", dict(ome=True, metadata={"PhysicalSizeX": 0.5, "PhysicalSizeY": 0.5}), PIXEL),
    ("nothing", dict(), None),
])
def test_a_tiffs_pixel_size_is_read_in_its_own_unit_and_a_print_size_is_none(tmp_path, case, kwargs, expected):
    """500 nm pixels are 0.5 µm, not 500; a photo editor's 72 dpi is no pixel size (it was read as 0.014 µm)."""
    tifffile.imwrite(tmp_path / "a.tif", np.zeros((8, 9), np.uint8), **kwargs)
    found = read_image(tmp_path / "a.tif").pixel_size
    assert found == (None if expected is None else pytest.approx((expected, expected)))


@pytest.mark.parametrize("unit, scale, expected", [("nanometer", 500.0, PIXEL), ("micrometer", 0.5, PIXEL),
                                                   (None, 0.5, PIXEL), ("millimeter", 0.0005, PIXEL),
                                                   ("micrometer", 1.0, 1.0), (None, 1.0, None)])
def test_an_ome_zarrs_scale_is_read_in_its_axes_unit(tmp_path, unit, scale, expected):
    """A scale of 1 naming no unit is no calibration (an export of uncalibrated labels), not 1 µm pixels."""
    root = zarr.open_group(str(tmp_path / "img.ome.zarr"), mode="w")
    root.create_array("0", shape=(20, 20), dtype="u1")
    axes = [{"name": n, "type": "space", **({"unit": unit} if unit else {})} for n in "yx"]
    root.attrs["multiscales"] = [{"version": "0.4", "axes": axes, "datasets": [
        {"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [scale, scale]}]}]}]
    found = read_image(tmp_path / "img.ome.zarr").pixel_size
    assert found == (None if expected is None else pytest.approx((expected, expected)))


@pytest.mark.parametrize("pixel_size", [None, (0.5, 0.25)])
@pytest.mark.parametrize("dtype", [np.uint16, np.uint32])
def test_labels_are_imagej_files_with_their_record_whether_or_not_calibrated(tmp_path, pixel_size, dtype):
    """Fiji shows the record (Image > Show Info) and keeps it when it saves; uint32 cannot be ImageJ's."""
    from napari_unet_seg.core.imageio import read_tiff_provenance

    labels = np.zeros((3, 16, 16), dtype)
    labels[:, 4:9, 4:9] = 70_000 if dtype == np.uint32 else 7
    out = write_labels_tiff(tmp_path / "l.tif", labels, pixel_size, provenance={"model": "m"}, stack_axis="T")
    with tifffile.TiffFile(out) as tif:
        assert tif.is_imagej == (dtype == np.uint16) and tif.pages[0].compression == 8  # zlib: small files
        assert tif.series[0].axes == "TYX"  # a movie's labels are frames in Fiji
    assert read_tiff_provenance(out)["model"] == "m"
    assert read_image(out).pixel_size == (None if pixel_size is None else pytest.approx(pixel_size))
    np.testing.assert_array_equal(tifffile.imread(out), labels)


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


@pytest.mark.parametrize("mode", ["composite", "color"])
def test_a_fiji_composite_of_two_channels_is_read_as_channels_not_planes(tmp_path, mode):
    """Segmented as a stack, its cell stain added false nuclei to the count; now, as an (H, W, 2) file, it asks for
    the nuclear channel."""
    from napari_unet_seg.core.batch.files import with_channels
    from napari_unet_seg.core.inference.options import RunOptions

    cyx = np.arange(2 * 5 * 7, dtype=np.uint16).reshape(2, 5, 7)
    tifffile.imwrite(tmp_path / "c.tif", cyx, imagej=True, metadata={"axes": "CYX", "mode": mode})
    image = read_image(tmp_path / "c.tif")
    assert image.channel_axis == -3 and not image.stack and image.plane_shape == (5, 7)
    np.testing.assert_array_equal(image.data, cyx)
    assert with_channels(image, RunOptions()) is image


def test_a_hyperstack_of_time_and_z_is_refused_with_what_to_do(tmp_path):
    from napari_unet_seg.core.imageio import ImageReadError

    tifffile.imwrite(tmp_path / "tzyx.tif", np.zeros((3, 4, 32, 32), np.uint16), imagej=True,
                     metadata={"axes": "TZYX"})
    with pytest.raises(ImageReadError, match="stacks along one axis .* Segment dock, or save each time point"):
        read_image(tmp_path / "tzyx.tif")


def test_a_png_named_tif_is_read_as_a_png_and_other_bytes_are_said_without_them(tmp_path):
    # napari opened a PNG saved as .tif while unet-seg said "not a TIFF file: header=b'\x89PNG'" (newcomer trial)
    from PIL import Image

    pixels = np.random.default_rng(0).integers(0, 255, (24, 32), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "really_png.tif", format="PNG")
    np.testing.assert_array_equal(read_image(tmp_path / "really_png.tif").data, pixels)
    (tmp_path / "odd.tif").write_bytes(b"\x1c\x82w\xef" + bytes(200))
    with pytest.raises(ImageReadError) as said:
        read_image(tmp_path / "odd.tif")
    assert str(said.value) == ("odd.tif: cannot be read as an image: it is named .tif but holds no TIFF (nor a PNG "
                               "or JPEG): open it in its own program and save it as TIFF")


@pytest.mark.parametrize("how", [{"imagej": True}, {"ome": True}, {"tile": (64, 64)}])
def test_a_stack_cut_short_is_refused_not_read_as_its_first_plane(tmp_path, how):
    """A 5-slice stack whose copy did not finish read as one 2D image, without a word: segmented, it gave a
    result for a fifth of the data."""
    whole = tmp_path / "whole.tif"
    tifffile.imwrite(whole, (np.random.default_rng(0).random((5, 96, 96)) * 255).astype(np.uint8), **how)
    assert read_image(whole).data.shape == (5, 96, 96)
    cut = tmp_path / "cut.tif"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size * 6 // 10])
    with pytest.raises(ImageReadError) as raised:
        read_image(cut)
    said = str(raised.value)
    assert said.startswith("cut.tif: cannot be read as an image: the file is damaged or cut short"), said
    assert "planes" in said and "\n" not in said


def test_a_reader_tripping_on_damaged_bytes_says_so_without_its_own_words(tmp_path, monkeypatch):
    """"list index out of range" reached the user, in brackets after the diagnosis."""
    from napari_unet_seg.core import imageio

    path = tmp_path / "odd.tif"
    tifffile.imwrite(path, np.zeros((32, 32), np.uint8))

    def trips(_path):
        return [][0]  # what tifffile does on some damaged IFDs

    monkeypatch.setattr(imageio, "_read_tiff", trips)
    with pytest.raises(ImageReadError) as raised:
        read_image(path)
    assert str(raised.value) == ("odd.tif: cannot be read as an image: the file is damaged or cut short (a copy or "
                                 "download that did not finish?)")
