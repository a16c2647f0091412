"""Each batch output gets ``<stem>_objects.csv``, and summary.csv totals count every slice of a stack."""

import numpy as np
import pytest
import tifffile
import zarr
from helpers import synthetic_nuclei

from napari_unet_seg.core.batch.jobs import Job, find_jobs
from napari_unet_seg.core.batch.runner import run_batch, run_jobs
from napari_unet_seg.core.batch.summary import read_summary
from napari_unet_seg.core.common.labels_zarr import open_labels_zarr
from napari_unet_seg.core.measure.table_csv import read_objects_csv


def stack_of_slices(counts=(6, 3, 6)):
    """Slices holding different numbers of separate disks (as the nuclei model would find them)."""
    slices = [synthetic_nuclei((64, 80), n=n, seed=s) for s, n in enumerate(counts)]
    return np.stack([s[0] for s in slices]), np.stack([s[1] for s in slices])


def test_a_stack_counts_objects_over_slices_and_averages_their_area(tmp_path, options):
    image, _ = stack_of_slices()
    tifffile.imwrite(tmp_path / "stack.tif", image)
    [row] = run_batch([tmp_path / "stack.tif"], tmp_path / "out", options)
    labels = tifffile.imread(tmp_path / "out" / "stack_labels.tif")
    per_slice = [len(np.unique(plane)) - 1 for plane in labels]
    assert len(set(per_slice)) > 1 and row.objects == sum(per_slice)  # not the largest slice's count
    assert row.mean_area == pytest.approx(np.count_nonzero(labels) / sum(per_slice), abs=0.01)  # not ~3x
    table, comments = read_objects_csv(tmp_path / "out" / "stack_objects.csv")
    assert np.bincount(table["slice"]).tolist() == per_slice and comments["labels"] == "stack_labels.tif"
    assert table["intensity_mean"].min() > 40  # bright nuclei on a dark background
    [summary] = read_summary(tmp_path / "out")
    assert (summary.objects, summary.mean_area) == (row.objects, row.mean_area)


def test_pixel_size_and_rgb_channels_reach_the_table(tmp_path, options):
    image, _ = synthetic_nuclei((48, 64), n=5)
    tifffile.imwrite(tmp_path / "gray.tif", image, resolution=(2.0, 2.0), imagej=True, metadata={"unit": "um"})
    rgb = np.stack([image, image // 2, np.zeros_like(image)], axis=-1)
    tifffile.imwrite(tmp_path / "colour.tif", rgb, photometric="rgb")
    run_batch([tmp_path / "gray.tif", tmp_path / "colour.tif"], tmp_path / "out", options)
    gray, comments = read_objects_csv(tmp_path / "out" / "gray_objects.csv")
    assert comments["pixel_size"] == "0.5 x 0.5 um"
    np.testing.assert_allclose(gray["area_um2"], gray["area"] * 0.25)
    colour, _ = read_objects_csv(tmp_path / "out" / "colour_objects.csv")
    assert {"intensity_ch0_mean", "intensity_ch2_mean"} <= set(colour) and colour["intensity_ch2_mean"].max() == 0


def test_a_zarr_output_is_measured_from_the_store(tmp_path, options):
    image, _ = synthetic_nuclei((100, 90), n=10, seed=5)
    source = zarr.open_array(str(tmp_path / "big.zarr"), mode="w", shape=image.shape, chunks=(32, 32), dtype="u1")
    source[:] = image
    [row] = run_batch([tmp_path / "big.zarr"], tmp_path / "out", options)
    table, _ = read_objects_csv(tmp_path / "out" / "big_objects.csv")
    labels = np.asarray(open_labels_zarr(row.output))
    assert row.objects == len(table["label"]) == len(np.unique(labels)) - 1
    assert table["area"].sum() == np.count_nonzero(labels)


def test_a_users_csv_is_kept_ours_is_replaced_and_measuring_can_be_off(tmp_path, options):
    image, _ = synthetic_nuclei((48, 64), n=5)
    tifffile.imwrite(tmp_path / "a.tif", image)
    out = tmp_path / "out"
    out.mkdir()
    (out / "a_objects.csv").write_text("my own notes\n")
    [row] = run_batch([tmp_path / "a.tif"], out, options)
    assert (out / "a_objects.csv").read_text() == "my own notes\n"
    assert row.status == "ok" and "a_objects.csv exists and was not written by unet-seg" in row.message
    assert row.objects == 5  # the totals are measured all the same
    (out / "a_objects.csv").unlink()
    run_batch([tmp_path / "a.tif"], out, options, overwrite=True)
    first = (out / "a_objects.csv").stat().st_mtime_ns
    [again] = run_batch([tmp_path / "a.tif"], out, options, overwrite=True)
    assert (out / "a_objects.csv").stat().st_mtime_ns >= first and again.message == ""
    (out / "a_objects.csv").unlink()
    jobs = [Job(j.source, j.target, measure=False) for j in find_jobs([tmp_path / "a.tif"], out)]
    [unmeasured] = run_jobs(jobs, out, options, overwrite=True)
    assert not (out / "a_objects.csv").exists() and unmeasured.objects == 5


def test_two_inputs_never_share_an_objects_table(tmp_path):
    (tmp_path / "a.tif").write_bytes(b"")
    zarr.open_array(str(tmp_path / "a.zarr"), mode="w", shape=(4, 4), dtype="u1")
    jobs = find_jobs([tmp_path], tmp_path / "out")
    assert sorted(j.target.name for j in jobs) == ["a_labels.tif", "a_zarr_labels.zarr"]
