"""A rerun repairs what a run left undone, and a batch never counts, writes or reports a file twice.

The same input named twice is segmented once; a finished output whose objects table is missing gets it on
resume; summary.csv holds one row per file whenever it is read; a run stopped by the interpreter shutting
down (napari closed mid-batch) marks no file as failed.
"""

from __future__ import annotations

import concurrent.futures.thread
import csv
import errno
import os
from pathlib import Path

import numpy as np
import pytest
import tifffile
from helpers import synthetic_nuclei

from napari_unet_seg.core.batch import files, objects
from napari_unet_seg.core.batch.jobs import find_jobs
from napari_unet_seg.core.batch.runner import iter_jobs, run_batch, run_jobs
from napari_unet_seg.core.batch.summary import EARLIER_RUN, SUMMARY_NAME, read_summary, write_summary
from napari_unet_seg.core.measure.table_csv import read_objects_csv


def _images(folder: Path, *names: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        tifffile.imwrite(folder / name, synthetic_nuclei((48, 64), n=5 + i, seed=i)[0])
    return folder


def _raw_rows(out: Path) -> list[dict[str, str]]:
    """summary.csv as a reader sees it on disk, every row, none merged."""
    with open(out / SUMMARY_NAME, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _one_row_per_file(out: Path) -> list[dict[str, str]]:
    rows = _raw_rows(out)
    names = [os.path.basename(r["file"]) for r in rows]
    assert len(names) == len(set(names)), f"duplicate rows in summary.csv: {sorted(names)}"
    return rows


# ---------------------------------------------------------------- 1. the same input named twice counts once


def test_a_folder_and_a_file_inside_it_are_one_input(tmp_path):
    dup = _images(tmp_path / "dup", "calib.tif", "other.tif")
    out = tmp_path / "dupout"
    jobs = find_jobs([dup, dup / "calib.tif"], out)
    assert sorted(j.target.name for j in jobs) == ["calib_labels.tif", "other_labels.tif"]
    jobs = find_jobs([dup / "calib.tif", dup / "calib.tif", dup], out)  # named twice, then its folder
    assert [j.target.name for j in jobs] == ["calib_labels.tif", "other_labels.tif"]


def test_other_spellings_links_and_overlapping_globs_of_one_file_are_one_input(tmp_path, monkeypatch):
    dup = _images(tmp_path / "dup", "calib.tif")
    (tmp_path / "link").symlink_to(dup, target_is_directory=True)
    (tmp_path / "calib-link.tif").symlink_to(dup / "calib.tif")
    monkeypatch.chdir(tmp_path)
    spellings = ["dup/calib.tif", "./dup/calib.tif", "dup/../dup/calib.tif", str(dup / "calib.tif"),
                 "link/calib.tif", "calib-link.tif", "link", *sorted(map(str, Path("dup").glob("*.tif")))]
    jobs = find_jobs(spellings, tmp_path / "out")
    assert [(str(j.source), j.target.name) for j in jobs] == [("dup/calib.tif", "calib_labels.tif")]


def test_a_recursive_folder_and_its_subfolder_give_each_file_once_where_the_folder_puts_it(tmp_path):
    root = tmp_path / "in"
    _images(root / "sub", "x.tif")
    _images(root, "y.tif")
    out = tmp_path / "out"
    alone = {j.source.resolve(): j.target for j in find_jobs([root], out, recursive=True)}
    for inputs in ([root, root / "sub"], [root / "sub", root], [root / "sub" / "x.tif", root]):
        jobs = find_jobs(inputs, out, recursive=True)
        assert {j.source.resolve(): j.target for j in jobs} == alone  # out/sub/x_labels.tif, as the folder alone


def test_different_files_of_one_name_still_get_outputs_of_their_own(tmp_path):
    for day in ("day1", "day2"):
        _images(tmp_path / day, "img.tif")
    jobs = find_jobs([tmp_path / "day1", tmp_path / "day2", tmp_path / "day1" / "img.tif"], tmp_path / "out")
    assert sorted(j.target.name for j in jobs) == ["img_labels.tif", "img_tif_labels.tif"]


def test_a_file_given_twice_is_segmented_written_and_counted_once(tmp_path, options):
    dup = _images(tmp_path / "dup", "calib.tif")
    out = tmp_path / "dupout"
    results = run_batch([dup, dup / "calib.tif"], out, options)
    assert [(r.status, Path(r.output).name) for r in results] == [("ok", "calib_labels.tif")]
    assert sorted(p.name for p in out.glob("*.tif")) == ["calib_labels.tif"]
    assert sorted(p.name for p in out.glob("*.csv")) == ["calib_objects.csv", SUMMARY_NAME]
    assert len(_raw_rows(out)) == 1


# ---------------------------------------------------------------- 2. a missing objects table is made on resume


def _table(path: Path) -> tuple[dict, dict]:
    table, comments = read_objects_csv(path)
    return {k: np.asarray(v).tolist() for k, v in table.items()}, comments


def test_a_deleted_objects_table_is_measured_again_from_the_labels_on_resume(tmp_path, options):
    root = _images(tmp_path / "in", "a.tif", "b.tif")
    out = tmp_path / "out"
    first = {Path(r.file).name: r for r in run_batch([root], out, options)}
    made = _table(out / "a_objects.csv")
    labels = (out / "a_labels.tif").read_bytes()
    (out / "a_objects.csv").unlink()
    again = {Path(r.file).name: r for r in run_batch([root], out, options)}
    assert _table(out / "a_objects.csv") == made  # the same table, measured from the labels as written
    assert (out / "a_labels.tif").read_bytes() == labels  # never rewritten
    a = again["a.tif"]
    assert a.status == "skipped" and "objects table" in a.message and a.objects == first["a.tif"].objects
    assert again["b.tif"].message == files.EXISTS  # its table is there: nothing said, nothing redone
    row = {Path(r.file).name: r for r in read_summary(out)}["a.tif"]
    assert row.message.startswith(EARLIER_RUN) and "objects table" in row.message
    assert (row.objects, row.mean_area) == (first["a.tif"].objects, first["a.tif"].mean_area)


def test_a_table_a_full_disk_kept_from_being_written_is_written_on_resume_and_the_row_says_so(
        tmp_path, options, monkeypatch):
    root = _images(tmp_path / "in", "a.tif")
    out = tmp_path / "out"
    real = objects.write_objects_csv

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(objects, "write_objects_csv", full_disk)
    [first] = run_batch([root], out, options)
    assert first.status == "ok" and "objects table not written: [Errno 28] No space left" in first.message
    assert not (out / "a_objects.csv").exists()
    monkeypatch.setattr(objects, "write_objects_csv", real)  # space freed
    [again] = run_batch([root], out, options)
    table, comments = _table(out / "a_objects.csv")
    assert len(table["label"]) == first.objects > 0 and comments["labels"] == "a_labels.tif"
    [row] = read_summary(out)
    assert "No space left" not in row.message and "objects table" in row.message
    assert (row.status, row.objects, row.mean_area) == ("ok", first.objects, first.mean_area)
    assert "No space left" not in again.message


def test_a_run_killed_right_after_the_labels_leaves_a_table_and_a_row_to_the_next_run(tmp_path, options):
    root = _images(tmp_path / "in", "a.tif")
    out = tmp_path / "out"
    [first] = run_batch([root], out, options)
    (out / "a_objects.csv").unlink()  # killed after the labels were written: no table, no row
    write_summary([], out)
    [again] = run_batch([root], out, options)
    assert (again.objects, again.mean_area) == (first.objects, first.mean_area)
    assert "counts read from the output" in again.message and "objects table" in again.message
    assert len(_table(out / "a_objects.csv")[0]["label"]) == first.objects
    [row] = read_summary(out)
    assert row.objects == first.objects and "objects table" in row.message
    assert row.settings == first.settings != ""  # made with these settings: its row says so, as the first one did
    assert row.status == "ok" and row.message.startswith("from an earlier run; ")  # a finished output, not "skipped"
    run_batch([root], out, options)
    [row] = read_summary(out)
    assert row.status == "ok" and row.objects == first.objects  # and so on every later rerun


def test_a_zarr_output_gets_its_missing_table_measured_from_the_store(tmp_path, options):
    import zarr

    image, _ = synthetic_nuclei((100, 90), n=10, seed=5)
    source = zarr.open_array(str(tmp_path / "big.zarr"), mode="w", shape=image.shape, chunks=(32, 32), dtype="u1")
    source[:] = image
    out = tmp_path / "out"
    [first] = run_batch([tmp_path / "big.zarr"], out, options)
    made = _table(out / "big_objects.csv")
    (out / "big_objects.csv").unlink()
    [again] = run_batch([tmp_path / "big.zarr"], out, options)
    assert again.status == "skipped" and _table(out / "big_objects.csv") == made and again.objects == first.objects


def test_no_table_is_made_when_measuring_is_off_nor_over_a_users_table(tmp_path, options):
    root = _images(tmp_path / "in", "a.tif")
    out = tmp_path / "out"
    run_batch([root], out, options)
    (out / "a_objects.csv").unlink()
    unmeasured = [j.__class__(j.source, j.target, measure=False, qc=j.qc) for j in find_jobs([root], out)]
    [row] = run_jobs(unmeasured, out, options)  # --no-measure
    assert not (out / "a_objects.csv").exists() and row.message == files.EXISTS
    (out / "a_objects.csv").write_text("my own notes\n")
    run_batch([root], out, options)
    assert (out / "a_objects.csv").read_text() == "my own notes\n"


# ---------------------------------------------------------------- 3. one row per file in summary.csv, always


def test_an_overwrite_run_killed_midway_leaves_one_row_per_file(tmp_path, options):
    root = _images(tmp_path / "in", "a.tif", "b.tif", "c.tif")
    out = tmp_path / "out"
    run_batch([root], out, options)
    stream = iter_jobs(find_jobs([root], out), out, options, overwrite=True)
    next(stream)  # a file redone: its row is in the summary now
    rows = _one_row_per_file(out)  # what a kill -9 right now would leave
    assert sorted(os.path.basename(r["file"]) for r in rows) == ["a.tif", "b.tif", "c.tif"]
    assert all(r["status"] == "ok" for r in rows)
    stream.close()
    _one_row_per_file(out)


def test_summary_csv_holds_one_row_per_file_after_every_file_of_an_overwrite_run(tmp_path, options):
    root = _images(tmp_path / "in", "a.tif", "b.tif", "c.tif")
    out = tmp_path / "out"
    run_batch([root], out, options)
    seen = []
    run_batch([root], out, options, overwrite=True, on_result=lambda r: seen.append(len(_one_row_per_file(out))))
    assert seen == [3, 3, 3] and len(_one_row_per_file(out)) == 3


def test_a_failed_redo_replaces_the_ok_row_of_the_earlier_run(tmp_path, options, monkeypatch):
    root = _images(tmp_path / "in", "a.tif", "b.tif")
    out = tmp_path / "out"
    run_batch([root], out, options)
    real = files.segment_image

    def fails_on_a(data, *args, image_path=None, **kwargs):
        if Path(image_path).name == "a.tif":
            raise ValueError("the GPU fell over")
        return real(data, *args, image_path=image_path, **kwargs)

    monkeypatch.setattr(files, "segment_image", fails_on_a)
    monkeypatch.chdir(tmp_path)  # typed otherwise than the first run: still the same file's row
    seen = []
    run_batch([Path("in")], out, options, overwrite=True, on_result=lambda r: seen.append(_one_row_per_file(out)))
    rows = {os.path.basename(r["file"]): r for r in _one_row_per_file(out)}
    assert rows["a.tif"]["status"] == "failed" and "GPU fell over" in rows["a.tif"]["message"]
    assert rows["b.tif"]["status"] == "ok" and len(rows) == 2 and len(seen) == 2


def test_rows_of_files_a_run_does_not_touch_are_kept(tmp_path, options):
    root = _images(tmp_path / "in", "a.tif", "b.tif")
    out = tmp_path / "out"
    run_batch([root], out, options)
    run_batch([root / "a.tif"], out, options, overwrite=True)
    rows = {os.path.basename(r["file"]): r for r in _one_row_per_file(out)}
    assert sorted(rows) == ["a.tif", "b.tif"] and all(r["status"] == "ok" for r in rows.values())


# ---------------------------------------------------------------- 4. the interpreter shutting down is no failure

SHUTDOWN = "cannot schedule new futures after interpreter shutdown"


def test_a_file_stopped_by_the_interpreter_shutting_down_is_not_failed(tmp_path, options, monkeypatch):
    root = _images(tmp_path / "in", "zz_big4096.tif")

    def shutting_down(*args, **kwargs):
        raise RuntimeError(SHUTDOWN)

    monkeypatch.setattr(files, "segment_image", shutting_down)
    results = run_batch([root], tmp_path / "out", options)
    assert results == []  # not finished, as a cancelled file: no row, never "failed"
    assert read_summary(tmp_path / "out") == []
    assert not list((tmp_path / "out").glob("*.tif"))


def test_closing_napari_mid_batch_stops_the_run_without_failed_rows(tmp_path, options, monkeypatch):
    """What closing the viewer does: every executor refuses new work; the run ends quietly, keeping what finished."""
    root = _images(tmp_path / "in", *(f"f{i}.tif" for i in range(6)))
    real = files.segment_image

    def refused_after_shutdown(*args, **kwargs):  # as the pipeline's own executors do then
        if concurrent.futures.thread._shutdown:
            raise RuntimeError(SHUTDOWN)
        return real(*args, **kwargs)

    def close_napari(result):  # once the first file is done
        monkeypatch.setattr(concurrent.futures.thread, "_shutdown", True)

    monkeypatch.setattr(files, "segment_image", refused_after_shutdown)
    results = run_batch([root], tmp_path / "out", options, on_result=close_napari)  # raises nothing
    assert results and all(r.status == "ok" for r in results) and len(results) < 6
    rows = read_summary(tmp_path / "out")
    assert sorted(r.file for r in rows) == sorted(r.file for r in results)
    assert not any("cannot schedule" in r.message for r in rows)


def test_a_table_the_shutdown_kept_from_being_measured_says_so_and_a_rerun_measures_it(tmp_path, options, monkeypatch):
    root = _images(tmp_path / "in", "a.tif")
    out = tmp_path / "out"
    real = objects.measure_objects

    def shutting_down(*args, **kwargs):
        raise RuntimeError(SHUTDOWN)

    monkeypatch.setattr(objects, "measure_objects", shutting_down)
    [first] = run_batch([root], out, options)  # the labels were written before napari closed
    assert first.status == "ok" and "the run was stopped" in first.message and "cannot schedule" not in first.message
    monkeypatch.setattr(objects, "measure_objects", real)
    [again] = run_batch([root], out, options)
    assert first.objects > 0  # counted all the same, by the run
    assert (out / "a_objects.csv").exists() and again.objects == first.objects
    [row] = read_summary(out)
    assert "the run was stopped" not in row.message and row.objects == again.objects


def test_a_cells_regrowth_stopped_by_shutdown_is_not_failed(tmp_path, options, monkeypatch):
    from napari_unet_seg.core.batch.jobs import Job
    from napari_unet_seg.core.model.registry import load_model

    root = _images(tmp_path / "in", "a.tif")
    job = Job(root / "a.tif", tmp_path / "a_labels.tif", cells_only=True)

    def shutting_down(*args, **kwargs):
        raise RuntimeError(SHUTDOWN)

    monkeypatch.setattr(files, "regrow_cells", shutting_down)
    assert files.segment_file(job, load_model(options.model), options) is None


@pytest.mark.parametrize("message", ["cannot schedule new futures after shutdown", SHUTDOWN])
def test_only_the_shutdown_error_is_taken_for_a_stop(message):
    from napari_unet_seg.core.batch.errors import stopped_by_shutdown

    assert stopped_by_shutdown(RuntimeError(message))
    assert not stopped_by_shutdown(RuntimeError("CUDA error: out of memory"))
    assert not stopped_by_shutdown(ValueError(message))
