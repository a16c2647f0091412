"""File > Open of an OME-Zarr folder: napari's own zarr reader opens no NGFF group, so ours must."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from export_shapes import provenance_record, stack_labels
from napari import save_layers
from napari.layers import Image, Labels

from napari_unet_seg._layer_marks import SEGMENT_KEY, fingerprint, layer_provenance
from napari_unet_seg._reader import get_reader, read_ome_zarr
from napari_unet_seg.core.export import write_ome_zarr


@pytest.fixture(autouse=True)
def only_this_plugin(npe2pm):
    from npe2 import PluginManifest

    npe2pm.register(PluginManifest.from_distribution("napari-unet-seg"))
    return npe2pm


def test_an_ome_zarr_saved_from_napari_opens_again_with_its_image_labels_scale_features_and_provenance(
        tmp_path, make_napari_viewer):
    labels = stack_labels()
    ids = [1, 1, 2, 1]
    features = pd.DataFrame({"index": ids, "label": ids, "slice": [0, 1, 1, 2], "area": [150.0, 150.0, 184.0, 64.0]})
    image = Image(np.arange(labels.size, dtype=np.uint16).reshape(labels.shape), name="movie", scale=(1, 0.5, 0.5))
    layer = Labels(labels, name="movie labels", scale=(1, 0.5, 0.5), features=features,
                   metadata={"provenance": provenance_record(),
                             SEGMENT_KEY: {"edited": False, "fingerprint": fingerprint(labels)}})
    (path,) = save_layers(str(tmp_path / "saved.ome.zarr"), [image, layer])

    viewer = make_napari_viewer()
    opened = viewer.open(path, plugin=None)  # as File > Open: it raised "No arrays found in zarr group"
    assert [type(x).__name__ for x in opened] == ["Image", "Labels"]
    reopened_image, reopened = opened
    assert np.array_equal(np.asarray(reopened_image.data), np.asarray(image.data))
    assert np.array_equal(reopened.data, labels) and isinstance(reopened.data, np.ndarray)  # in memory: paintable
    assert tuple(reopened.scale) == (1, 0.5, 0.5) == tuple(reopened_image.scale)
    assert reopened.name == "movie labels"
    assert list(reopened.features["label"]) == [1, 2] and list(reopened.features["slices"]) == [3, 1]
    assert layer_provenance(reopened.metadata, reopened.data) == provenance_record()  # as written: not edited
    reopened.data[labels == 2] = 0
    assert layer_provenance(reopened.metadata, reopened.data)["edited"]  # painted on since it was opened


def test_labels_alone_open_without_the_placeholder_image_and_other_folders_are_left_to_other_readers(tmp_path):
    path = write_ome_zarr(tmp_path / "only.ome.zarr", stack_labels()[1])
    layers = read_ome_zarr(str(path))
    assert [kind for _, _, kind in layers] == ["labels"]
    assert np.array_equal(layers[0][0], stack_labels()[1])
    (tmp_path / "plain").mkdir()
    (tmp_path / "notes.zarr").mkdir()
    assert get_reader(str(tmp_path / "plain")) is None and get_reader(str(tmp_path / "notes.zarr")) is None
    assert get_reader(str(path)) is read_ome_zarr and get_reader([str(path), str(path)]) is None
    assert json.loads((Path(path) / ".zattrs").read_text())["multiscales"]


def test_a_layers_translate_goes_into_the_ome_zarr_and_comes_back(tmp_path, make_napari_viewer):
    """Stage-positioned crops and tiles: the export lands where the layers lay (an NGFF translation)."""
    labels = np.zeros((512, 768), np.int32)  # large enough for a second level
    labels[10:20, 30:50] = 1
    image = Image(np.ones((512, 768), np.uint16), name="tile", scale=(0.5, 0.5), translate=(10, 20))
    layer = Labels(labels, name="tile labels", scale=(0.5, 0.5), translate=(10, 20))
    (path,) = save_layers(str(tmp_path / "tile.ome.zarr"), [image, layer])
    multiscales = json.loads((Path(path) / "labels" / "tile_labels" / ".zattrs").read_text())["multiscales"][0]
    first, second = multiscales["datasets"][:2]
    assert first["coordinateTransformations"] == [{"type": "scale", "scale": [0.5, 0.5]},
                                                  {"type": "translation", "translation": [10.0, 20.0]}]
    # a labels level keeps every other pixel from the second on: its first pixel is level 0's second
    assert second["coordinateTransformations"][1]["translation"] == [10.5, 20.5]
    viewer = make_napari_viewer()
    reopened_image, reopened = viewer.open(path, plugin="napari-unet-seg")
    assert tuple(reopened.translate) == (10, 20) == tuple(reopened_image.translate)
    assert tuple(reopened.scale) == (0.5, 0.5)
    untranslated = save_layers(str(tmp_path / "plain.ome.zarr"), [Labels(labels)])[0]
    plain = json.loads((Path(untranslated) / "labels" / "labels" / ".zattrs").read_text())["multiscales"][0]
    assert plain["datasets"][0]["coordinateTransformations"][1] == {"type": "translation", "translation": [0, 0]}
    assert plain["datasets"][1]["coordinateTransformations"][1]["translation"] == [1.0, 1.0]  # its second pixel


def test_a_store_in_nanometres_opens_in_micrometres_as_every_reader_places_layers(tmp_path):
    """500 nm pixels are 0.5 µm: opened at scale 500, Measurements called a 102 px object 25,500,000 µm²."""
    import zarr

    root = zarr.open_group(str(tmp_path / "nm.ome.zarr"), mode="w", zarr_format=2)
    root.create_array("0", shape=(3, 20, 30), dtype="u1")
    axes = [{"name": "t", "type": "time", "unit": "second"},
            *({"name": n, "type": "space", "unit": "nanometer"} for n in "yx")]
    root.attrs["multiscales"] = [{"version": "0.4", "axes": axes, "datasets": [
        {"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [2.0, 500.0, 500.0]},
                                                    {"type": "translation", "translation": [0.0, 1000.0, 0.0]}]}]}]
    (data, attributes, kind), = read_ome_zarr(str(tmp_path / "nm.ome.zarr"))
    assert kind == "image" and attributes["scale"] == [2.0, 0.5, 0.5]  # time stays in its own unit
    assert attributes["translate"] == [0.0, 1.0, 0.0]


def test_measurements_read_with_the_labels_are_left_out_of_an_export_once_the_labels_are_painted(
        tmp_path, make_napari_viewer):
    """Features that came from the file were saved on, stale, after painting (area 165 for an object of 677 px)."""
    labels = stack_labels()[0]
    features = pd.DataFrame({"index": [1, 2], "label": [1, 2], "area": [float((labels == 1).sum()),
                                                                        float((labels == 2).sum())]})
    (path,) = save_layers(str(tmp_path / "m.ome.zarr"), [Labels(labels, name="cells", features=features)])
    viewer = make_napari_viewer()
    (reopened,) = viewer.open(path, plugin=None)
    (kept,) = save_layers(str(tmp_path / "as read.geojson"), [reopened], plugin="napari-unet-seg")
    assert "area" in json.loads(Path(kept).read_text())["features"][0]["properties"]["measurements"]  # they travel
    reopened.data[labels == 1] = 2  # painted: object 1 into 2, without measuring again
    (painted,) = save_layers(str(tmp_path / "painted.geojson"), [reopened], plugin="napari-unet-seg")
    assert all("area" not in f["properties"].get("measurements", {})
               for f in json.loads(Path(painted).read_text())["features"])
