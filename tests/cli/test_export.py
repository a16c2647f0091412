import json

import numpy as np
import pytest
import roifile
import tifffile
import zarr
from export_shapes import awkward_labels, provenance_record, stack_labels, zip_provenance

from napari_unet_seg.cli.main import main
from napari_unet_seg.core.inference.provenance import read_provenance
from napari_unet_seg.core.imageio import labels_digest, write_labels_tiff


def one_error_line(capsys, code, text):
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and text in err, err


def test_imagej_rois_land_beside_the_labels(tmp_path, capsys):
    labels_path = write_labels_tiff(tmp_path / "cells_labels.tif", stack_labels())
    assert main(["export", str(labels_path), "--format", "imagej"]) == 0
    out = tmp_path / "cells_labels_rois.zip"
    assert f"wrote {out}" in capsys.readouterr().out
    assert [(r.name, r.position) for r in roifile.roiread(out)][-1] == ("slice-003-label-0001", 3)


def test_geojson_of_a_batch_zarr_output(tmp_path):
    store = zarr.open_array(str(tmp_path / "big_labels.zarr"), mode="w", shape=(60, 70), chunks=(32, 32),
                            dtype=np.uint32)
    store[:] = awkward_labels()
    out = tmp_path / "qupath" / "objects.geojson"
    assert main(["export", str(tmp_path / "big_labels.zarr"), "--format", "geojson", "-o", str(out)]) == 0
    assert len(json.loads(out.read_text())["features"]) == 9


def test_ome_zarr_takes_the_image_and_its_pixel_size(tmp_path):
    labels = stack_labels()
    tifffile.imwrite(tmp_path / "img.tif", np.ones(labels.shape, np.uint16), imagej=True,
                     resolution=(1 / 0.2, 1 / 0.2), metadata={"unit": "um", "axes": "ZYX"})
    labels_path = write_labels_tiff(tmp_path / "img_labels.tif", labels)
    assert main(["export", str(labels_path), "--format", "ome-zarr", "--image", str(tmp_path / "img.tif")]) == 0
    meta = json.loads((tmp_path / "img_labels.ome.zarr" / ".zattrs").read_text())["multiscales"][0]
    assert meta["datasets"][0]["coordinateTransformations"][0]["scale"] == [1.0, 0.2, 0.2]
    assert main(["export", str(labels_path), "--format", "ome-zarr", "-o", str(tmp_path / "p.ome.zarr"),
                 "--pixel-size", "0.5", "0.6"]) == 0
    meta = json.loads((tmp_path / "p.ome.zarr" / ".zattrs").read_text())["multiscales"][0]
    assert meta["datasets"][0]["coordinateTransformations"][0]["scale"] == [1.0, 0.5, 0.6]


def test_nothing_existing_is_overwritten_without_asking(tmp_path, capsys):
    labels_path = write_labels_tiff(tmp_path / "a_labels.tif", awkward_labels())
    out = tmp_path / "out.geojson"
    out.write_text("keep me")
    one_error_line(capsys, main(["export", str(labels_path), "--format", "geojson", "-o", str(out)]),
                   "already exists")
    assert out.read_text() == "keep me"
    assert main(["export", str(labels_path), "--format", "geojson", "-o", str(out), "--overwrite"]) == 0
    assert json.loads(out.read_text())["type"] == "FeatureCollection"


def test_mistakes_are_one_line_on_stderr(tmp_path, capsys):
    labels_path = write_labels_tiff(tmp_path / "a_labels.tif", awkward_labels())
    tifffile.imwrite(tmp_path / "small.tif", np.zeros((10, 10), np.uint8))
    one_error_line(capsys, main(["export", str(labels_path), "--format", "ome-zarr", "--image",
                                 str(tmp_path / "small.tif")]), "do not match the image")
    one_error_line(capsys, main(["export", str(labels_path), "--format", "imagej", "--image",
                                 str(tmp_path / "small.tif")]), "--image is used by --format ome-zarr only")
    empty = write_labels_tiff(tmp_path / "empty_labels.tif", np.zeros((8, 8), np.uint16))
    one_error_line(capsys, main(["export", str(empty), "--format", "imagej"]), "no objects")
    one_error_line(capsys, main(["export", str(tmp_path / "missing.tif"), "--format", "geojson"]),
                   "missing.tif: no such file")
    one_error_line(capsys, main(["export", str(labels_path), "--format", "ome-zarr", "--pixel-size", "0", "1"]),
                   "--pixel-size must be a positive number")
    for fmt in ("geojson", "imagej"):  # taken silently, it changed nothing
        one_error_line(capsys, main(["export", str(labels_path), "--format", fmt, "--pixel-size", "0.5", "0.5"]),
                       "--pixel-size is used by --format ome-zarr only")
    one_error_line(capsys, main(["export", str(labels_path), "--format", "imagej", "--stack-axis", "t"]),
                   "--stack-axis is used by --format geojson and ome-zarr only")
    one_error_line(capsys, main(["export", str(labels_path), "--format", "imagej", "-o",
                                 str(tmp_path / "wrong.geojson")]),
                   "wrong.geojson does not end in .zip: --format imagej writes a ROI set (.zip)")
    assert not list(tmp_path.glob("*.zip")) and not list(tmp_path.glob("*.ome.zarr"))
    assert not (tmp_path / "wrong.geojson").exists()


