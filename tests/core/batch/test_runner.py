"""Batch runs: folders, bad files, resume, zarr in and out, cancel between files."""

import os

import numpy as np
import tifffile
import zarr

from helpers import synthetic_nuclei
from napari_unet_seg import segment
from napari_unet_seg.core.batch.runner import run_batch
from napari_unet_seg.core.batch.summary import read_summary
from napari_unet_seg.core.common.labels_zarr import open_labels_zarr
from napari_unet_seg.core.inference.options import RunOptions
from napari_unet_seg.core.model.registry import load_model


def test_batch_equals_segment_and_survives_bad_files(tmp_path, folder, options):
    root, images = folder
    out = tmp_path / "out"
    seen = []
    results = run_batch([root], out, options, recursive=True, on_result=seen.append)
    by_name = {os.path.relpath(r.file, root): r for r in results}
    assert len(seen) == len(results) == 8
    assert {n for n, r in by_name.items() if r.status == "failed"} == {"truncated.tif", "empty.png", "fake.jpg",
                                                                        "volume.tif"}
    assert all(r.message.startswith(os.path.basename(n)) and "\n" not in r.message
               for n, r in by_name.items() if r.status == "failed")
    model = load_model(options.model)
    for name, image in images.items():
        row = by_name[name]
        assert row.status == "ok" and row.objects > 0 and row.mean_area > 0
        labels = tifffile.imread(row.output)
        np.testing.assert_array_equal(labels, segment(image, model, device="cpu", precision="fp32"))
    assert tifffile.TiffFile(by_name["a.tif"].output).pages[0].tags["XResolution"].value == (2, 1)
    assert [r.file for r in read_summary(out)] == [r.file for r in results]
    assert not [p for p in out.rglob("*") if "partial" in p.name]


def test_rerun_resumes_without_rewriting(tmp_path, folder, options):
    root, _ = folder
    out = tmp_path / "out"
    first = run_batch([root / "a.tif", root / "b c.png"], out, options)
    output = out / "a_labels.tif"
    os.utime(output, (1, 1))
    (out / "b c_labels.tif").unlink()  # as if interrupted before this file
    second = run_batch([root / "a.tif", root / "b c.png"], out, options)
    assert [r.status for r in second] == ["skipped", "ok"]
    assert second[0].objects == first[0].objects and output.stat().st_mtime == 1
    third = run_batch([root / "a.tif"], out, options, overwrite=True)
    assert third[0].status == "ok" and output.stat().st_mtime > 1


def test_zarr_input_gives_zarr_output(tmp_path, options):
    image, _ = synthetic_nuclei((100, 90), n=10, seed=5)
    source = zarr.open_array(str(tmp_path / "big.zarr"), mode="w", shape=image.shape, chunks=(32, 32), dtype="u1")
    source[:] = image
    source.attrs["pixel_size"] = [0.5, 0.5]
    small = RunOptions(**{**options.__dict__, "block_size": 48})
    [row] = run_batch([tmp_path / "big.zarr"], tmp_path / "out", small)
    assert row.status == "ok" and row.output.endswith("big_labels.zarr")
    labels = open_labels_zarr(row.output)
    assert labels.attrs["pixel_size"] == [0.5, 0.5] and row.objects == labels.attrs["objects"] > 5
    reference = segment(image, load_model(options.model), device="cpu")
    assert row.objects == reference.max()


def test_cancel_stops_between_files(tmp_path, folder, options):
    root, _ = folder
    results = run_batch([root], tmp_path / "out", options, pattern="*.tif", on_result=None, cancel=lambda: True)
    assert results == [] and (tmp_path / "out" / "summary.csv").exists()


