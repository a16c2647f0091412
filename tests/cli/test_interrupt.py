"""Ctrl-C stops a batch within one window batch: exit 130, nothing half-written, the summary of what finished."""

from __future__ import annotations

import _thread
import signal
import threading
import time
from pathlib import Path

import numpy as np
import tifffile

from helpers import threshold_model
from napari_unet_seg.cli.main import main
from napari_unet_seg.core.batch.summary import read_summary
from napari_unet_seg.core.common.callbacks import raise_if_cancelled
from napari_unet_seg.core.inference import prediction
from napari_unet_seg.core.model.modelfile import save_model


def test_ctrl_c_stops_the_running_file_at_its_next_window_batch(tmp_path, monkeypatch, capsys, request):
    model = save_model(threshold_model(), tmp_path / "m.safetensors")
    for name in ("a", "b"):
        tifffile.imwrite(tmp_path / f"{name}.tif", np.zeros((64, 64), np.uint8))

    def slow_network(net, image, *, cancel=None, **kwargs):  # 20 s of windows unless cancelled
        for _ in range(400):
            raise_if_cancelled(cancel)
            time.sleep(0.05)
        return np.zeros((2,) + tuple(image.shape[-2:]), np.float32)

    monkeypatch.setattr(prediction, "predict_tiled", slow_network)
    # a shell starting the tests in the background ignores SIGINT, and Python then keeps it ignored: put back
    # the handler a terminal's Ctrl-C reaches
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    request.addfinalizer(lambda: signal.signal(signal.SIGINT, previous))
    threading.Timer(1.0, _thread.interrupt_main).start()  # what Ctrl-C does
    start = time.perf_counter()
    code = main(["predict", str(tmp_path / "a.tif"), str(tmp_path / "b.tif"), "-o", str(tmp_path / "out"),
                 "--model", str(model)])
    seconds = time.perf_counter() - start
    assert code == 130 and "interrupted" in capsys.readouterr().err
    assert seconds < 5, f"took {seconds:.1f} s to stop"
    out = tmp_path / "out"
    assert (out / "summary.csv").exists()
    assert not list(out.glob("*.tif")) and not list(out.glob(".*"))  # no output, no partial file


def test_ctrl_c_keeps_the_row_of_a_file_that_finished_before_it(tmp_path, monkeypatch, capsys, request):
    model = save_model(threshold_model(), tmp_path / "m.safetensors")
    tifffile.imwrite(tmp_path / "a.tif", np.zeros((64, 64), np.uint8))
    tifffile.imwrite(tmp_path / "b.tif", np.zeros((64, 96), np.uint8))  # told apart by its width
    out = tmp_path / "out"

    def a_finished() -> bool:
        return any(Path(row.file).name == "a.tif" and row.status == "ok" for row in read_summary(out))

    def network(net, image, *, cancel=None, **kwargs):
        if image.shape[-1] == 96:  # b: Ctrl-C once a's row is in summary.csv, then 20 s of windows unless cancelled
            deadline = time.monotonic() + 30
            while not a_finished() and time.monotonic() < deadline:
                time.sleep(0.05)
            _thread.interrupt_main()  # what Ctrl-C does
            for _ in range(400):
                raise_if_cancelled(cancel)
                time.sleep(0.05)
        return np.zeros((2,) + tuple(image.shape[-2:]), np.float32)

    monkeypatch.setattr(prediction, "predict_tiled", network)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # as in the test above
    request.addfinalizer(lambda: signal.signal(signal.SIGINT, previous))
    start = time.perf_counter()
    code = main(["predict", str(tmp_path / "a.tif"), str(tmp_path / "b.tif"), "-o", str(out), "--model", str(model)])
    seconds = time.perf_counter() - start
    printed = capsys.readouterr()
    assert code == 130 and "interrupted" in printed.err and "a.tif: 0 objects" in printed.out
    assert f"with their rows in {out / 'summary.csv'}; run the same command again" in printed.err  # how to go on
    assert seconds < 30, f"took {seconds:.1f} s to stop"
    rows = read_summary(out)
    assert [(Path(row.file).name, row.status) for row in rows] == [("a.tif", "ok")]  # b never finished: no row
    assert rows[0].output == str(out / "a_labels.tif")
    assert tifffile.imread(out / "a_labels.tif").shape == (64, 64)
    assert sorted(p.name for p in out.iterdir()) == ["a_labels.tif", "a_objects.csv", "a_objects.json", "qc",
                                                     "summary.csv"]
    assert sorted(p.name for p in (out / "qc").iterdir()) == ["a_labels.png", "index.html"]  # nothing of b
