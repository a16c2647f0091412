import json
import os

import dask.array as da
import numpy as np
import pytest
import zarr
from export_shapes import awkward_labels, provenance_record, stack_labels
from ome_zarr.io import parse_url
from ome_zarr.reader import Label, Multiscales, Reader

from napari_unet_seg.core.export import write_ome_zarr
from napari_unet_seg.core.export.ome_zarr import distinct_color, pyramid_factors


def read_back(path):
    """(image node, labels node) as napari-ome-zarr sees them."""
    nodes = list(Reader(parse_url(str(path)))())
    image = next(n for n in nodes if n.load(Multiscales) and not n.load(Label))
    labels = next(n for n in nodes if n.load(Label))
    return image, labels


def attrs(path):
    return json.loads(path.joinpath(".zattrs").read_text())


def big_labels():
    labels = np.zeros((520, 540), np.uint32)
    labels[:60, :70] = awkward_labels()
    labels[300:400, 300:420] = 9
    return labels


def test_image_and_labels_read_back_with_pyramid_colours_and_pixel_size(tmp_path):
    labels = big_labels()
    image = np.random.default_rng(0).integers(0, 4000, labels.shape, dtype=np.uint16)
    path = write_ome_zarr(tmp_path / "cells.ome.zarr", labels, image, pixel_size=(0.5, 0.25))
    image_node, labels_node = read_back(path)
    assert [tuple(level.shape) for level in image_node.data] == [(520, 540), (260, 270)]
    assert np.array_equal(np.asarray(image_node.data[0]), image)
    assert np.array_equal(np.asarray(labels_node.data[0]), labels)
    low = np.asarray(labels_node.data[1])
    assert low.shape == (260, 270) and set(np.unique(low)) <= set(np.unique(labels))  # nearest, no new ids
    meta = attrs(path)["multiscales"][0]
    assert meta["version"] == "0.4"
    assert [a["name"] for a in meta["axes"]] == ["y", "x"] and meta["axes"][0]["unit"] == "micrometer"
    assert meta["datasets"][0]["coordinateTransformations"][0] == {"type": "scale", "scale": [0.5, 0.25]}
    assert meta["datasets"][1]["coordinateTransformations"][0]["scale"] == [1.0, 0.5]
    assert attrs(path / "labels") == {"labels": ["labels"], "napari_unet_seg": {"export": "ome-zarr"}}  # ours
    image_label = attrs(path / "labels" / "labels")["image-label"]
    assert image_label["version"] == "0.4" and image_label["source"] == {"image": "../../"}
    ids = [c["label-value"] for c in image_label["colors"]]
    assert ids == [1, 2, 3, 4, 5, 6, 7, 8, 9, 70000]
    assert image_label["colors"][0]["rgba"] == list(distinct_color(1))
    assert labels_node.metadata["color"][1]  # napari-ome-zarr turns them into the layer's colours


def test_z_stacks_put_channels_before_z(tmp_path):
    labels = stack_labels()
    image = np.zeros((2,) + labels.shape, np.uint16)
    _, _ = read_back(write_ome_zarr(tmp_path / "c.ome.zarr", labels, image, channel_axis=0))
    assert [a["name"] for a in attrs(tmp_path / "c.ome.zarr")["multiscales"][0]["axes"]] == ["c", "z", "y", "x"]


def test_a_multichannel_image_of_the_labels_plane_keeps_its_channels_without_being_told(tmp_path):
    """A (2, H, W) image beside (H, W) labels was refused ("do not match"), in napari's File > Save and the CLI."""
    labels = awkward_labels()
    image = np.random.default_rng(2).integers(0, 255, (2,) + labels.shape, dtype=np.uint8)
    image_node, labels_node = read_back(write_ome_zarr(tmp_path / "two.ome.zarr", labels, image))
    assert [a["name"] for a in image_node.metadata["axes"]] == ["c", "y", "x"]
    assert np.array_equal(np.asarray(image_node.data[0]), image)
    assert np.array_equal(np.asarray(labels_node.data[0]), labels)


