import os
import zipfile

import numpy as np
import pytest
import roifile
from export_shapes import awkward_labels, fill_rings, iou, provenance_record, stack_labels, zip_provenance

from napari_unet_seg.core.export import write_imagej_rois
from napari_unet_seg.core.export.stamp import ZIP_COMMENT_LIMIT, read_zip_comment


def roi_mask(roi, shape):
    return fill_rings(roi.coordinates(multi=True), shape)


def test_every_object_reads_back_as_its_own_roi(tmp_path):
    labels = awkward_labels()
    path = write_imagej_rois(tmp_path / "rois.zip", labels)
    rois = roifile.roiread(path)
    names = [roi.name for roi in rois]
    assert names == ["label-00001", "label-00002", "label-00003", "label-00004", "label-00005", "label-00006",
                     "label-00007", "label-00008", "label-70000"]
    assert zipfile.ZipFile(path).namelist() == [f"{name}.roi" for name in names]
    for roi in rois:
        label = int(roi.name.split("-")[-1])
        assert iou(roi_mask(roi, labels.shape), labels == label) > 0.9, roi.name
        assert np.array_equal(roi_mask(roi, labels.shape), labels == label), roi.name  # in fact exact


def test_simple_objects_are_traced_polygons_and_holes_or_pieces_composite(tmp_path):
    rois = {roi.name: roi for roi in roifile.roiread(write_imagej_rois(tmp_path / "r.zip", awkward_labels()))}
    assert rois["label-00001"].roitype == roifile.ROI_TYPE.TRACED and not rois["label-00001"].composite
    assert rois["label-00002"].composite and len(rois["label-00002"].coordinates(multi=True)) == 2
    assert rois["label-00004"].composite and len(rois["label-00004"].coordinates(multi=True)) == 3
    pixel = rois["label-00005"]
    assert (pixel.left, pixel.top, pixel.right, pixel.bottom) == (50, 50, 51, 51)


def test_stack_rois_carry_their_slice(tmp_path):
    stack = stack_labels()
    rois = roifile.roiread(write_imagej_rois(tmp_path / "s.zip", stack))
    assert [(roi.name, roi.position) for roi in rois] == [
        ("slice-001-label-0001", 1), ("slice-002-label-0001", 2), ("slice-002-label-0002", 2),
        ("slice-003-label-0001", 3)]
    for roi in rois:
        k = roi.position - 1
        label = int(roi.name.split("-")[-1])
        assert np.array_equal(roi_mask(roi, stack.shape[1:]), stack[k] == label)


def test_empty_labels_are_refused_and_nothing_is_written(tmp_path):
    with pytest.raises(ValueError, match="no objects"):
        write_imagej_rois(tmp_path / "e.zip", np.zeros((5, 5), np.uint8))
    assert os.listdir(tmp_path) == []


def test_an_existing_file_is_kept_unless_overwrite(tmp_path):
    target = tmp_path / "r.zip"
    target.write_bytes(b"mine")
    labels = awkward_labels()
    with pytest.raises(FileExistsError, match="already exists"):
        write_imagej_rois(target, labels)
    assert target.read_bytes() == b"mine"
    write_imagej_rois(target, labels, overwrite=True)
    assert len(roifile.roiread(target)) == 9
    assert sorted(os.listdir(tmp_path)) == ["r.zip"]  # no temporary file left


def test_a_folder_that_cannot_be_written_is_one_line(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(OSError, match="cannot write to .*file.*not a folder"):
        write_imagej_rois(tmp_path / "file" / "r.zip", awkward_labels())


def test_provenance_rides_in_the_zip_comment_and_every_entry_stays_a_roi(tmp_path):
    record = provenance_record()
    path = write_imagej_rois(tmp_path / "p.zip", stack_labels(), provenance=record)
    with zipfile.ZipFile(path) as archive:
        assert read_zip_comment(archive.comment) == record
        assert all(name.endswith(".roi") for name in archive.namelist())  # Fiji opens by the first entry
    assert len(roifile.roiread(path)) == 4  # roifile reads every entry: a non-ROI one would break it
    assert zip_provenance(write_imagej_rois(tmp_path / "n.zip", stack_labels())) is None


def test_a_lineage_too_long_for_a_zip_comment_is_left_out_not_the_record(tmp_path):
    record = provenance_record()
    record["model"]["lineage"] = [{"data": "x" * 1000}] * 70
    path = write_imagej_rois(tmp_path / "long.zip", stack_labels(), provenance=record)
    with zipfile.ZipFile(path) as archive:
        assert len(archive.comment) <= ZIP_COMMENT_LIMIT
        kept = read_zip_comment(archive.comment)
    assert kept["command"] == record["command"] and kept["model"]["sha256"] == record["model"]["sha256"]
    assert kept["model"]["lineage"].startswith("left out")