def test_a_zarr_input_with_nan_pixels_says_so_in_its_row(tmp_path, options):
    image, _ = synthetic_nuclei((100, 90), n=10, seed=5)
    source = zarr.open_array(str(tmp_path / "nan.zarr"), mode="w", shape=image.shape, chunks=(32, 32), dtype="f4")
    source[:] = image
    source[10, 10] = np.nan
    small = RunOptions(**{**options.__dict__, "block_size": 48})
    [row] = run_batch([tmp_path / "nan.zarr"], tmp_path / "out", small)
    assert row.status == "ok" and "NaN or infinite" in row.message


def test_a_time_lapse_stays_a_time_lapse_in_its_labels_and_their_export(tmp_path, options):
    """Frames of a TYX file came out as Z slices, and so as z planes in QuPath."""
    import json

    from napari_unet_seg.cli.main import main

    frames = np.stack([synthetic_nuclei((48, 64), n=6, seed=i)[0] for i in range(3)])
    tifffile.imwrite(tmp_path / "movie.tif", frames, imagej=True, metadata={"axes": "TYX"}, resolution=(2.0, 2.0))
    tifffile.imwrite(tmp_path / "movie_nopx.tif", frames, imagej=True, metadata={"axes": "TYX"})
    tifffile.imwrite(tmp_path / "zstack.tif", frames, imagej=True, metadata={"axes": "ZYX"})
    results = run_batch([tmp_path / name for name in ("movie.tif", "movie_nopx.tif", "zstack.tif")],
                        tmp_path / "out", options)
    assert [r.status for r in results] == ["ok", "ok", "ok"]
    axes = []
    for result in results:
        with tifffile.TiffFile(result.output) as tif:
            axes.append(tif.series[0].axes)
    assert axes == ["TYX", "TYX", "ZYX"]
    assert main(["export", results[0].output, "--format", "geojson"]) == 0  # the file says T: frames
    features = json.loads((tmp_path / "out" / "movie_labels.geojson").read_text())["features"]
    planes = {(f["geometry"]["plane"]["z"], f["geometry"]["plane"]["t"]) for f in features}
    assert planes == {(0, 0), (0, 1), (0, 2)}  # time points, not z planes
    assert main(["export", results[2].output, "--format", "geojson"]) == 0
    features = json.loads((tmp_path / "out" / "zstack_labels.geojson").read_text())["features"]
    assert {(f["geometry"]["plane"]["z"], f["geometry"]["plane"]["t"]) for f in features} == {(0, 0), (1, 0), (2, 0)}


def test_cells_asked_of_a_zarr_input_leave_its_labels_and_say_how_to_grow_them(tmp_path, options):
    """Cells need the whole plane in memory: a zarr input still gets its labels, and the command for cells."""
    image, _ = synthetic_nuclei((100, 90), n=10, seed=5)
    source = zarr.open_array(str(tmp_path / "big.zarr"), mode="w", shape=image.shape, chunks=(32, 32), dtype="u1")
    source[:] = image
    cells = RunOptions(**{**options.__dict__, "block_size": 48, "cells_channel": 1})
    [row] = run_batch([tmp_path / "big.zarr"], tmp_path / "out", cells)
    assert row.status == "ok" and row.objects > 5 and not (tmp_path / "out" / "big_cells.tif").exists()
    assert "no cells:" in row.message and "unet-seg cells big_labels.zarr --image big.zarr --channel 1" in row.message


def test_progress_names_the_planned_files_and_ends_at_their_last_window(tmp_path, folder, options):
    from napari_unet_seg.core.batch.jobs import find_jobs
    from napari_unet_seg.core.batch.runner import iter_jobs

    root, _ = folder
    out = tmp_path / "out"
    jobs = find_jobs([str(root)], out)
    heard: dict = {}
    results = dict(iter_jobs(jobs, out, options, progress=lambda job, done, total: heard.setdefault(job, []).append(
        (done, total))))
    ok = [job for job, result in results.items() if result.status == "ok"]
    assert ok and set(heard) <= set(jobs) and set(ok) <= set(heard)
    for job in ok:
        done, total = heard[job][-1]
        assert done == total > 0 and all(d <= t for d, t in heard[job])
