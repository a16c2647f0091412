"""Nothing the user made is lost to a batch: their summary.csv, their hand-made labels, earlier runs' rows."""

from __future__ import annotations

import os
from dataclasses import replace

import numpy as np
import pytest
import tifffile
import zarr
from helpers import synthetic_nuclei, threshold_model

from napari_unet_seg import save_model
from napari_unet_seg.core.batch.existing import output_provenance
from napari_unet_seg.core.batch.jobs import find_jobs
from napari_unet_seg.core.batch.runner import run_batch
from napari_unet_seg.core.batch.summary import (
    EARLIER_RUN,
    SUMMARY_NAME,
    is_summary_csv,
    read_summary,
    summary_note,
    summary_path,
)
from napari_unet_seg.core.imageio import write_labels_tiff


@pytest.fixture
def mine(tmp_path):
    """A folder holding both the images and the results, as a newcomer does: ``unet-seg predict mine -o mine``."""
    folder = tmp_path / "mine"
    folder.mkdir()
    for i in range(2):
        tifffile.imwrite(folder / f"cells_{i}.tif", synthetic_nuclei((48, 64), n=6, seed=i)[0])
    return folder


def test_a_summary_csv_the_user_made_is_kept_and_ours_goes_to_a_free_name(mine, options):
    (mine / SUMMARY_NAME).write_text("my notes\n")
    assert summary_note(mine).endswith(f"kept; this batch's summary is {mine / 'summary-2.csv'}")
    results = run_batch([mine], mine, options)
    assert (mine / SUMMARY_NAME).read_text() == "my notes\n"
    assert summary_path(mine) == mine / "summary-2.csv" and is_summary_csv(mine / "summary-2.csv")
    assert [r.file for r in read_summary(mine)] == [r.file for r in results]
    run_batch([mine], mine, options)  # a rerun finds its own summary again: no summary-3.csv
    assert sorted(p.name for p in mine.glob("summary*")) == ["summary-2.csv", SUMMARY_NAME]
    assert (mine / SUMMARY_NAME).read_text() == "my notes\n" and len(read_summary(mine)) == 2


def test_rows_in_summary_2_still_count_once_the_users_summary_is_gone(mine, options):
    (mine / SUMMARY_NAME).write_text("my notes\n")
    first = {r.file: r for r in run_batch([mine], mine, options)}
    (mine / SUMMARY_NAME).unlink()  # the user moves their notes away: ours becomes summary.csv again
    run_batch([mine], mine, options)
    rows = {r.file: r for r in read_summary(mine)}
    assert summary_path(mine) == mine / SUMMARY_NAME
    assert {f: (r.status, r.objects) for f, r in rows.items()} == {f: ("ok", r.objects) for f, r in first.items()}
    assert all(r.objects > 0 for r in first.values())


def test_summaries_of_every_version_are_recognised_as_ours(tmp_path):
    older = tmp_path / "older.csv"  # before the settings column
    older.write_text("file,status,objects,mean_area,seconds,message,output\n")
    assert is_summary_csv(older)
    for text in ("my notes\n", "", "file,status\n", "objects,file,status,mean_area,seconds,message,output\n"):
        (tmp_path / "theirs.csv").write_text(text)
        assert not is_summary_csv(tmp_path / "theirs.csv"), text
    (tmp_path / "folder" / SUMMARY_NAME).mkdir(parents=True)
    assert summary_path(tmp_path / "folder") == tmp_path / "folder" / "summary-2.csv"


def test_a_rerun_keeps_the_first_runs_rows_of_the_files_it_skips(mine, options):
    first = {r.file: r for r in run_batch([mine], mine, options)}
    second = run_batch([mine], mine, options)
    assert [r.status for r in second] == ["skipped", "skipped"]  # this run's report is unchanged
    for _ in range(2):  # and a third run does not mark them twice
        rows = {r.file: r for r in read_summary(mine)}
        for file, row in rows.items():
            assert (row.status, row.objects, row.seconds, row.settings) == ("ok", first[file].objects,
                                                                           first[file].seconds, first[file].settings)
            assert row.seconds > 0 and row.message == EARLIER_RUN
        run_batch([mine], mine, options)


def test_hand_made_labels_are_kept_even_with_overwrite(mine, options):
    truth = synthetic_nuclei((48, 64), n=6, seed=0)[1]
    annotation = mine / "cells_0_labels.tif"  # as sample_data/ names ground truth
    tifffile.imwrite(annotation, truth, resolution=(2.0, 2.0), imagej=True, metadata={"unit": "um"})
    before = annotation.read_bytes()
    for overwrite in (False, True):
        rows = {os.path.basename(r.file): r for r in run_batch([mine], mine, options, overwrite=overwrite)}
        kept = rows["cells_0.tif"]
        assert kept.status == "skipped" and "not written by unet-seg" in kept.message
        assert "even with overwrite" in kept.message and "choose another output folder" in kept.message
        assert annotation.read_bytes() == before and not (mine / "cells_0_objects.csv").exists()
        assert rows["cells_1.tif"].status == "ok"
    [row] = [r for r in read_summary(mine) if r.file.endswith("cells_0.tif")]
    assert row.status == "skipped" and "not written by unet-seg" in row.message  # not passed off as segmented
    import csv

    with open(mine / "summary.csv", newline="", encoding="utf-8") as f:
        [written] = [r for r in csv.DictReader(f) if r["file"].endswith("cells_0.tif")]
    assert written["objects"] == written["mean_area"] == ""  # not "0 objects": nobody counted the user's file


