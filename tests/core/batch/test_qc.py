"""Quality-control pictures of a batch: outlines where the objects end, a page that shows every file."""

from pathlib import Path
from urllib.parse import quote

import dask.array as da
import numpy as np
import pytest
import tifffile
from PIL import Image
from skimage.segmentation import find_boundaries

from helpers import synthetic_nuclei
from napari_unet_seg.core.batch import qc
from napari_unet_seg.core.batch.files import FileResult
from napari_unet_seg.core.batch.jobs import find_jobs
from napari_unet_seg.core.batch.qc import (
    CELLS, LONGEST_SIDE, OBJECTS, SMALLEST_SIDE, qc_page, qc_picture, qc_picture_path, write_qc_index,
)
from napari_unet_seg.core.batch.runner import run_batch, run_jobs


def _yellow(picture):
    return np.all(picture == OBJECTS, axis=-1)


def test_outlines_are_drawn_exactly_on_the_objects_edges_over_the_gray_image():
    image, labels = synthetic_nuclei((600, 700), n=12, seed=1)
    picture = qc_picture(image, labels)
    assert picture.shape == (600, 700, 3) and picture.dtype == np.uint8
    np.testing.assert_array_equal(_yellow(picture), find_boundaries(labels, mode="inner"))
    rest = ~_yellow(picture)
    assert (picture[rest][:, 0] == picture[rest][:, 1]).all()  # gray elsewhere
    inside = (labels > 0) & rest
    assert picture[inside][:, 0].mean() > picture[(labels == 0)][:, 0].mean() + 50  # nuclei bright, as in the image


def test_a_big_image_is_drawn_at_most_1024_px_and_a_small_one_enlarged_to_be_seen():
    labels = np.zeros((3000, 2100), np.uint16)
    labels[1000:1300, 500:900] = 7
    big = qc_picture(da.from_array(np.ones(labels.shape, np.float32), chunks=512), da.from_array(labels, chunks=512))
    assert max(big.shape[:2]) <= LONGEST_SIDE and _yellow(big).any()
    image, labels = synthetic_nuclei((100, 128), n=4)
    small = qc_picture(image, labels)
    assert max(small.shape[:2]) >= SMALLEST_SIDE and small.shape[0] % 100 == 0  # whole pixels, crisp outlines
    factor = small.shape[0] // 100
    np.testing.assert_array_equal(_yellow(small)[::factor, ::factor].any(), True)


def test_a_stack_shows_its_middle_plane_and_channels_rgb_and_cells_are_drawn():
    image, labels = synthetic_nuclei((520, 540), n=8, seed=2)
    stack = np.stack([np.zeros_like(labels), labels, np.zeros_like(labels)])
    picture = qc_picture(np.stack([image] * 3), stack)  # plane 1 of 3 holds the objects
    np.testing.assert_array_equal(_yellow(picture), find_boundaries(labels, mode="inner"))
    two_channels = np.stack([image, image[::-1]])  # (C, H, W)
    assert qc_picture(two_channels, labels, channel_axis=-3).shape == (520, 540, 3)
    rgb = np.zeros((520, 540, 3), np.uint8)
    rgb[..., 2] = image
    coloured = qc_picture(rgb, labels, rgb=True)
    assert coloured[~_yellow(coloured)][:, 2].max() > coloured[~_yellow(coloured)][:, 0].max()  # blue stays blue
    cells = np.where(labels > 0, labels, 0)
    cells = np.maximum(cells, np.roll(cells, 6, axis=1))  # bigger than the nuclei
    with_cells = qc_picture(image, labels, cells=cells)
    assert np.all(with_cells == CELLS, axis=-1).any() and _yellow(with_cells).any()


def test_a_class_output_is_tinted_per_class():
    image, labels = synthetic_nuclei((520, 520), n=8)
    classes = np.where(labels % 2 == 1, 1, 2) * (labels > 0)
    picture = qc_picture(image, classes, classes=True)
    one, two = picture[classes == 1].mean(axis=0), picture[classes == 2].mean(axis=0)
    assert np.abs(one - two).max() > 30  # two classes, two tints


