"""'Average over mirror images' in the Segment and Batch docks reaches the run, and changes its result."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import randomize_batchnorm, synthetic_nuclei

from napari_unet_seg import new_model, save_model
from napari_unet_seg.core.model.registry import user_model_dir

pytestmark = pytest.mark.gui


@pytest.fixture
def tiny_in_user_folder() -> None:
    torch.manual_seed(0)
    model = new_model("instances", depth=2, base_channels=4)
    randomize_batchnorm(model.net)
    save_model(model, user_model_dir() / "tiny")


def test_segment_dock_flip_averaging_reaches_the_run(make_napari_viewer, tiny_in_user_folder):
    viewer = make_napari_viewer()
    image, _ = synthetic_nuclei((64, 64))
    layer = viewer.add_image(image, name="cells")
    _, widget = viewer.window.add_plugin_dock_widget("napari-unet-seg", "Segment")
    widget.model_picker.combo.setCurrentText("tiny")
    widget.settings.probabilities.setChecked(True)
    plain = widget.settings.job(layer)
    widget.settings.flip_average.setChecked(True)
    flipped = widget.settings.job(layer)
    assert not plain.options.flip_average and flipped.options.flip_average
    a, b = plain.run(), flipped.run()
    assert a.provenance["settings"]["flip_average"] is False and b.provenance["settings"]["flip_average"] is True
    assert "--flip-average" in b.provenance["command"]
    assert a.probabilities.shape == b.probabilities.shape
    assert not np.allclose(a.probabilities, b.probabilities, atol=1e-4)  # the network was averaged


def test_batch_dock_flip_averaging_reaches_the_run(make_napari_viewer):
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("napari-unet-seg", "Batch segment")
    assert widget.options().flip_average is False
    widget.flip_average.setChecked(True)
    assert widget.options().flip_average is True
