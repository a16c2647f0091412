"""One batch run per output folder: a second is refused in one line; a dead run's lock does not block the next."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import pytest

from napari_unet_seg.core.batch import folder_lock as lock_module
from napari_unet_seg.core.batch.errors import OutputFolderError
from napari_unet_seg.core.batch.folder_lock import LOCK_NAME, folder_lock
from napari_unet_seg.core.batch.jobs import find_jobs
from napari_unet_seg.core.batch.runner import iter_jobs, run_batch
from napari_unet_seg.core.batch.summary import read_summary


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _write_lock(folder, **record) -> None:
    (folder / LOCK_NAME).write_text(json.dumps(record), encoding="utf-8")


def test_a_second_run_into_a_folder_in_use_is_refused_and_the_first_keeps_its_rows(tmp_path, folder, options):
    root, _ = folder
    out = tmp_path / "out"
    first = iter_jobs(find_jobs([str(root)], out), out, options)
    job, result = next(first)  # the first run holds the folder, one file done
    with pytest.raises(OutputFolderError) as refused:
        run_batch([str(root)], out, options)
    message = str(refused.value)
    assert "another batch run" in message and str(out) in message and "\n" not in message
    assert f"process {os.getpid()}" in message
    rest = list(first)
    assert not (out / LOCK_NAME).exists()  # released when the run ends
    rows = read_summary(out)
    assert len(rows) == 1 + len(rest) and {r.status for r in rows} >= {"ok"}
    run_batch([str(root)], out, options)  # the folder is free again
    assert not (out / LOCK_NAME).exists()


def test_the_lock_is_released_when_a_run_is_stopped_midway(tmp_path, folder, options):
    root, _ = folder
    out = tmp_path / "out"
    run = iter_jobs(find_jobs([str(root)], out), out, options)
    next(run)
    assert (out / LOCK_NAME).exists()
    run.close()  # the widget's worker dropped, a Ctrl+C: the generator's cleanup runs
    assert not (out / LOCK_NAME).exists()


def test_a_lock_left_by_a_killed_process_is_taken_over(tmp_path, folder, options):
    root, _ = folder
    out = tmp_path / "out"
    out.mkdir()
    _write_lock(out, pid=_dead_pid(), host=socket.gethostname(), started=time.time())
    results = run_batch([str(root)], out, options)
    assert any(r.status == "ok" for r in results)
    assert not (out / LOCK_NAME).exists()


def test_a_lock_from_another_machine_blocks_while_fresh_and_not_once_stale(tmp_path, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    _write_lock(out, pid=1, host="other-node-17", started=time.time())
    with pytest.raises(OutputFolderError, match="on other-node-17"):
        with folder_lock(out):
            pass
    old = time.time() - lock_module.STALE_S - 5
    os.utime(out / LOCK_NAME, (old, old))  # its run stopped touching it: killed, or the machine went off
    with folder_lock(out):
        assert json.loads((out / LOCK_NAME).read_text())["pid"] == os.getpid()
    assert not (out / LOCK_NAME).exists()


def test_a_running_lock_is_kept_fresh(tmp_path, monkeypatch):
    monkeypatch.setattr(lock_module, "HEARTBEAT_S", 0.05)
    out = tmp_path / "out"
    out.mkdir()
    with folder_lock(out):
        old = time.time() - 1000
        os.utime(out / LOCK_NAME, (old, old))
        deadline = time.monotonic() + 5
        while time.time() - (out / LOCK_NAME).stat().st_mtime > 100 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert time.time() - (out / LOCK_NAME).stat().st_mtime < 100


def test_an_unreadable_lock_is_replaced(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / LOCK_NAME).write_text("{not json")
    old = time.time() - 10
    os.utime(out / LOCK_NAME, (old, old))
    with folder_lock(out):
        assert json.loads((out / LOCK_NAME).read_text())["host"] == socket.gethostname()