def test_colour_stacks_put_channels_first_and_labels_leave_them_out(tmp_path):
    labels = stack_labels()
    image = np.random.default_rng(1).integers(0, 255, labels.shape + (3,), dtype=np.uint8)
    path = write_ome_zarr(tmp_path / "rgb.ome.zarr", labels, image, rgb=True, stack_axis="t")
    image_node, labels_node = read_back(path)
    assert [a["name"] for a in image_node.metadata["axes"]] == ["t", "c", "y", "x"]  # NGFF: t first
    assert np.array_equal(np.asarray(image_node.data[0]), np.moveaxis(image, -1, 1))
    assert [a["name"] for a in labels_node.metadata["axes"]] == ["t", "y", "x"]
    assert np.array_equal(np.asarray(labels_node.data[0]), labels)


def test_labels_without_an_image_get_an_unstored_placeholder(tmp_path):
    labels = zarr.create_array(str(tmp_path / "in.zarr"), shape=(40, 50), chunks=(16, 16), dtype=np.uint16)
    labels[:] = stack_labels()[1]  # a lazy zarr input is read chunk by chunk
    path = write_ome_zarr(tmp_path / "only.ome.zarr", labels)
    image_node, labels_node = read_back(path)
    assert np.asarray(image_node.data[0]).max() == 0
    level = attrs(path)["multiscales"][0]["datasets"][0]["path"]
    assert not [f for f in os.listdir(path / level) if not f.startswith(".")]  # no chunk of zeros stored
    assert np.array_equal(np.asarray(labels_node.data[0]), stack_labels()[1])


def test_measurements_become_label_properties(tmp_path):
    labels = stack_labels()[1]
    path = write_ome_zarr(tmp_path / "m.ome.zarr", labels, measurements={"label": [1, 2], "area": [150.0, np.nan]})
    properties = attrs(path / "labels" / "labels")["image-label"]["properties"]
    assert properties == [{"label-value": 1, "area": 150.0}, {"label-value": 2}]


def test_a_stacks_properties_have_one_entry_per_object_which_readers_key_by_label_value(tmp_path):
    """A row per (object, plane) showed the last plane's area in every frame in napari-ome-zarr."""
    labels = stack_labels()  # object 1 in slices 0, 1 and 2; object 2 in slice 1
    measurements = {"label": [1, 1, 2, 1], "slice": [0, 1, 1, 2], "area": [150.0, 150.0, 184.0, 64.0],
                    "class_name": ["tumour", "tumour", "stroma", "tumour"], "class": [1, 1, 2, 2]}
    path = write_ome_zarr(tmp_path / "s.ome.zarr", labels, measurements=measurements)
    properties = attrs(path / "labels" / "labels")["image-label"]["properties"]
    assert properties == [
        {"label-value": 1, "slices": 3, "first_slice": 0, "last_slice": 2, "class_name": "tumour"},  # class differs
        {"label-value": 2, "slices": 1, "first_slice": 1, "last_slice": 1, "class_name": "stroma", "class": 2}]
    _, labels_node = read_back(path)
    assert len(labels_node.load(Label).zarr.root_attrs["image-label"]["properties"]) == 2


def test_empty_labels_are_a_valid_export(tmp_path):
    path = write_ome_zarr(tmp_path / "e.ome.zarr", np.zeros((30, 30), np.uint8), da.ones((30, 30), dtype=np.uint8))
    _, labels_node = read_back(path)
    assert np.asarray(labels_node.data[0]).max() == 0
    assert attrs(path / "labels" / "labels")["image-label"]["colors"] == []


def test_bad_inputs_are_one_line_and_leave_nothing(tmp_path):
    labels = stack_labels()
    with pytest.raises(ValueError, match=r"labels of shape \(3, 40, 50\) do not match the image of shape \(3, 40, 51\)"):
        write_ome_zarr(tmp_path / "x.ome.zarr", labels, np.zeros((3, 40, 51), np.uint8))
    with pytest.raises(ValueError, match="pixel size"):
        write_ome_zarr(tmp_path / "x.ome.zarr", labels, pixel_size=(0.0, 1.0))
    with pytest.raises(ValueError, match="integer"):
        write_ome_zarr(tmp_path / "x.ome.zarr", labels.astype(np.float32))
    assert os.listdir(tmp_path) == []


def test_an_existing_store_is_kept_unless_overwrite(tmp_path):
    path = write_ome_zarr(tmp_path / "k.ome.zarr", stack_labels())
    with pytest.raises(FileExistsError, match="already exists"):
        write_ome_zarr(path, stack_labels()[:1])
    assert read_back(path)[1].data[0].shape == (3, 40, 50)
    write_ome_zarr(path, stack_labels()[:1], overwrite=True)
    assert read_back(path)[1].data[0].shape == (1, 40, 50)
    assert sorted(os.listdir(tmp_path)) == ["k.ome.zarr"]


