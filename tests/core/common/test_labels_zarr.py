"""Labels stores are NGFF 0.4 image-label groups that ome-zarr-py reads; older plain-array stores still open."""

import numpy as np
import pytest
import zarr
from ome_zarr.format import FormatV04
from ome_zarr.io import parse_url
from ome_zarr.reader import Label, Multiscales, Reader

from napari_unet_seg import Cancelled
from napari_unet_seg.core.common.labels_zarr import (
    create_labels_store,
    finish_labels_store,
    open_labels_zarr,
    pyramid_factors,
    set_stack_axes,
)
from napari_unet_seg.core.export import write_ome_zarr
from napari_unet_seg.core.imageio import read_image, read_labels

ATTRS = {"napari_unet_seg": {"model": "m", "task": "instances", "provenance": {"format": "x"}}, "objects": 3,
         "mean_area": 2.0, "pixel_size": None, "notes": ["a note"]}


def _labels(shape, seed=0):
    return np.random.default_rng(seed).integers(0, 50, shape, dtype=np.uint32)


def _store(path, labels, pixel_size=None, chunks=None):
    chunks = chunks or (1,) * (labels.ndim - 2) + tuple(min(128, s) for s in labels.shape[-2:])
    level0 = create_labels_store(path, labels.shape, chunks, labels.dtype)
    level0[:] = labels
    finish_labels_store(path, {**ATTRS, "pixel_size": list(pixel_size) if pixel_size else None}, name="cells_labels",
                        pixel_size=pixel_size)
    return path


def _node(path):
    [node] = list(Reader(parse_url(str(path), fmt=FormatV04()))())
    return node


def test_a_store_is_an_ngff_image_label_group_that_ome_zarr_reads(tmp_path):
    labels = _labels((2, 600, 520))
    path = _store(tmp_path / "cells_labels.zarr", labels, pixel_size=(0.5, 0.25))
    node = _node(path)
    assert node.load(Label) is not None and node.load(Multiscales) is not None
    assert [a.shape for a in node.data] == [(2, 600, 520), (2, 300, 260)] and len(pyramid_factors((600, 520))) == 1
    np.testing.assert_array_equal(np.asarray(node.data[0]), labels)
    np.testing.assert_array_equal(np.asarray(node.data[1]), labels[:, ::2, ::2])  # nearest neighbour: ids kept
    [multiscale] = zarr.open_group(str(path), mode="r").attrs["multiscales"]
    assert [a["name"] for a in multiscale["axes"]] == ["z", "y", "x"] and multiscale["axes"][-1]["unit"] == "micrometer"
    assert [d["coordinateTransformations"][0]["scale"] for d in multiscale["datasets"]] == [[1, 0.5, 0.25], [1, 1, 0.5]]
    assert multiscale["datasets"][0]["path"] == "0" and multiscale["name"] == "cells_labels"
    root = zarr.open_group(str(path), mode="r").attrs
    assert root["image-label"]["version"] == "0.4" and root["notes"] == ["a note"]
    for level in ("0", "1"):  # Blosc, which Fiji's n5-zarr and MoBIE read (plain zstd came to them late)
        assert zarr.open_array(str(path / level), mode="r").metadata.to_dict()["compressor"]["id"] == "blosc"


def test_run_attributes_are_on_the_group_and_on_the_array_callers_get(tmp_path):
    path = _store(tmp_path / "l.zarr", _labels((40, 30)))
    for attrs in (zarr.open_group(str(path), mode="r").attrs, open_labels_zarr(path).attrs, read_labels(path).attrs):
        assert {k: attrs[k] for k in ATTRS} == ATTRS


def test_pixel_size_reads_back_and_unknown_stays_unknown(tmp_path):
    known = read_image(_store(tmp_path / "a.zarr", _labels((40, 30)), pixel_size=(0.5, 0.25)))
    unknown = read_image(_store(tmp_path / "b.zarr", _labels((40, 30))))
    assert known.pixel_size == (0.5, 0.25) and unknown.pixel_size is None  # NGFF's scale of 1 is not a size
    [multiscale] = zarr.open_group(str(tmp_path / "b.zarr"), mode="r").attrs["multiscales"]
    assert "unit" not in multiscale["axes"][-1]