def test_outputs_we_wrote_are_ours_in_every_format_and_overwrite_redoes_them(tmp_path, folder, options):
    root, _ = folder
    image = synthetic_nuclei((100, 90), n=10, seed=5)[0]
    source = zarr.open_array(str(root / "big.zarr"), mode="w", shape=image.shape, chunks=(32, 32), dtype="u1")
    source[:] = image
    out = tmp_path / "out"
    inputs = [root / "a.tif", root / "b c.png", root / "stack.tif", root / "big.zarr"]  # ImageJ, plain, stack, zarr
    first = run_batch(inputs, out, options)
    assert [r.status for r in first] == ["ok"] * 4
    assert all(output_provenance(r.output) is not None for r in first)
    again = run_batch(inputs, out, options, overwrite=True)
    assert [r.status for r in again] == ["ok"] * 4


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.uint32])
@pytest.mark.parametrize("pixel_size", [None, (0.5, 0.5)])
@pytest.mark.parametrize("stack", [False, True])
def test_every_tiff_we_write_is_ours_and_a_plain_one_is_not(tmp_path, dtype, pixel_size, stack):
    labels = synthetic_nuclei((32, 40), n=4)[1].astype(dtype)
    labels = np.stack([labels, labels]) if stack else labels
    record = {"format": "napari-unet-seg provenance 1", "model": {"name": "nuclei"}, "settings": {}}
    assert output_provenance(write_labels_tiff(tmp_path / "ours.tif", labels, pixel_size, provenance=record))
    tifffile.imwrite(tmp_path / "theirs.tif", labels)
    assert output_provenance(tmp_path / "theirs.tif") is None
    (tmp_path / "broken.tif").write_bytes(b"II*\x00garbage")
    assert output_provenance(tmp_path / "broken.tif") is None


def test_a_zarr_store_the_user_made_is_kept_even_with_overwrite(tmp_path, options):
    image = synthetic_nuclei((64, 64), n=6, seed=2)[0]
    source = zarr.open_array(str(tmp_path / "big.zarr"), mode="w", shape=image.shape, chunks=(32, 32), dtype="u1")
    source[:] = image
    out = tmp_path / "out"
    theirs = zarr.open_array(str(out / "big_labels.zarr"), mode="w", shape=image.shape, dtype="u2")
    theirs[:5, :5] = 7
    [row] = run_batch([tmp_path / "big.zarr"], out, options, overwrite=True)
    assert row.status == "skipped" and "not written by unet-seg" in row.message
    assert zarr.open_array(str(out / "big_labels.zarr"), mode="r")[0, 0] == 7


def test_a_skip_names_the_settings_that_differ(tmp_path, folder, options):
    root, _ = folder
    out = tmp_path / "out"
    run_batch([root / "a.tif"], out, options)
    other = save_model(threshold_model(), tmp_path / "models" / "other.safetensors")
    [row] = run_batch([root / "a.tif"], out, replace(options, model=str(other)))
    assert row.status == "skipped" and "made with other settings (model: disks -> other)" in row.message
    changed = replace(options, diameter=12.5, flip_average=True)
    [row] = run_batch([root / "a.tif"], out, changed)
    assert "(diameter: auto -> 12.5 px, flip averaging: off -> on)" in row.message
    [row] = run_batch([root / "a.tif"], out, options)
    assert row.message == "output exists (use overwrite to redo it)"
    [row] = run_batch([root / "a.tif"], out, replace(options, output="semantic"))  # a mask: beside the objects
    assert row.status == "ok" and row.output.endswith("a_classes.tif") and (out / "a_labels.tif").exists()


def test_an_output_folder_that_is_a_file_is_one_clean_line_before_any_work(tmp_path, folder, options):
    root, _ = folder
    notes = tmp_path / "notes.txt"
    notes.write_text("mine")
    for start in (lambda: find_jobs([root], notes), lambda: run_batch([root], notes, options)):
        with pytest.raises(OSError) as info:
            start()
        assert str(info.value) == f"output {notes} exists and is not a folder"  # no "[Errno None]", the path once
    assert notes.read_text() == "mine"


def test_an_output_folder_that_cannot_be_made_is_one_clean_line(tmp_path, folder, options):
    root, _ = folder
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(OSError) as info:
        run_batch([root / "a.tif"], tmp_path / "notes.txt" / "out", options)
    assert str(info.value).startswith(f"cannot write to {tmp_path / 'notes.txt' / 'out'}: ")
    assert "Errno" not in str(info.value)


def test_a_class_run_into_the_same_folder_keeps_the_objects_rows_and_each_kind_keeps_its_own(tmp_path, folder, options):
    from dataclasses import replace

    from helpers import brightness_class_model
    from napari_unet_seg import save_model
    from napari_unet_seg.core.batch.runner import run_batch
    from napari_unet_seg.core.batch.summary import read_summary

    root, _ = folder
    out = tmp_path / "out"
    classes = replace(options, model=str(save_model(brightness_class_model(), tmp_path / "models" / "cls.safetensors")))

    def by_output() -> dict:
        return {r.output: r for r in read_summary(out) if r.output}

    run_batch([str(root / "a.tif"), str(root / "b c.png")], out, options)
    nuclei = by_output()
    assert len(nuclei) == 2 and all(p.endswith("_labels.tif") for p in nuclei)
    run_batch([str(root / "a.tif"), str(root / "b c.png")], out, classes)
    both = by_output()
    assert {p for p in both if p.endswith("_classes.tif")} and set(nuclei) <= set(both)  # the objects' rows stay
    assert all(both[p].objects == nuclei[p].objects and both[p].status == "ok" for p in nuclei)
    run_batch([str(root / "a.tif"), str(root / "b c.png")], out, options)  # nothing to do: the class rows stay
    again = by_output()
    assert set(again) == set(both)
    assert all("left no row" not in r.message for r in again.values())
    assert len(read_summary(out)) == 4  # one row per file and kind of output