def test_the_objects_table_beside_the_labels_becomes_geojson_measurements(tmp_path):
    from napari_unet_seg.core.measure.table_csv import write_objects_csv

    labels_path = write_labels_tiff(tmp_path / "img_labels.tif", stack_labels())
    write_objects_csv(tmp_path / "img_objects.csv", {"label": np.array([1, 1, 2, 1]),
                                                    "slice": np.array([0, 1, 1, 2]),
                                                    "area": np.array([150.0, 150.0, 180.0, 64.0])})
    assert main(["export", str(labels_path), "--format", "geojson"]) == 0
    features = json.loads((tmp_path / "img_labels.geojson").read_text())["features"]
    assert [f["properties"]["measurements"]["area"] for f in features] == [150.0, 150.0, 180.0, 64.0]


def exported_provenance(out):
    """The record an export carries, read back from its own format."""
    if out.suffix == ".zip":
        return zip_provenance(out)
    holder = out / "labels" / "labels" / ".zattrs" if out.is_dir() else out  # OME-Zarr labels group, or GeoJSON
    return json.loads(holder.read_text()).get("napari_unet_seg", {}).get("provenance")


@pytest.mark.parametrize("fmt, pixel_size", [("imagej", None), ("geojson", None), ("ome-zarr", (0.5, 0.5))])
def test_our_labels_provenance_travels_into_every_format(tmp_path, fmt, pixel_size):
    record = provenance_record()
    labels_path = write_labels_tiff(tmp_path / "img_labels.tif", stack_labels(), pixel_size=pixel_size,
                                    provenance=record)  # with a pixel size: the ImageJ "Info" flavour
    out = tmp_path / f"out-{fmt}"
    out = out.with_suffix(".zip" if fmt == "imagej" else ".ome.zarr" if fmt == "ome-zarr" else ".geojson")
    assert main(["export", str(labels_path), "--format", fmt, "-o", str(out)]) == 0
    record = {**record, "labels_digest": labels_digest(stack_labels())}  # the record the labels file holds
    assert exported_provenance(out) == record
    assert read_provenance(out) == record  # what `unet-seg provenance` reads, from the export itself


def test_a_batch_zarrs_provenance_travels_and_foreign_labels_export_without_one(tmp_path):
    record = provenance_record()
    store = zarr.open_array(str(tmp_path / "big_labels.zarr"), mode="w", shape=(60, 70), chunks=(32, 32),
                            dtype=np.uint32)
    store[:] = awkward_labels()
    store.attrs["napari_unet_seg"] = {"provenance": record}
    assert main(["export", str(tmp_path / "big_labels.zarr"), "--format", "geojson"]) == 0
    assert exported_provenance(tmp_path / "big_labels.geojson") == record
    tifffile.imwrite(tmp_path / "theirs.tif", awkward_labels().astype(np.uint16))
    assert main(["export", str(tmp_path / "theirs.tif"), "--format", "imagej"]) == 0
    assert zip_provenance(tmp_path / "theirs_rois.zip") is None


def test_an_image_given_as_labels_is_warned_about_in_one_line(tmp_path, capsys):
    image = (np.random.default_rng(0).random((64, 64)) * 200).astype(np.uint8)
    tifffile.imwrite(tmp_path / "img.tif", image)
    assert main(["export", str(tmp_path / "img.tif"), "--format", "geojson"]) == 0  # exported all the same
    printed = capsys.readouterr()
    assert printed.err == (f"unet-seg export: warning: {tmp_path / 'img.tif'} changes value from pixel to pixel, "
                           "like an image rather than labels: did you pick the image as labels?\n")
    labels_path = write_labels_tiff(tmp_path / "a_labels.tif", awkward_labels())
    assert main(["export", str(labels_path), "--format", "geojson"]) == 0
    assert capsys.readouterr().err == ""


