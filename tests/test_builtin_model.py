"""The shipped ``nuclei`` model works end to end on real nuclei.

A sanity check that the wheel's weights, metadata and post-processing fit
together (a wrong file, a lost setting or a broken normalisation fails here).
The sample images come from the training split, so these are not accuracy
claims: those are in docs/model_card.md, measured on ``val``.
"""

from __future__ import annotations

import numpy as np
import pytest
from skimage.transform import rescale

from napari_unet_seg import load_model, segment
from napari_unet_seg._sample_data import _pair, sample_stems
from napari_unet_seg.core.training.metrics import matching_accuracy, dice
from napari_unet_seg.core.model.modelfile import load_model_file
from napari_unet_seg.core.model.registry import builtin_model_paths
from napari_unet_seg.core.inference.prediction import estimate_diameter
from napari_unet_seg.core.inference.preprocess import PreparedImage

pytestmark = pytest.mark.skipif("nuclei" not in builtin_model_paths(), reason="built-in model not installed")


@pytest.fixture(scope="module")
def sample():
    return _pair(sample_stems()[0])


def test_metadata_describes_how_to_use_the_weights():
    model = load_model("nuclei")
    assert model.task == "instances" and model.in_channels == 1
    assert 10 < model.object_diameter < 30
    assert {"foreground_threshold", "seed_prominence", "smoothing", "min_size"} <= model.postprocess.keys()
    assert model.metadata["training"]["script"] == "scripts/train_nuclei.py"


def test_segments_real_nuclei(sample):
    image, truth = sample
    labels = segment(image)
    assert matching_accuracy(truth, labels) > 0.65
    assert dice(truth, labels) > 0.85


def test_small_nuclei_are_measured_and_found_without_settings(sample):
    image, truth = sample
    small = rescale(image.astype(np.float32), 0.4, order=1, preserve_range=True, anti_aliasing=True).astype(np.uint8)
    small_truth = rescale(truth, 0.4, order=0, preserve_range=True, anti_aliasing=False).astype(truth.dtype)
    model = load_model("nuclei")
    prepared = PreparedImage(small, in_channels=1, normalization_settings=model.normalization)
    measured = estimate_diameter(model, prepared)
    low = model.auto_band[0]
    assert measured is not None and measured < low * model.object_diameter  # far off: the image gets rescaled
    assert matching_accuracy(small_truth, segment(small)) > 0.45


def test_batch_of_the_sample_folder_runs_to_the_end(tmp_path):
    """A folder of several images through the CLI with the built-in model (this once crashed the process)."""
    import subprocess
    import sys

    from napari_unet_seg._sample_data import sample_dir

    folder = sample_dir()
    out = tmp_path / "out"
    code = "from napari_unet_seg.cli.main import main; raise SystemExit(main())"
    result = subprocess.run([sys.executable, "-c", code, "predict", str(folder), "-o", str(out)],
                            capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    written = sorted(p.name for p in out.glob("*_labels.tif"))
    assert written == sorted(f"{stem}_labels.tif" for stem in sample_stems())  # ground-truth files not segmented


def test_hot_pixels_do_not_become_nuclei(sample):
    """A camera's hot pixels (here 0.2 %, brighter than the nuclei) are lowered before the network sees them."""
    image, truth = sample
    rng = np.random.default_rng(0)
    camera = image.astype(np.uint16) * 16  # as a 12-bit camera records it
    hot = rng.random(camera.shape) < 0.002
    camera[hot] = min(2 * int(np.percentile(camera[truth > 0], 99)), 4095)
    clean_ap = matching_accuracy(truth, segment(image))
    assert matching_accuracy(truth, segment(camera)) > clean_ap - 0.06  # without despiking: ~0.55 lower


def test_low_light_images_are_smoothed_before_the_network():
    """Few photons per pixel (Poisson noise): the model's noise check smooths such images, and that helps.

    Scored over the four sample images: one noisy image alone moves by a few hundredths when its
    resampling shifts by a fraction of a pixel."""
    model = load_model_file(builtin_model_paths()["nuclei"])
    plain = load_model_file(builtin_model_paths()["nuclei"])
    del plain.metadata["normalization"]["denoise"]
    smoothed, unsmoothed = [], []
    for stem in sample_stems():
        image, truth = _pair(stem)
        rng = np.random.default_rng(0)
        photons = 20 / np.percentile(image[truth > 0], 99)  # ~20 photons in a bright nucleus, 1 in the background
        dark = rng.poisson(image.astype(np.float32) * photons + 1).astype(np.uint16)
        assert PreparedImage(dark, in_channels=1, normalization_settings=model.normalization).normalization.smooth > 0
        assert PreparedImage(image, in_channels=1, normalization_settings=model.normalization).normalization.smooth == 0
        smoothed.append(matching_accuracy(truth, segment(dark, model)))
        unsmoothed.append(matching_accuracy(truth, segment(dark, plain)))
    assert np.mean(smoothed) > np.mean(unsmoothed) + 0.03  # measured: 0.554 vs 0.470