def test_an_older_plain_array_store_still_opens(tmp_path):
    labels = _labels((2, 40, 30))
    old = zarr.open_array(str(tmp_path / "old_labels.zarr"), mode="w", shape=labels.shape, chunks=(1, 40, 30),
                          dtype=labels.dtype, fill_value=0)  # how every store was written before
    old[:] = labels
    old.attrs.update(ATTRS)
    for opened in (open_labels_zarr(tmp_path / "old_labels.zarr"), read_labels(tmp_path / "old_labels.zarr")):
        np.testing.assert_array_equal(opened[:], labels)
        assert opened.attrs["objects"] == 3
    writable = open_labels_zarr(tmp_path / "old_labels.zarr", mode="r+")
    writable[0, 0, 0] = 7
    assert read_labels(tmp_path / "old_labels.zarr")[0, 0, 0] == 7
    assert read_image(tmp_path / "old_labels.zarr").stack


def test_the_labels_array_is_writable_for_corrections(tmp_path):
    path = _store(tmp_path / "l.zarr", _labels((40, 30)))
    open_labels_zarr(path, mode="r+")[3, 4] = 99
    assert open_labels_zarr(path)[3, 4] == 99


def test_an_ome_zarr_export_opens_at_its_labels_not_its_image(tmp_path):
    labels = _labels((40, 30))
    write_ome_zarr(tmp_path / "e.ome.zarr", labels, np.full((40, 30), 200, np.uint8))
    np.testing.assert_array_equal(open_labels_zarr(tmp_path / "e.ome.zarr")[:], labels)


def test_a_zarr_group_that_holds_no_labels_is_one_line(tmp_path):
    zarr.open_group(str(tmp_path / "x.zarr"), mode="w")
    with pytest.raises(ValueError, match="x.zarr") as info:
        open_labels_zarr(tmp_path / "x.zarr")
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("names, expected", [
    (["t"], ["t", "y", "x"]),
    (["z"], ["z", "y", "x"]),
    (["c"], ["z", "y", "x"]),  # channels are not a labels axis: left as it was
    (["t", "z"], ["z", "y", "x"]),  # two names for one axis: left as it was
])
def test_the_stack_axis_is_renamed_only_as_ngff_allows(tmp_path, names, expected):
    path = _store(tmp_path / "l.zarr", _labels((3, 20, 20)))
    set_stack_axes(path, names)
    [multiscale] = zarr.open_group(str(path), mode="r").attrs["multiscales"]
    assert [a["name"] for a in multiscale["axes"]] == expected
    assert multiscale["axes"][0]["type"] == ("time" if expected[0] == "t" else "space")
    assert _node(path).load(Label) is not None


def test_two_leading_axes_are_t_and_z_and_more_stay_a_plain_array(tmp_path):
    path = _store(tmp_path / "tz.zarr", _labels((2, 3, 20, 20)))
    [multiscale] = zarr.open_group(str(path), mode="r").attrs["multiscales"]
    assert [a["name"] for a in multiscale["axes"]] == ["t", "z", "y", "x"]
    labels = _labels((2, 2, 2, 20, 20))
    path = _store(tmp_path / "five.zarr", labels)  # NGFF 0.4 labels have at most t, z, y, x
    assert isinstance(zarr.open(str(path), mode="r"), zarr.Array)
    np.testing.assert_array_equal(open_labels_zarr(path)[:], labels)
    assert open_labels_zarr(path).attrs["objects"] == 3


def test_cancel_while_the_pyramid_is_made_stops_it(tmp_path):
    level0 = create_labels_store(tmp_path / "l.zarr", (600, 600), (128, 128), np.uint32)
    level0[:] = 1
    with pytest.raises(Cancelled):
        finish_labels_store(tmp_path / "l.zarr", ATTRS, cancel=lambda: True)


def test_an_ome_zarr_image_without_labels_is_refused_not_read_as_labels(tmp_path):
    import zarr

    group = zarr.open_group(str(tmp_path / "image.zarr"), mode="w", zarr_format=2)
    group.create_array("0", shape=(8, 8), dtype="u2")
    group.attrs["multiscales"] = [{"version": "0.4", "axes": [{"name": "y"}, {"name": "x"}],
                                   "datasets": [{"path": "0"}]}]
    with pytest.raises(ValueError, match="without NGFF labels"):
        open_labels_zarr(tmp_path / "image.zarr")