def test_a_batch_draws_a_picture_per_output_and_one_page_of_them_all(tmp_path, folder, options):
    root, _ = folder
    out = tmp_path / "out"
    results = run_batch([root], out, options, recursive=True)
    ok = [r for r in results if r.status == "ok"]
    for row in ok:
        picture = qc_picture_path(row.output, out)
        assert picture.parent.is_relative_to(out / "qc") and picture.exists()
        assert _yellow(np.asarray(Image.open(picture).convert("RGB"))).any()
    assert (out / "qc" / "sub dir ü" / "é 1_labels.png").exists()  # subfolders mirrored
    page = qc_page(out)
    text = page.read_text(encoding="utf-8")
    assert page == out / "qc" / "index.html"
    assert "a stack or\ntime-lapse shows its middle plane" in text  # which plane a stack's picture is: said
    assert text.count('<div class="card') == len(results) and text.count("<img ") == len(ok)
    assert f'src="{quote("sub dir ü/é 1_labels.png")}"' in text and text.count('class="card failed"') == 4
    for row in results:
        assert Path(row.file).name in text
    # a rerun skips every file and keeps the pictures on the page; the qc folder is never taken for input
    again = run_batch([root, out], out, options, recursive=True)
    assert len(again) == len(results) and all(r.status in ("skipped", "failed") for r in again)
    assert qc_page(out).read_text(encoding="utf-8").count("<img ") == len(ok)
    for pattern in (None, "*_labels.*"):  # an earlier batch's folder as input: its outputs by name, never pictures
        taken = find_jobs([out], tmp_path / "elsewhere", pattern=pattern, recursive=True)
        assert not [job for job in taken if "qc" in job.source.parts]
    assert find_jobs([out], tmp_path / "elsewhere", pattern="*_labels.*", recursive=True)


def test_no_pictures_when_asked_and_a_picture_that_fails_costs_only_a_note(tmp_path, folder, options, monkeypatch):
    root, _ = folder
    jobs = find_jobs([root / "a.tif"], tmp_path / "none", qc=False)
    assert jobs[0].qc is None
    run_jobs(jobs, tmp_path / "none", options)
    assert not (tmp_path / "none" / "qc").exists() and (tmp_path / "none" / "a_labels.tif").exists()

    def broken(*args, **kwargs):
        raise MemoryError("no room")

    monkeypatch.setattr(qc, "qc_picture", broken)
    (row,) = run_batch([root / "a.tif"], tmp_path / "broken", options)
    assert row.status == "ok" and row.objects > 0 and "no QC picture: no room" in row.message
    assert (tmp_path / "broken" / "a_labels.tif").exists()


def test_the_page_marks_failed_and_empty_files_and_never_replaces_a_users_page(tmp_path):
    rows = [FileResult(str(tmp_path / "a.tif"), "ok", 12, 80.0, 1.0, "", str(tmp_path / "a_labels.tif")),
            FileResult(str(tmp_path / "b.tif"), "ok", 0, 0.0, 1.0, "", str(tmp_path / "b_labels.tif")),
            FileResult(str(tmp_path / "c.tif"), "failed", 0, 0.0, 0.1, "c.tif: not an image <x>", "")]
    page = write_qc_index(tmp_path, rows)
    text = page.read_text(encoding="utf-8")
    assert "3 files: 2 segmented or kept, 1 failed, 1 with no objects; 12 objects in all" in text
    assert 'class="card empty"' in text and 'class="card failed"' in text
    assert "not an image &lt;x&gt;" in text  # messages escaped, never markup
    assert text.count("<rect ") == 3  # a bar per file
    mine = tmp_path / "qc" / "index.html"
    mine.write_text("<html>my own page</html>")
    assert write_qc_index(tmp_path, rows) is None and mine.read_text() == "<html>my own page</html>"
    assert qc_page(tmp_path) is None


@pytest.mark.parametrize("name", ["x.tif", "x.ome.zarr"])
def test_a_picture_is_named_after_its_output(tmp_path, name):
    target = tmp_path / "out" / "sub" / name.replace("x", "x_labels", 1)
    assert qc_picture_path(target, tmp_path / "out") == tmp_path / "out" / "qc" / "sub" / "x_labels.png"


