"""napari's own File > Save Selected Layers path: our npe2 writers, chosen by file extension."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import roifile
from export_shapes import awkward_labels, provenance_record, stack_labels, zip_provenance
from napari import save_layers
from napari.layers import Image, Labels
from ome_zarr.io import parse_url
from ome_zarr.reader import Label, Reader

from napari_unet_seg._layer_marks import SEGMENT_KEY, fingerprint
from napari_unet_seg.core.inference.provenance import EDITED, read_provenance


@pytest.fixture(autouse=True)
def only_this_plugin(npe2pm):
    """napari's plugin manager with this plugin registered from its installed manifest, nothing else."""
    from npe2 import PluginManifest

    npe2pm.register(PluginManifest.from_distribution("napari-unet-seg"))
    return npe2pm


def test_labels_layer_saves_as_imagej_rois_by_extension(tmp_path):
    written = save_layers(str(tmp_path / "objects.zip"), [Labels(stack_labels())])
    assert written == [str(tmp_path / "objects.zip")]
    assert len(roifile.roiread(written[0])) == 4


def test_labels_layer_features_become_geojson_measurements(tmp_path):
    labels = awkward_labels()
    ids = np.unique(labels)[1:]
    features = pd.DataFrame({"index": ids, "label": ids,  # as the Measurements dock sets them: napari's index too
                             "area": [float((labels == i).sum()) for i in ids]})
    (path,) = save_layers(str(tmp_path / "objects.geojson"), [Labels(labels, features=features)])
    first = json.loads(Path(path).read_text())["features"][0]["properties"]
    assert first["measurements"] == {"label": 1, "area": float((labels == 1).sum())}


def test_image_and_labels_save_together_as_ome_zarr(tmp_path):
    labels = stack_labels()
    image = Image(np.ones(labels.shape, np.uint16), name="nuclei")
    layer = Labels(labels, name="nuclei labels", scale=(1, 0.5, 0.5))
    (path,) = save_layers(str(tmp_path / "both.ome.zarr"), [image, layer])
    nodes = list(Reader(parse_url(path))())
    labels_node = next(n for n in nodes if n.load(Label))
    assert labels_node.metadata["name"] == "nuclei labels"
    assert np.array_equal(np.asarray(labels_node.data[0]), labels)
    scale = json.loads((tmp_path / "both.ome.zarr" / ".zattrs").read_text())["multiscales"][0]["datasets"][0]
    assert scale["coordinateTransformations"][0]["scale"] == [1.0, 0.5, 0.5]


@pytest.fixture
def notes(monkeypatch):
    """What the writers said in notifications: (kind, text)."""
    import napari_unet_seg._writers as writers

    said = []
    monkeypatch.setattr(writers, "show_info", lambda text: said.append(("info", text)))
    return said


def test_an_existing_ome_zarr_is_never_replaced_and_the_store_goes_beside_it(tmp_path, notes):
    (tmp_path / "x.ome.zarr").mkdir()
    (tmp_path / "x.ome.zarr" / "mine.txt").write_text("keep")
    written = save_layers(str(tmp_path / "x.ome.zarr"), [Labels(stack_labels())])  # no traceback
    assert written == [str(tmp_path / "x-2.ome.zarr")] and (tmp_path / "x-2.ome.zarr" / ".zattrs").exists()
    assert sorted(p.name for p in (tmp_path / "x.ome.zarr").iterdir()) == ["mine.txt"]
    assert notes == [("info", "x.ome.zarr exists and was kept: saved as x-2.ome.zarr")]


def test_a_folder_that_cannot_be_written_is_said_in_the_error_napari_shows(tmp_path, notes):
    """The save dialog raises its own "save failed" error when a writer wrote nothing, with the warnings of the
    save as its text: the reason goes there (before, a notification of ours and napari's error without it)."""
    import warnings

    (tmp_path / "a file").write_text("not a folder")
    with warnings.catch_warnings(record=True) as caught:  # as napari's save dialog gathers them
        warnings.simplefilter("always")
        written = save_layers(str(tmp_path / "a file" / "x.geojson"), [Labels(stack_labels())],
                              plugin="napari-unet-seg")
    assert written == [] and notes == []
    ours = [str(w.message) for w in caught if str(w.message).startswith("Not saved: ")]
    assert len(ours) == 1 and "\n" not in ours[0] and "a file" in ours[0]


def as_segment_leaves_it(labels: np.ndarray, record: dict) -> dict:
    """A Segment result's metadata: its provenance and the mark that it is untouched (a hash of what was written)."""
    return {"provenance": record, SEGMENT_KEY: {"edited": False, "fingerprint": fingerprint(labels)}}


def test_a_segment_results_provenance_travels_into_every_format(tmp_path):
    record = provenance_record()
    labels = stack_labels()
    layer = Labels(labels, name="cells", metadata=as_segment_leaves_it(labels, record))
    (rois,) = save_layers(str(tmp_path / "o.zip"), [layer])
    (geojson,) = save_layers(str(tmp_path / "o.geojson"), [layer])
    (ome,) = save_layers(str(tmp_path / "o.ome.zarr"), [layer])
    assert zip_provenance(rois) == record
    assert json.loads(Path(geojson).read_text())["napari_unet_seg"] == {"provenance": record}
    assert json.loads((Path(ome) / "labels" / "cells" / ".zattrs").read_text())["napari_unet_seg"] == {
        "provenance": record}
    (plain,) = save_layers(str(tmp_path / "plain.geojson"), [Labels(stack_labels())])
    assert "napari_unet_seg" not in json.loads(Path(plain).read_text())


