"""Killed, partial and changed reruns: summary.csv keeps every finished row, resumes never mislead."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import skimage.io
import tifffile
from helpers import synthetic_nuclei

from napari_unet_seg.core.batch.runner import run_batch
from napari_unet_seg.core.batch.summary import SUMMARY_NAME, read_summary


def test_summary_rows_are_written_as_files_finish(tmp_path, folder, options):
    root, _ = folder
    out = tmp_path / "out"
    in_summary = []

    def after_each(result):  # a kill right now would keep this file's row
        in_summary.append(result.file in [r.file for r in read_summary(out)])

    run_batch([root / "a.tif", root / "b c.png"], out, options, on_result=after_each)
    assert in_summary == [True, True]
    assert len(read_summary(out)) == 2


def test_a_rerun_on_part_of_a_folder_keeps_the_other_rows(tmp_path, folder, options):
    root, _ = folder
    out = tmp_path / "out"
    run_batch([root / "a.tif", root / "b c.png"], out, options)
    run_batch([root / "a.tif"], out, options, overwrite=True)
    rows = read_summary(out)
    assert sorted(os.path.basename(r.file) for r in rows) == ["a.tif", "b c.png"]
    assert all(r.status == "ok" and r.objects > 0 for r in rows)


def test_a_row_cut_short_by_a_kill_costs_only_that_row(tmp_path, folder, options):
    root, _ = folder
    out = tmp_path / "out"
    run_batch([root / "a.tif", root / "b c.png"], out, options)
    with open(out / SUMMARY_NAME, "a", encoding="utf-8") as f:
        f.write(f"{root / 'stack.tif'},ok,1")  # the process died mid-line
    assert sorted(os.path.basename(r.file) for r in read_summary(out)) == ["a.tif", "b c.png"]


def test_partial_files_of_a_killed_run_are_cleaned_up_and_a_live_runs_kept(tmp_path, folder, options):
    root, _ = folder
    out = tmp_path / "out"
    out.mkdir()
    dead = out / ".a_labels.tif.999999999.partial"
    dead.write_bytes(b"half")
    (out / ".big_labels.zarr.999999998.partial").mkdir()
    alive = out / f".b_labels.tif.{os.getpid()}.partial"
    alive.write_bytes(b"being written")
    users_own = [out / ".notes.partial", out / "sub" / ".download.123.partial"]  # not ours, or not where we write
    users_own[1].parent.mkdir()
    for path in users_own:
        path.write_bytes(b"keep me")
    run_batch([root / "a.tif"], out, options)
    assert not dead.exists() and not (out / ".big_labels.zarr.999999998.partial").exists()
    assert alive.exists() and all(path.exists() for path in users_own)


def test_a_rerun_of_one_of_two_same_named_images_finds_its_own_output_and_never_replaces_the_others(tmp_path,
                                                                                                  options):
    """Output names told apart within one run used to depend on the run's inputs: b alone mapped to a's labels,
    and the overwrite the skip advised replaced them with b's."""
    from napari_unet_seg.core.batch.jobs import find_jobs
    from napari_unet_seg.core.batch.runner import run_jobs
    from napari_unet_seg.core.batch.summary import read_summary

    for name, n in (("a", 3), ("b", 1)):
        (tmp_path / name).mkdir()
        image, _ = synthetic_nuclei((64, 64), n=n, seed=n)
        tifffile.imwrite(tmp_path / name / "image.tif", image)
    out = tmp_path / "out"
    first = run_jobs(find_jobs([tmp_path / "a" / "image.tif", tmp_path / "b" / "image.tif"], out), out, options)
    a_labels = (out / "image_labels.tif").read_bytes()
    [job] = find_jobs([tmp_path / "b" / "image.tif"], out)
    assert job.target == out / "image_tif_labels.tif"  # b's own, whichever inputs the run has
    [row] = run_jobs([job], out, options)
    assert row.status == "skipped" and row.message == "output exists (use overwrite to redo it)"
    assert row.objects == first[1].objects
    [row] = run_jobs(find_jobs([tmp_path / "b" / "image.tif"], out), out, options, overwrite=True)
    assert row.status == "ok" and row.output == str(out / "image_tif_labels.tif")
    assert (out / "image_labels.tif").read_bytes() == a_labels  # a's labels untouched
    assert {r.output for r in read_summary(out)} == {str(out / "image_labels.tif"), str(out / "image_tif_labels.tif")}
    [job] = find_jobs([tmp_path / "b" / "image.tif", tmp_path / "a" / "image.tif"], out)[:1]  # other order
    assert job.target == out / "image_tif_labels.tif"