def test_a_folder_the_user_made_is_kept_even_with_overwrite(tmp_path):
    """`export --format ome-zarr --overwrite` replaced any folder at -o whole: a user's notes, their own store."""
    import zarr

    precious = tmp_path / "precious.ome.zarr"
    precious.mkdir()
    (precious / "notes.txt").write_text("my notes")
    theirs = tmp_path / "mydata.zarr"
    zarr.open_array(str(theirs), mode="w", shape=(4, 4), dtype="u1")[:] = 7
    for folder in (precious, theirs):
        with pytest.raises(FileExistsError, match="did not export.*kept, even with overwrite"):
            write_ome_zarr(folder, stack_labels()[:1], overwrite=True)
    assert (precious / "notes.txt").read_text() == "my notes"
    assert int(zarr.open_array(str(theirs), mode="r")[0, 0]) == 7


def test_pyramids_stop_before_planes_get_small():
    assert pyramid_factors((255, 4000)) == ()
    assert pyramid_factors((1024, 2048)) == (2, 4)


def test_provenance_sits_in_the_labels_group_beside_valid_ngff_metadata(tmp_path):
    from ome_zarr_models.v04.image_label import ImageLabelAttrs  # ome-zarr-py's own NGFF models

    record = provenance_record()
    path = write_ome_zarr(tmp_path / "p.ome.zarr", stack_labels(), name="nuclei", provenance=record)
    labels_attrs = attrs(path / "labels" / "nuclei")
    assert labels_attrs["napari_unet_seg"] == {"provenance": record}
    assert ImageLabelAttrs.model_validate(labels_attrs).model_extra == {"napari_unet_seg": {"provenance": record}}
    assert "napari_unet_seg" not in attrs(path)  # the image's metadata is untouched
    assert np.array_equal(np.asarray(read_back(path)[1].data[0]), stack_labels())


@pytest.mark.parametrize("origin", [None, (10.0, -4.0)])
def test_every_labels_level_declares_where_its_pixels_were_taken_from(tmp_path, origin):
    # the declared scale and translation of each pyramid level must land its pixel (i, j) on the level-0
    # pixel it was copied from: a quarter-pixel (or more) off, and a viewer shows outlines beside the objects
    rng = np.random.default_rng(0)
    labels = rng.integers(1, 60000, (1041, 1107)).astype(np.uint16)  # every pixel its own value; odd sides
    path = write_ome_zarr(tmp_path / "out.ome.zarr", labels, labels.astype(np.float32), pixel_size=(0.5, 0.4),
                          origin=origin)
    group = zarr.open_group(str(path / "labels" / "labels"), mode="r")
    datasets = group.attrs["multiscales"][0]["datasets"]
    assert len(datasets) >= 3
    s0, t0 = _transforms(datasets[0])
    level0 = group[datasets[0]["path"]][:]
    for dataset in datasets[1:]:
        scale, translation = _transforms(dataset)
        level = group[dataset["path"]][:]
        for i, j in [(0, 0), (3, 5), (level.shape[0] - 1, level.shape[1] - 2)]:
            y0 = (translation[0] + i * scale[0] - t0[0]) / s0[0]
            x0 = (translation[1] + j * scale[1] - t0[1]) / s0[1]
            assert y0 == pytest.approx(round(y0)) and x0 == pytest.approx(round(x0))
            assert level[i, j] == level0[round(y0), round(x0)]


def _transforms(dataset):
    by_type = {t["type"]: t for t in dataset["coordinateTransformations"]}
    return by_type["scale"]["scale"], by_type.get("translation", {"translation": [0.0, 0.0]})["translation"]


def test_arrays_are_compressed_as_java_readers_expect(tmp_path):
    # Fiji's n5-zarr, MoBIE and QuPath read Blosc; plain zstd (zarr's own default) came to them late
    path = write_ome_zarr(tmp_path / "out.ome.zarr", big_labels(), np.ones((520, 540), np.uint8))
    for array in (path / "labels" / "labels" / "s0", path / "s0"):
        compressor = json.loads((array / ".zarray").read_text())["compressor"]
        assert compressor["id"] == "blosc"
