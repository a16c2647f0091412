"""Which files a batch takes and where their labels go: patterns, mirrored subfolders, always inside OUTDIR."""

import numpy as np
import pytest
import tifffile

from napari_unet_seg.core.batch.jobs import find_jobs, is_labels_file


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


def _touch(root, *names):
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if name.endswith(".zarr"):
            path.mkdir()
            (path / "zarr.json").write_text("{}")
        else:
            path.write_bytes(b"")


def _relative(jobs, root):
    return sorted(str(j.source.relative_to(root)) for j in jobs)


def test_pattern_selects_files_in_folders_but_not_files_named_explicitly(tmp_path):
    root = tmp_path / "in"
    _touch(root, "a.tif", "b.png", "c.tiff", "d.jpg", "sub/e.tif", "sub/f.png", "notes.txt", ".hidden.tif")
    out = tmp_path / "out"
    assert _relative(find_jobs([root], out), root) == ["a.tif", "b.png", "c.tiff", "d.jpg"]  # every image, no text
    assert _relative(find_jobs([root], out, pattern="*.tif"), root) == ["a.tif"]
    assert _relative(find_jobs([root], out, pattern="*.tif", recursive=True), root) == ["a.tif", "sub/e.tif"]
    assert _relative(find_jobs([root], out, pattern="*.txt"), root) == ["notes.txt"]  # a pattern may take anything
    named = find_jobs([root / "b.png", root / "notes.txt"], out, pattern="*.tif")
    assert _relative(named, root) == ["b.png", "notes.txt"]  # named files are always attempted


def test_recursive_folders_are_mirrored_into_the_output(tmp_path):
    root = tmp_path / "plate"
    _touch(root, "top.tif", "well A/site 1.tif", "well A/deeper/site 2.png", "well B/site 1.tif", "store.zarr")
    out = tmp_path / "results"
    targets = {str(j.source.relative_to(root)): j.target for j in find_jobs([root], out, recursive=True)}
    base = out.resolve()
    assert targets == {
        "top.tif": base / "top_labels.tif",
        "well A/site 1.tif": base / "well A" / "site 1_labels.tif",
        "well A/deeper/site 2.png": base / "well A" / "deeper" / "site 2_labels.tif",
        "well B/site 1.tif": base / "well B" / "site 1_labels.tif",
        "store.zarr": base / "store_labels.zarr",  # a zarr store is one image, never a folder to walk
    }
    flat = find_jobs([root], out)  # not recursive: subfolders are left alone
    assert _relative(flat, root) == ["store.zarr", "top.tif"]


def test_label_images_are_skipped_unless_the_pattern_names_them(tmp_path):
    root = tmp_path / "in"
    _touch(root, "cells.tif", "cells_labels.tif", "cells_labels.png", "cells_labels.ome.tif", "big.zarr",
           "big_labels.zarr", "sub/more_labels.tif")
    out = tmp_path / "out"
    assert _relative(find_jobs([root], out, recursive=True), root) == ["big.zarr", "cells.tif"]
    assert _relative(find_jobs([root], out, pattern="*_labels.tif", recursive=True), root) == [
        "cells_labels.tif", "sub/more_labels.tif"]
    assert _relative(find_jobs([root], out, pattern="*_labels.*"), root) == [
        "big_labels.zarr", "cells_labels.ome.tif", "cells_labels.png", "cells_labels.tif"]
    assert _relative(find_jobs([root], out, pattern="*_labels.zarr"), root) == ["big_labels.zarr"]
    assert _relative(find_jobs([root], out, pattern="cells*"), root) == ["cells.tif"]  # "_labels" not named


def test_our_own_outputs_are_never_taken_as_inputs(tmp_path):
    root = tmp_path / "in"
    _touch(root, "a.tif", "results/a_labels.tif", "results/sub/b_labels.tif")
    out = root / "results"
    assert _relative(find_jobs([root], out, recursive=True, pattern="*_labels.tif"), root) == []
    assert find_jobs([out / "a_labels.tif"], out) == []  # even named: it is an output of this folder
    assert [j.source.name for j in find_jobs([root], out, recursive=True)] == ["a.tif"]