def test_an_image_beside_one_of_another_kind_finds_its_own_output_with_a_pattern(tmp_path, options):
    from napari_unet_seg.core.batch.jobs import find_jobs

    (tmp_path / "in").mkdir()
    image, _ = synthetic_nuclei((64, 64), n=2, seed=0)
    tifffile.imwrite(tmp_path / "in" / "B.tif", image)
    skimage.io.imsave(tmp_path / "in" / "B.png", image, check_contrast=False)
    out = tmp_path / "out"
    run_batch([tmp_path / "in"], out, options)
    targets = {j.source.name: j.target.name for j in find_jobs([tmp_path / "in"], out)}
    assert targets == {"B.png": "B_labels.tif", "B.tif": "B_tif_labels.tif"}
    [job] = find_jobs([tmp_path / "in"], out, pattern="*.tif")
    assert job.target.name == "B_tif_labels.tif"  # not B.png's B_labels.tif


def test_outputs_made_with_other_settings_are_not_passed_off_as_this_runs(tmp_path, folder, options):
    root, _ = folder
    out = tmp_path / "out"
    [first] = run_batch([root / "a.tif"], out, options)
    [same] = run_batch([root / "a.tif"], out, options)
    assert same.status == "skipped" and "other settings" not in same.message and same.objects == first.objects
    [other] = run_batch([root / "a.tif"], out, replace(options, diameter=30.0))
    assert other.status == "skipped" and "other settings (diameter: auto -> 30 px)" in other.message


def test_a_rerun_tells_outputs_apart_by_the_image_they_were_made_from(tmp_path, options, monkeypatch):
    """The summary names files as each run was given them (relative to where it ran); the provenance decides."""
    from napari_unet_seg.core.batch.jobs import find_jobs
    from napari_unet_seg.core.batch.runner import run_jobs

    for name in ("e1", "e2"):
        (tmp_path / name / "in").mkdir(parents=True)
    tifffile.imwrite(tmp_path / "e1" / "in" / "x.tif", np.zeros((32, 32), np.uint8))
    tifffile.imwrite(tmp_path / "e2" / "in" / "x.tif", np.full((32, 32), 9, np.uint8))  # another image, same name
    out = tmp_path / "out"
    monkeypatch.chdir(tmp_path / "e1")
    run_jobs(find_jobs([Path("in")], out), out, options)
    monkeypatch.chdir(tmp_path / "e2")  # "in/x.tif" again, as typed: but another file
    first = (out / "x_labels.tif").read_bytes()
    [row] = run_jobs(find_jobs([Path("in")], out), out, options)
    assert row.status == "ok" and row.output == str(out / "x_tif_labels.tif")  # told apart, as within one run
    assert (out / "x_labels.tif").read_bytes() == first  # the first image's labels are kept
    monkeypatch.chdir(tmp_path)  # the first image again, typed from elsewhere: it is this file's output
    [row] = run_jobs(find_jobs([tmp_path / "e1" / "in"], out), out, options)
    assert row.status == "skipped" and row.message == "output exists (use overwrite to redo it)"


def test_a_ctrl_c_keeps_the_row_of_every_output_written_and_a_rerun_counts_a_lost_one(tmp_path, folder, options):
    """Ctrl-C stops the loop while a second file is being written: its output gets its row, not a row of zeros."""
    from napari_unet_seg.core.batch.jobs import find_jobs
    from napari_unet_seg.core.batch.runner import iter_jobs

    root, _ = folder
    out = tmp_path / "out"
    files = [root / "a.tif", root / "b c.png", root / "stack.tif"]
    jobs = find_jobs(files, out)
    stream = iter_jobs(jobs, out, options)
    first_job, first = next(stream)  # two files run at once: the next one is under way now
    stream.close()  # what Ctrl-C does to the loop in the main thread
    written = sorted(p.name for p in out.glob("*_labels.tif"))
    rows = {Path(r.output).name: r for r in read_summary(out)}
    assert len(written) >= 1 and sorted(rows) == written  # no output without its row
    assert all(r.status == "ok" and r.objects > 0 for r in rows.values())

    # a row lost anyway (a kill between the output and its row): the rerun reads the counts back from the output
    lost = rows[Path(first.output).name]
    kept = [r for r in read_summary(out) if r.output != first.output]
    from napari_unet_seg.core.batch.summary import write_summary

    write_summary(kept, out)
    again = {Path(r.output).name: r for r in run_batch(files, out, options)}
    resumed = again[Path(first.output).name]
    assert resumed.status == "skipped" and "counts read from the output" in resumed.message
    assert (resumed.objects, resumed.mean_area) == (lost.objects, lost.mean_area)


def test_counts_read_back_from_outputs_equal_the_runs_own(tmp_path, folder, options):
    from napari_unet_seg.core.batch.existing import counted_output, output_provenance

    root, _ = folder
    out = tmp_path / "out"
    for row in run_batch([root / "a.tif", root / "stack.tif"], out, options):
        target = Path(row.output)
        counted = counted_output(target, output_provenance(target))
        assert counted == (row.objects, pytest.approx(row.mean_area, abs=0.01))
    assert counted_output(out / "a_labels.tif", {"settings": {"output": "semantic"}}) == (0, 0.0)
    (out / "broken_labels.tif").write_bytes(b"not a tiff")
    assert counted_output(out / "broken_labels.tif", {}) is None