def test_a_table_of_other_labels_or_a_file_that_is_no_table_is_refused(tmp_path, capsys):
    """Ids would be matched with another image's objects: a table made from other labels is refused."""
    from napari_unet_seg.core.measure.measurements import measure_objects
    from napari_unet_seg.core.measure.table_csv import write_objects_csv

    labels_path = write_labels_tiff(tmp_path / "img_labels.tif", awkward_labels())
    write_objects_csv(tmp_path / "other_objects.csv", {"label": np.array([1, 2]), "area": np.array([1.0, 2.0])},
                      {"labels": "other_labels.tif"})
    code = main(["export", str(labels_path), "--format", "geojson", "--measurements",
                 str(tmp_path / "other_objects.csv")])
    one_error_line(capsys, code, "other_objects.csv measures other_labels.tif, not img_labels.tif")
    code = main(["export", str(labels_path), "--format", "geojson", "--measurements", str(labels_path)])
    one_error_line(capsys, code, "is not a CSV table")
    write_objects_csv(tmp_path / "layer.csv", measure_objects(awkward_labels()),
                      {"labels": "nuclei labels"})  # saved from the dock: a layer's name, not a file's
    assert main(["export", str(labels_path), "--format", "geojson", "--measurements",
                 str(tmp_path / "layer.csv")]) == 0
    assert not (tmp_path / "other_labels.geojson").exists()


def test_a_table_of_labels_corrected_since_is_not_attached(tmp_path, capsys):
    """Labels edited after measuring (as in Fiji): their old table would give QuPath areas of objects gone."""
    from napari_unet_seg.core.measure.measurements import measure_objects
    from napari_unet_seg.core.measure.table_csv import write_objects_csv

    labels = awkward_labels()
    write_objects_csv(tmp_path / "img_objects.csv", measure_objects(labels), {"labels": "img_labels.tif"})
    edited = labels.copy()
    edited[edited == edited.max()] = 0  # one object deleted
    edited[:6, :6] = 77  # one painted
    labels_path = write_labels_tiff(tmp_path / "img_labels.tif", edited)
    assert main(["export", str(labels_path), "--format", "geojson"]) == 0
    err = capsys.readouterr().err
    assert "img_objects.csv was not attached: it no longer describes the labels" in err and "unet-seg measure" in err
    features = json.loads((tmp_path / "img_labels.geojson").read_text())["features"]
    assert all("area" not in f["properties"].get("measurements", {}) for f in features)
    code = main(["export", str(labels_path), "--format", "ome-zarr", "--measurements",
                 str(tmp_path / "img_objects.csv")])
    one_error_line(capsys, code, "img_objects.csv no longer describes img_labels.tif")
    moved = labels.copy()
    moved[moved == 1] = 0
    moved[np.roll(labels == 1, 1, axis=0)] = 1  # the same area, one pixel lower: its centroid is stale
    moved_path = write_labels_tiff(tmp_path / "moved_labels.tif", moved)
    write_objects_csv(tmp_path / "moved_objects.csv", measure_objects(labels), {"labels": "moved_labels.tif"})
    assert main(["export", str(moved_path), "--format", "geojson"]) == 0
    assert "1 object(s) moved (e.g. 1)" in capsys.readouterr().err
    write_objects_csv(tmp_path / "img_objects.csv", measure_objects(edited), {"labels": "img_labels.tif"})
    assert main(["export", str(labels_path), "--format", "geojson", "--overwrite"]) == 0  # measured again: attached
    features = json.loads((tmp_path / "img_labels.geojson").read_text())["features"]
    assert all("area" in f["properties"]["measurements"] for f in features)


def test_an_output_that_is_one_of_the_inputs_is_refused_even_with_overwrite(tmp_path, capsys):
    from napari_unet_seg.core.export import write_ome_zarr

    labels = np.zeros((40, 50), np.uint16)
    labels[5:15, 5:15] = 1
    store = write_ome_zarr(tmp_path / "both.ome.zarr", labels, np.ones((40, 50), np.uint8))
    before = sorted(p.relative_to(store) for p in store.rglob("*"))
    assert main(["export", str(store), "--format", "ome-zarr", "-o", str(store), "--overwrite"]) == 2
    assert "is one of the inputs" in capsys.readouterr().err
    assert sorted(p.relative_to(store) for p in store.rglob("*")) == before