def test_class_maps_and_cells_are_outputs_too_never_images_to_segment(tmp_path):
    """A rerun over a folder holding a run's outputs segments the images only, not their classes or cells; a raw
    image called ``HeLa_cells.tif`` (no unet-seg provenance) is an image like any other."""
    import numpy as np
    from export_shapes import provenance_record

    from napari_unet_seg.core.imageio import write_labels_tiff

    root = tmp_path / "in"
    _touch(root, "a.tif", "a_labels.tif", "HeLa_cells.tif", "cells.tif")
    for name in ("a_cells.tif", "a_classes.tif"):
        write_labels_tiff(root / name, np.zeros((4, 4), np.uint8), provenance=provenance_record())
    out = tmp_path / "out"
    assert _relative(find_jobs([root], out), root) == ["HeLa_cells.tif", "a.tif", "cells.tif"]
    assert _relative(find_jobs([root], out, pattern="a_cells.tif"), root) == ["a_cells.tif"]  # asked for by name
    [job] = find_jobs([root / "a.tif"], out, kind="classes")
    assert job.target.name == "a_classes.tif"
    jobs = find_jobs([root / "a.tif", root / "a.png"], out, kind="classes")
    assert [j.target.name for j in jobs] == ["a_classes.tif", "a_png_classes.tif"]


def test_two_inputs_with_one_output_name_are_told_apart(tmp_path):
    _touch(tmp_path, "day1/img.tif", "day2/img.tif", "mixed/x.tif", "mixed/x.png", "mixed/x.jpeg")
    out = tmp_path / "out"
    named = find_jobs([tmp_path / "day1" / "img.tif", tmp_path / "day2" / "img.tif"], out)
    assert len({j.target for j in named}) == 2
    mixed = find_jobs([tmp_path / "mixed"], out)
    assert len({j.target for j in mixed}) == 3
    assert {j.target.name for j in mixed} == {"x_labels.tif", "x_tif_labels.tif", "x_png_labels.tif"}  # 1st: plain
    assert all(j.target.parent == out.resolve() for j in named + mixed)


def test_three_folders_with_the_same_file_names_get_three_outputs(tmp_path):
    """``unet-seg predict day1/ day2/ day3/ -o out``: each folder's img.tif must keep its own labels."""
    _touch(tmp_path, "day1/img.tif", "day2/img.tif", "day3/img.tif")
    jobs = find_jobs([tmp_path / "day1", tmp_path / "day2", tmp_path / "day3"], tmp_path / "out")
    assert len(jobs) == 3
    assert len({j.target for j in jobs}) == 3  # else two files' labels overwrite each other


def test_outputs_always_land_inside_the_output_folder(tmp_path):
    outside = tmp_path / "elsewhere"
    _touch(outside, "far.tif")
    root = tmp_path / "in"
    _touch(root, "near.tif", "cells.ome.tif", "plate.ome.zarr")
    (root / "link").symlink_to(outside, target_is_directory=True)  # a subfolder that leads out of the input
    out = tmp_path / "out"
    jobs = find_jobs([root, root / ".." / "elsewhere" / "far.tif"], out, recursive=True)
    base = out.resolve()
    assert jobs and all(base in j.target.parents for j in jobs)
    names = {j.target.relative_to(base).as_posix() for j in jobs}
    assert {"cells_labels.tif", "plate_labels.zarr", "near_labels.tif", "far_labels.tif"} <= names
    assert len(names) == len(jobs)  # and no two of them share an output
    relative_out = find_jobs([root / "near.tif"], "out")
    assert relative_out[0].target.is_absolute() and relative_out[0].target.parent.name == "out"


def test_a_link_inside_the_output_folder_cannot_lead_outputs_out_of_it(tmp_path):
    root, out, elsewhere = tmp_path / "in", tmp_path / "out", tmp_path / "precious"
    _touch(root, "well A/site.tif")
    elsewhere.mkdir()
    out.mkdir()
    (out / "well A").symlink_to(elsewhere, target_is_directory=True)  # left there by someone, pointing away
    [job] = find_jobs([root], out, recursive=True)
    assert out.resolve() in job.target.resolve().parents
    assert elsewhere not in job.target.resolve().parents
