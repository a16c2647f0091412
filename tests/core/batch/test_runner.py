"""Batch: folders, bad files, resume, safe output paths, zarr, and the same results on a dask cluster."""

import os
import time

import numpy as np
import pytest
import tifffile
import zarr
from PIL import Image

from helpers import synthetic_nuclei, threshold_model
from napari_unet_seg import save_model, segment
from napari_unet_seg.core.batch.runner import run_batch
from napari_unet_seg.core.batch.summary import read_summary
from napari_unet_seg.core.inference.options import RunOptions
from napari_unet_seg.core.batch.jobs import find_jobs, is_labels_file
from napari_unet_seg.core.batch.distributed import SchedulerError, connect
from napari_unet_seg.core.model.registry import load_model

pytestmark = [
    pytest.mark.filterwarnings("ignore::UserWarning:distributed"),
    pytest.mark.filterwarnings("ignore:.*[Pp]ort.*:UserWarning"),
]


@pytest.fixture
def options(tmp_path):
    path = save_model(threshold_model(), tmp_path / "models" / "disks.safetensors")
    return RunOptions(model=str(path), device="cpu", precision="fp32")


@pytest.fixture
def folder(tmp_path):
    """Good images of every kind, bad files, odd names and a subfolder."""
    root = tmp_path / "in"
    (root / "sub dir ü").mkdir(parents=True)
    images = {}
    for i, name in enumerate(["a.tif", "b c.png", "sub dir ü/é 1.tif", "stack.tif"]):
        image, _ = synthetic_nuclei((48, 64), n=6, seed=i)
        if name == "stack.tif":
            image = np.stack([image, image[::-1]])
        if name.endswith(".png"):
            Image.fromarray(image).save(root / name)
        else:
            tifffile.imwrite(root / name, image, resolution=(2.0, 2.0), imagej=True, metadata={"unit": "um"})
        images[name] = image
    (root / "truncated.tif").write_bytes((root / "a.tif").read_bytes()[:300])
    (root / "empty.png").write_bytes(b"")
    (root / "fake.jpg").write_text("not an image")
    tifffile.imwrite(root / "volume.tif", np.zeros((2, 3, 4, 5, 6), np.uint8))
    (root / "notes.txt").write_text("ignored: not an image type")
    (root / ".hidden.tif").write_bytes(b"")
    return root, images


def test_find_jobs_mirrors_and_stays_inside(tmp_path, folder):
    root, _ = folder
    out = root / "results"  # inside the input folder
    out.mkdir()
    tifffile.imwrite(out / "a_labels.tif", np.zeros((2, 2), np.uint8))
    jobs = find_jobs([root], out, recursive=True)
    names = sorted(str(j.source.relative_to(root)) for j in jobs)
    assert names == ["a.tif", "b c.png", "empty.png", "fake.jpg", "stack.tif", "sub dir ü/é 1.tif", "truncated.tif",
                     "volume.tif"]
    targets = {str(j.source.relative_to(root)): j.target for j in jobs}
    assert targets["sub dir ü/é 1.tif"] == out.resolve() / "sub dir ü" / "é 1_labels.tif"
    assert all(out.resolve() in j.target.parents for j in jobs)
    assert len(find_jobs([root], out)) == 7  # not recursive
    assert [j.source.name for j in find_jobs([root], out, pattern="*.png")] == ["b c.png", "empty.png"]
    escaping = find_jobs([root / "sub dir ü" / ".." / "a.tif"], out)
    assert escaping[0].target == out.resolve() / "a_labels.tif"


def test_label_images_in_folders_are_not_segmented(tmp_path):
    (tmp_path / "cells.tif").write_bytes(b"")
    (tmp_path / "cells_labels.tif").write_bytes(b"")  # ground truth beside its image, or an earlier output
    (tmp_path / "old_labels.zarr").mkdir()
    (tmp_path / "old_labels.zarr" / ".zarray").write_text("{}")
    out = tmp_path / "out"
    assert [j.source.name for j in find_jobs([tmp_path], out)] == ["cells.tif"]
    assert [j.source.name for j in find_jobs([tmp_path], out, pattern="*_labels.tif")] == ["cells_labels.tif"]
    assert len(find_jobs([tmp_path / "cells_labels.tif"], out)) == 1  # named explicitly: always attempted
    assert [j.source.name for j in find_jobs([tmp_path], out, pattern="*.tif")] == ["cells.tif"]
    (tmp_path / "cells_labels.ome.tif").write_bytes(b"")
    assert is_labels_file(tmp_path / "cells_labels.ome.tif") and not is_labels_file(tmp_path / "labels.tif")


def test_same_stem_twice_gets_two_outputs(tmp_path):
    for name in ("x.tif", "x.png"):
        (tmp_path / name).write_bytes(b"")
    targets = [j.target.name for j in find_jobs([tmp_path], tmp_path / "out")]
    assert len(set(targets)) == 2


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
    labels = zarr.open_array(row.output, mode="r")
    assert labels.attrs["pixel_size"] == [0.5, 0.5] and row.objects == labels.attrs["objects"] > 5
    reference = segment(image, load_model(options.model), device="cpu")
    assert row.objects == reference.max()


def test_cancel_stops_between_files(tmp_path, folder, options):
    root, _ = folder
    results = run_batch([root], tmp_path / "out", options, pattern="*.tif", on_result=None, cancel=lambda: True)
    assert results == [] and (tmp_path / "out" / "summary.csv").exists()


def test_unreachable_scheduler_fails_fast():
    start = time.perf_counter()
    with pytest.raises(SchedulerError, match="cannot reach"):
        connect("127.0.0.1:9", timeout=1)
    assert time.perf_counter() - start < 5
    with pytest.raises(SchedulerError):
        connect("nonsense://x")


def test_dask_cluster_gives_identical_results(tmp_path, folder, options):
    from distributed import LocalCluster

    root, _ = folder
    inputs = [root / "a.tif", root / "b c.png", root / "stack.tif", root / "empty.png"]
    local = run_batch(inputs, tmp_path / "local", options)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster:
        remote = run_batch(inputs, tmp_path / "remote", options, scheduler=cluster.scheduler_address)
    assert [r.status for r in remote] == [r.status for r in local] == ["ok", "ok", "ok", "failed"]
    for a, b in zip(local[:3], remote[:3]):
        np.testing.assert_array_equal(tifffile.imread(a.output), tifffile.imread(b.output))
        assert a.objects == b.objects