def test_labels_painted_on_after_segment_export_a_provenance_that_says_so(tmp_path):
    """The recorded command makes the labels as Segment left them, not as corrected: a reviewer must be told."""
    record = provenance_record()
    labels = stack_labels()
    layer = Labels(labels, name="cells", metadata=as_segment_leaves_it(labels, record))
    layer.data[0][labels[0] == labels[0].max()] = 0  # an object erased, as the eraser does
    (rois,) = save_layers(str(tmp_path / "o.zip"), [layer])
    (geojson,) = save_layers(str(tmp_path / "o.geojson"), [layer])
    (ome,) = save_layers(str(tmp_path / "o.ome.zarr"), [layer])
    for exported in (zip_provenance(rois), json.loads(Path(geojson).read_text())["napari_unet_seg"]["provenance"],
                     json.loads((Path(ome) / "labels" / "cells" / ".zattrs").read_text())["napari_unet_seg"][
                         "provenance"]):
        assert exported == {**record, "edited": EDITED}
    assert read_provenance(geojson)["edited"] == EDITED  # and `unet-seg provenance` reads it


def test_a_time_lapse_segmented_with_linked_frames_exports_frames_not_slices(tmp_path):
    record = provenance_record()
    record["settings"] = {**record.get("settings", {}), "link_frames": True}
    labels = stack_labels()
    layer = Labels(labels, name="movie", metadata=as_segment_leaves_it(labels, record))
    (geojson,) = save_layers(str(tmp_path / "m.geojson"), [layer])
    planes = {(f["geometry"]["plane"]["z"], f["geometry"]["plane"]["t"])
              for f in json.loads(Path(geojson).read_text())["features"]}
    assert planes and all(z == 0 for z, _ in planes) and {t for _, t in planes} == {0, 1, 2}
    (ome,) = save_layers(str(tmp_path / "m.ome.zarr"), [layer])
    axes = json.loads((Path(ome) / "labels" / "movie" / ".zattrs").read_text())["multiscales"][0]["axes"]
    assert axes[0] == {"name": "t", "type": "time"}
    (still,) = save_layers(str(tmp_path / "z.geojson"), [Labels(labels)])  # nothing says time: slices, as before
    assert {f["geometry"]["plane"]["t"] for f in json.loads(Path(still).read_text())["features"]} == {0}


def test_a_name_typed_without_the_formats_suffix_gets_it_and_replaces_nothing_unasked(tmp_path, notes):
    """The save dialog with a writer's file type chosen hands the writer the bare name the user typed."""
    from napari_unet_seg._writers import write_labels_geojson, write_labels_ome_zarr, write_labels_rois

    labels = stack_labels()
    layer = Labels(labels)
    data, attributes, _ = layers = layer.as_layer_data_tuple()
    assert write_labels_rois(str(tmp_path / "ok"), [layers]) == [str(tmp_path / "ok.zip")]
    assert len(roifile.roiread(tmp_path / "ok.zip")) == 4  # Fiji can open it
    assert write_labels_geojson(str(tmp_path / "ok"), [layers]) == [str(tmp_path / "ok.geojson")]
    assert json.loads((tmp_path / "ok.geojson").read_text())["type"] == "FeatureCollection"
    ome = write_labels_ome_zarr(str(tmp_path / "ok"), [layers])
    assert ome == [str(tmp_path / "ok.ome.zarr")]
    # the dialog asked about "ok", not about the "ok.zip" the suffix makes: that one is never replaced unasked
    (tmp_path / "ok.zip").write_bytes(b"mine")
    assert write_labels_rois(str(tmp_path / "ok"), [layers]) == [str(tmp_path / "ok-2.zip")]
    assert (tmp_path / "ok.zip").read_bytes() == b"mine" and notes[-1] == ("info", "ok.zip exists and was kept: "
                                                                           "saved as ok-2.zip")
    assert write_labels_rois(str(tmp_path / "ok.zip"), [layers]) == [str(tmp_path / "ok.zip")]  # asked
    assert write_labels_geojson(str(tmp_path / "QuPath.JSON"), [layers]) == [str(tmp_path / "QuPath.JSON")]


def test_a_name_without_a_suffix_still_saves_napari_s_own_label_image(only_this_plugin, tmp_path):
    """With napari's builtins registered after this plugin (their order in a real napari), a plain save and
    the save dialog's first file type stay napari's TIFF; ours are offered, and an Image beside the labels
    does not stop the ROI writer."""
    import tifffile
    from npe2 import PluginManifest

    only_this_plugin.register(PluginManifest.from_distribution("napari"))
    layer = Labels(stack_labels(), name="cells")
    (plain,) = save_layers(str(tmp_path / "cells"), [layer])
    assert plain == str(tmp_path / "cells.tif")
    assert np.array_equal(tifffile.imread(plain), layer.data)
    offered = [w.command for w in only_this_plugin.iter_compatible_writers(["labels"])]  # the dialog's file types
    assert offered[0] == "napari.write_labels"
    assert {f"napari-unet-seg.write_labels_{kind}" for kind in ("rois", "geojson", "ome_zarr")} <= set(offered)
    image = Image(np.ones(layer.data.shape, np.uint16))
    (rois,) = save_layers(str(tmp_path / "both.zip"), [image, layer], plugin="napari-unet-seg")
    assert len(roifile.roiread(rois)) == 4


def test_a_layer_name_with_spaces_becomes_a_labels_group_name_without_them(tmp_path):
    # a space in a zarr path breaks URLs, S3 and MoBIE; the layer keeps its name in napari
    (ome,) = save_layers(str(tmp_path / "o.ome.zarr"), [Labels(stack_labels(), name="fluo ome labels (2)")])
    assert json.loads((Path(ome) / "labels" / ".zattrs").read_text())["labels"] == ["fluo_ome_labels__2_"]
