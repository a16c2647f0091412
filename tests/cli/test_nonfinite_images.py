"""NaN or infinite pixels, or none that differ, on the command line: the run finishes, one stderr line says so."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import tifffile
from helpers import synthetic_nuclei, threshold_model

from napari_unet_seg.cli.main import main
from napari_unet_seg.core.batch.summary import read_summary
from napari_unet_seg.core.inference.prediction import BLANK_NOTE, NONFINITE_NOTE
from napari_unet_seg.core.model.modelfile import save_model


@pytest.fixture
def model(tmp_path):
    return save_model(threshold_model(), tmp_path / "disks.safetensors")


def broken_image(bad: float) -> tuple[np.ndarray, np.ndarray]:
    image, labels = synthetic_nuclei((64, 80), n=6, seed=4)
    image = image.astype(np.float32)
    image[3, 3] = bad
    image[50:52, 0:2] = -np.inf
    return image, labels


@pytest.mark.parametrize("bad", [np.nan, -np.inf])
def test_evaluate_on_non_finite_pixels_finishes_and_says_so_in_one_line(tmp_path, model, bad):
    image, labels = broken_image(bad)
    tifffile.imwrite(tmp_path / "img.tif", image)
    tifffile.imwrite(tmp_path / "lab.tif", labels)
    code = "import sys; from napari_unet_seg.cli.main import main; sys.exit(main(sys.argv[1:]))"
    # in a process of its own, so a hang fails this test instead of stalling the run
    done = subprocess.run([sys.executable, "-c", code, "evaluate", str(tmp_path / "img.tif"), "--labels",
                           str(tmp_path / "lab.tif"), "--model", str(model), "--device", "cpu"],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines() == [f"unet-seg evaluate: note: img.tif: {NONFINITE_NOTE}"]
    assert "NaN and -inf were read as its darkest value" in done.stderr
    assert "img.tif: AP50" in done.stdout and "mean: AP50" in done.stdout


def test_predict_on_a_tiff_with_an_infinite_pixel_writes_labels_and_says_so(tmp_path, model, capsys):
    image, _ = broken_image(-np.inf)
    tifffile.imwrite(tmp_path / "img.tif", image)
    out = tmp_path / "out"
    code = main(["predict", str(tmp_path / "img.tif"), "-o", str(out), "--model", str(model), "--device", "cpu"])
    printed = capsys.readouterr()
    assert code == 0 and "1 segmented" in printed.out
    labels = tifffile.imread(out / "img_labels.tif")
    assert labels.shape == image.shape and labels.max() >= 5  # the disks are still found
    assert printed.err.splitlines() == [f"unet-seg predict: note: {tmp_path / 'img.tif'}: {NONFINITE_NOTE}"]
    [row] = read_summary(out)
    assert row.status == "ok" and row.message == NONFINITE_NOTE


def test_predict_on_a_blank_image_says_it_is_blank(tmp_path, model, capsys):
    tifffile.imwrite(tmp_path / "blank.tif", np.zeros((64, 80), np.uint16))
    code = main(["predict", str(tmp_path / "blank.tif"), "-o", str(tmp_path / "out"), "--model", str(model),
                 "--device", "cpu"])
    printed = capsys.readouterr()
    assert code == 0 and "1 segmented" in printed.out
    assert printed.err.splitlines() == [f"unet-seg predict: note: {tmp_path / 'blank.tif'}: {BLANK_NOTE}"]
    assert not tifffile.imread(tmp_path / "out" / "blank_labels.tif").any()
