"""A training process killed mid-run (SIGKILL: no handler, no cleanup) loses at most one checkpoint interval.

The last checkpoint is a whole, loadable model; nothing partial sits where a
model is expected; the model training started from is never touched.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile
from helpers import synthetic_nuclei, threshold_model

from napari_unet_seg.core.model.modelfile import load_model_file, save_model
from napari_unet_seg.core.model.registry import available_models

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")


def fingerprint(path: Path) -> tuple[str, int, int]:
    stat = path.stat()
    return hashlib.sha256(path.read_bytes()).hexdigest(), stat.st_mtime_ns, stat.st_mode


def start_training(tmp_path: Path, init: Path, output: Path) -> subprocess.Popen:
    image, labels = synthetic_nuclei((96, 96), n=8, seed=4)
    tifffile.imwrite(tmp_path / "img.tif", image)
    tifffile.imwrite(tmp_path / "lbl.tif", labels)
    command = [sys.executable, "-m", "napari_unet_seg.cli.main", "train", "--image", str(tmp_path / "img.tif"),
               "--labels", str(tmp_path / "lbl.tif"), "--init", str(init), "--max-steps", "100000",
               "--max-seconds", "300", "--checkpoint-every", "0.05", "-o", str(output)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, cwd=tmp_path)


def wait_for_checkpoints(process: subprocess.Popen, checkpoint: Path, count: int, timeout: float = 120.0) -> None:
    """Until ``count`` different checkpoints were written (each one replaces the last: a new inode)."""
    seen: set[int] = set()
    deadline = time.monotonic() + timeout
    while len(seen) < count:
        if process.poll() is not None:
            pytest.fail(f"training ended early: {process.stdout.read().decode()[-2000:]}")
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"no {count} checkpoints in {timeout:.0f} s")
        try:
            seen.add(checkpoint.stat().st_ino)
        except FileNotFoundError:
            pass
        time.sleep(0.005)


def test_a_killed_training_keeps_its_last_checkpoint_and_touches_nothing_else(tmp_path, monkeypatch):
    models = tmp_path / "models"
    init = save_model(threshold_model(), models / "mine.safetensors")
    before = fingerprint(init)
    output = models / "cells.safetensors"
    checkpoint = models / "cells-checkpoint.safetensors"
    process = start_training(tmp_path, init, output)
    try:
        wait_for_checkpoints(process, checkpoint, 3)
    finally:
        process.send_signal(signal.SIGKILL)  # at once: most likely while the next checkpoint is being written
        process.wait(timeout=30)
        process.stdout.close()
    assert process.returncode == -signal.SIGKILL

    saved = load_model_file(checkpoint)  # whole, and a model Segment can use
    assert "checkpoint" in saved.metadata
    assert all(np.isfinite(p.detach().numpy()).all() for p in saved.net.state_dict().values())
    assert not output.exists()  # the final model was never written, so nothing stands in its place
    visible = sorted(p.name for p in models.iterdir() if not p.name.startswith("."))
    assert visible == ["cells-checkpoint.safetensors", "mine.safetensors"]
    leftovers = [p.name for p in models.iterdir() if p.name.startswith(".")]
    assert all(name.endswith((".tmp", ".partial")) for name in leftovers)  # at most a half-written temporary...
    monkeypatch.setenv("NAPARI_UNET_SEG_MODEL_DIR", str(models))
    assert not any(".tmp" in name or ".partial" in name for name in available_models())  # ...that no list shows
    assert fingerprint(init) == before  # the model training started from: same bytes, time and mode
