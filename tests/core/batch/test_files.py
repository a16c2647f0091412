"""One file of a batch: read, segment, write, one row; failures and cancels never stop the batch."""

from pathlib import Path

import numpy as np
import tifffile

from helpers import synthetic_nuclei
from napari_unet_seg.core.batch.files import FileResult, failed_result, read_timed, segment_file, skipped_result
from napari_unet_seg.core.batch.jobs import Job
from napari_unet_seg.core.model.registry import load_model


def test_failed_rows_name_the_file_once_in_one_line():
    job = Job(Path("/data/a b.tif"), Path("/out/a b_labels.tif"))
    row = failed_result(job, ValueError("not a TIFF file\nTraceback ..."), 0.12345)
    assert (row.file, row.status, row.seconds, row.output) == ("/data/a b.tif", "failed", 0.123, "")
    assert row.message == "a b.tif: not a TIFF file"
    named = failed_result(job, OSError("a b.tif is truncated"), 0.0)
    assert named.message == "a b.tif is truncated"  # already names the file: not twice
    assert failed_result(job, MemoryError(), 0.0).message == "a b.tif: MemoryError"


def test_skipped_rows_keep_the_counts_of_the_run_that_wrote_the_output():
    job = Job(Path("/data/a.tif"), Path("/out/a_labels.tif"))
    earlier = {"/out/a_labels.tif": FileResult("/data/a.tif", "ok", 12, 80.5, 3.0, "", "/out/a_labels.tif")}
    row = skipped_result(job, earlier)
    assert (row.status, row.objects, row.mean_area, row.seconds, row.output) == ("skipped", 12, 80.5, 0.0,
                                                                                 "/out/a_labels.tif")
    unknown = skipped_result(job, {})
    assert (unknown.objects, unknown.mean_area) == (0, 0.0) and "overwrite" in unknown.message


def test_read_timed_returns_the_error_instead_of_raising(tmp_path):
    (tmp_path / "bad.tif").write_bytes(b"not a tiff")
    error, seconds = read_timed(tmp_path / "bad.tif")
    assert isinstance(error, Exception) and seconds >= 0
    image, _ = synthetic_nuclei((32, 40))
    tifffile.imwrite(tmp_path / "good.tif", image)
    read, _ = read_timed(tmp_path / "good.tif")
    np.testing.assert_array_equal(np.asarray(read.data), image)


def test_one_file_segmented_written_and_counted(tmp_path, options):
    image, _ = synthetic_nuclei((48, 64), n=6)
    tifffile.imwrite(tmp_path / "cells.tif", image)
    job = Job(tmp_path / "cells.tif", tmp_path / "out" / "cells_labels.tif")
    job.target.parent.mkdir()
    row = segment_file(job, load_model(options.model), options)
    labels = tifffile.imread(job.target)
    assert row.status == "ok" and row.output == str(job.target) and row.objects == labels.max() > 0
    assert row.mean_area == round(float((labels > 0).sum()) / labels.max(), 2)


def test_a_cancelled_file_writes_nothing_and_reports_nothing(tmp_path, options):
    image, _ = synthetic_nuclei((48, 64), n=6)
    tifffile.imwrite(tmp_path / "cells.tif", image)
    job = Job(tmp_path / "cells.tif", tmp_path / "cells_labels.tif")
    assert segment_file(job, load_model(options.model), options, cancel=lambda: True) is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cells.tif", "models"]


def test_planes_the_file_calls_slices_are_not_said_to_be_likely_channels(tmp_path, options):
    """A 3-slice ImageJ stack (axes ZYX) got "if they are channels, choose the nuclear channel" in every batch."""
    from helpers import synthetic_nuclei
    from napari_unet_seg.core.batch.runner import run_batch

    planes = np.stack([synthetic_nuclei((48, 64), n=6, seed=s)[0] for s in range(3)])
    folder = tmp_path / "in"
    folder.mkdir()
    tifffile.imwrite(folder / "z.tif", planes, imagej=True, metadata={"axes": "ZYX"})
    tifffile.imwrite(folder / "unnamed.tif", planes, imagej=True)  # ImageJ reads three unnamed planes as channels
    rows = {Path(r.file).name: r for r in run_batch([folder], tmp_path / "out", options)}
    assert rows["z.tif"].status == rows["unnamed.tif"].status == "ok"
    assert "if they are channels" not in rows["z.tif"].message
    assert "if they are channels" in rows["unnamed.tif"].message  # the shape alone cannot tell: still said


def test_a_z_stack_says_its_slices_were_segmented_alone_and_keeps_its_step_linked_or_not(tmp_path, options):
    # a 30-slice z-stack of ~30 nuclei said "894 objects" with ids that looked linked but were not; its 0.5 µm
    # step was dropped from the labels, and linking its slices renamed them frames (newcomer trial)
    from dataclasses import replace

    from napari_unet_seg.core.batch.runner import run_batch
    from napari_unet_seg.core.imageio import read_image

    planes = np.stack([synthetic_nuclei((48, 64), n=6, seed=s)[0] for s in range(6)])
    folder = tmp_path / "in"
    folder.mkdir()
    tifffile.imwrite(folder / "z.tif", planes, imagej=True, resolution=(5.0, 5.0),
                     metadata={"axes": "ZYX", "spacing": 0.5, "unit": "um"})
    tifffile.imwrite(folder / "movie.tif", planes, imagej=True, metadata={"axes": "TYX"})
    (row, movie) = sorted(run_batch([folder], tmp_path / "out", options), key=lambda r: Path(r.file).name != "z.tif")
    assert "each of the 6 slices was segmented on its own (2D)" in row.message
    assert "segmented on its own" not in movie.message  # frames are counted frame by frame, as expected
    with tifffile.TiffFile(tmp_path / "out" / "z_labels.tif") as tif:
        assert tif.imagej_metadata["spacing"] == 0.5 and tif.series[0].axes == "ZYX"
    assert read_image(tmp_path / "out" / "z_labels.tif").metadata["z_spacing"] == 0.5
    (linked, _) = sorted(run_batch([folder], tmp_path / "linked", replace(options, link_frames=True)),
                         key=lambda r: Path(r.file).name != "z.tif")
    assert "segmented on its own" not in linked.message
    with tifffile.TiffFile(tmp_path / "linked" / "z_labels.tif") as tif:
        assert tif.series[0].axes == "ZYX" and tif.imagej_metadata["spacing"] == 0.5  # slices, linked
