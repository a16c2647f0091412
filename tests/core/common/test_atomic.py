"""Atomic writes: the new file appears whole or not at all, the old one survives a failure, no temporary is left."""

import os
import stat

import numpy as np
import pytest
import tifffile

from napari_unet_seg.core.batch.runner import run_batch
from napari_unet_seg.core.common.atomic import atomic_path, remove, replace_atomically, temporary_sibling
from napari_unet_seg.core.inference.options import RunOptions
from napari_unet_seg.core.model.modelfile import save_model


def test_temporary_sibling_is_a_hidden_neighbour_on_the_same_filesystem(tmp_path):
    target = tmp_path / "sub" / "labels.tif"
    tmp = temporary_sibling(target)
    assert tmp.parent == target.parent
    assert tmp.name.startswith(".") and tmp.name.endswith(".partial") and str(os.getpid()) in tmp.name
    assert temporary_sibling(target, ".tmp").name.endswith(".tmp")
    assert tmp != target and temporary_sibling(tmp_path / "other.tif") != tmp


def test_a_file_appears_only_when_the_block_succeeds(tmp_path):
    path = tmp_path / "out.txt"
    with atomic_path(path) as tmp:
        assert tmp != path and tmp.parent == path.parent
        tmp.write_text("new")
        assert not path.exists()  # nothing at the final name while writing
    assert path.read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


def test_failure_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "out.txt"
    path.write_text("old")
    with pytest.raises(RuntimeError, match="disk full"):
        with atomic_path(path) as tmp:
            tmp.write_text("half of the new cont")
            raise RuntimeError("disk full")
    assert path.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


def test_failure_without_an_old_file_leaves_nothing(tmp_path):
    path = tmp_path / "new.zarr"
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(path) as tmp:
            tmp.mkdir()
            (tmp / "chunk").write_bytes(b"\0" * 10)
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_replaces_an_existing_file_whole(tmp_path):
    path = tmp_path / "summary.csv"
    path.write_text("old contents, longer than the new ones")
    with atomic_path(path) as tmp:
        tmp.write_text("new")
        assert path.read_text().startswith("old")  # readers see the old file until the very end
    assert path.read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["summary.csv"]


def test_replaces_an_existing_folder_whole(tmp_path):
    path = tmp_path / "labels.zarr"
    path.mkdir()
    (path / "stale-chunk").write_text("old")
    with atomic_path(path) as tmp:
        tmp.mkdir()
        (tmp / "fresh-chunk").write_text("new")
        assert (path / "stale-chunk").exists()
    assert sorted(p.name for p in path.iterdir()) == ["fresh-chunk"]  # nothing of the old folder is mixed in
    assert sorted(p.name for p in tmp_path.iterdir()) == ["labels.zarr"]  # no ".old" or ".partial" left


def test_a_stale_temporary_from_a_crashed_run_is_cleared_first(tmp_path):
    path = tmp_path / "out.zarr"
    stale = temporary_sibling(path)
    stale.mkdir()
    (stale / "leftover").write_text("from a crash")
    with atomic_path(path) as tmp:
        assert not tmp.exists()
        tmp.mkdir()
        (tmp / "a").write_text("a")
    assert sorted(p.name for p in path.iterdir()) == ["a"]
    assert not stale.exists()


def test_replace_atomically_and_remove(tmp_path):
    src, dst = tmp_path / "src.txt", tmp_path / "dst.txt"
    src.write_text("1")
    dst.write_text("0")
    replace_atomically(src, dst)
    assert dst.read_text() == "1" and not src.exists()
    folder = tmp_path / "folder"
    (folder / "deep").mkdir(parents=True)
    remove(folder)
    remove(dst)
    remove(tmp_path / "never-existed")  # no error
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("mask", [0o077, 0o022])
def test_files_follow_the_umask_whoever_wrote_them(tmp_path, tiny_model, mask, request):
    """safetensors creates its files 0600; models and batch outputs must be as open as the umask says, no more."""
    image = tmp_path / "cells.tif"
    tifffile.imwrite(image, np.random.default_rng(0).integers(0, 255, (32, 32), dtype=np.uint8))
    previous = os.umask(mask)  # set after the process started: read at write time, not at import
    request.addfinalizer(lambda: os.umask(previous))
    model = save_model(tiny_model, tmp_path / "models" / "shared.safetensors")
    run_batch([image], tmp_path / "out", RunOptions(model=str(model), device="cpu"))
    written = [model, *(tmp_path / "out").iterdir()]
    assert sorted(p.name for p in written) == ["cells_labels.tif", "cells_objects.csv", "cells_objects.json", "qc",
                                               "shared.safetensors", "summary.csv"]
    for path in [*written, *(tmp_path / "out" / "qc").iterdir()]:  # the QC picture and page too
        assert stat.S_IMODE(os.stat(path).st_mode) == (0o777 if path.is_dir() else 0o666) & ~mask, path.name


def test_a_link_is_written_through_and_a_fifo_is_refused(tmp_path):
    import os

    target = tmp_path / "target.csv"
    target.write_text("old")
    link = tmp_path / "link.csv"
    link.symlink_to(target)
    with atomic_path(link) as tmp:
        tmp.write_text("new")
    assert link.is_symlink() and target.read_text() == "new"  # the link stays, its target is replaced
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(OSError, match="is not a regular file") as info, atomic_path(fifo) as tmp:
        tmp.write_text("never")
    assert "[Errno" not in str(info.value) and fifo.exists() and not fifo.is_file()


def test_a_killed_writers_leftover_is_removed_by_the_next_write_and_a_live_ones_kept(tmp_path):
    """`kill -9` mid-export left `.k.ome.zarr.<pid>.partial` for good; the next write of that name clears it."""
    import subprocess
    import sys

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(gone.stdout)
    target = tmp_path / "k.ome.zarr"
    leftover = tmp_path / f".k.ome.zarr.{dead_pid}.partial"
    (leftover / "0").mkdir(parents=True)
    live = tmp_path / f".k.ome.zarr.{os.getppid()}.partial"  # a writer still running
    live.mkdir()
    other = tmp_path / ".notes.12.partial"  # another name: never looked at
    other.write_text("x")
    with atomic_path(target) as tmp:
        tmp.mkdir()
    assert target.is_dir() and not leftover.exists() and live.exists() and other.exists()