def test_names_with_dots_or_a_hash_get_pictures_of_their_own_and_links_that_work(tmp_path, options):
    root = tmp_path / "in"
    root.mkdir()
    for name in ("well.1.tif", "well.2.tif", "plate#3.tif"):
        tifffile.imwrite(root / name, synthetic_nuclei((48, 64), n=5, seed=len(name))[0])
    out = tmp_path / "out"
    results = run_batch([root], out, options)  # it used to hang: both wells' cells named well_cells.tif
    pictures = {qc_picture_path(r.output, out) for r in results}
    assert len(pictures) == 3 and all(p.exists() for p in pictures)
    text = qc_page(out).read_text(encoding="utf-8")
    assert 'src="plate%233_labels.png"' in text and 'src="well.1_labels.png"' in text


def test_a_class_output_is_not_marked_as_a_file_where_nothing_was_found(tmp_path):
    rows = [FileResult(str(tmp_path / "a.tif"), "ok", 0, 0.0, 1.0, "", str(tmp_path / "a_classes.tif"))]
    text = write_qc_index(tmp_path, rows).read_text(encoding="utf-8")
    assert "a class map" in text and 'class="card empty"' not in text and "1 class map (a class per pixel)" in text


def test_a_rerun_with_qc_draws_the_pictures_a_run_without_it_left_out(tmp_path, folder, options):
    root, _ = folder
    out = tmp_path / "out"
    first = run_jobs(find_jobs([root], out, recursive=True, qc=False), out, options)
    assert not (out / "qc").exists()
    again = run_batch([root], out, options, recursive=True)  # QC asked now: every file is skipped
    assert all(r.status in ("skipped", "failed") for r in again)
    ok = [r for r in first if r.status == "ok"]
    for row in ok:
        assert qc_picture_path(row.output, out).exists()  # drawn from the files already there
    assert qc_page(out).read_text(encoding="utf-8").count("<img ") == len(ok)


def test_class_maps_are_not_counted_as_files_where_nothing_was_found(tmp_path):
    """A class model's output counts no objects: the page and summary.csv said "0 objects", as if none were found."""
    import csv

    from napari_unet_seg.core.batch.summary import summary_path, write_summary

    rows = [FileResult(str(tmp_path / name), "ok", 0, 0.0, 1.0, "", str(tmp_path / f"{name[:-4]}_classes.tif"))
            for name in ("a.tif", "b.tif")]
    text = write_qc_index(tmp_path, rows).read_text(encoding="utf-8")
    assert "2 files: 2 segmented or kept, 0 failed; 2 class maps (a class per pixel)" in text
    assert "objects in all" not in text and "with no objects" not in text
    write_summary(rows, tmp_path)
    with open(summary_path(tmp_path), newline="", encoding="utf-8") as f:
        written = list(csv.DictReader(f))
    assert [(r["objects"], r["mean_area"]) for r in written] == [("", ""), ("", "")]  # not applicable, not 0
    assert "<svg" not in text and "red for class 1, green for class 2" in text  # no flat bars: what the tints mean
    shares = [FileResult(str(tmp_path / "s.tif"), "ok", 0, 0.0, 1.0, "class map: 80 % background, 20 % tumour",
                         str(tmp_path / "s_classes.tif"))]
    page = write_qc_index(tmp_path, shares).read_text(encoding="utf-8")
    assert "a class map (80 % background, 20 % tumour)" in page and "class map class map" not in page
    mixed = write_qc_index(tmp_path, [*rows, FileResult(str(tmp_path / "n.tif"), "ok", 7, 30.0, 1.0, "",
                                                        str(tmp_path / "n_labels.tif"))]).read_text(encoding="utf-8")
    assert "a.tif: a class map" in mixed and "n.tif: 7 objects" in mixed  # a chart's bar says so, not "a.tif: 0"
    failed = FileResult(str(tmp_path / "c.tif"), "failed", 0, 0.0, 0.1, "c.tif: not an image", "")
    write_summary([failed], tmp_path)
    with open(summary_path(tmp_path), newline="", encoding="utf-8") as f:
        (row,) = csv.DictReader(f)
    assert (row["objects"], row["mean_area"]) == ("", "")  # a failed file found nothing: it was not segmented
