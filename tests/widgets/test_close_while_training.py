"""Closing napari while Train runs: no crash, the training stops, and the model is still saved."""

from __future__ import annotations

import napari
import pytest

from helpers import quick_training, synthetic_nuclei
from napari_unet_seg.core.model.registry import user_model_dir

pytestmark = pytest.mark.gui


def test_closing_the_viewer_mid_training_keeps_the_model(qtbot, tmp_path):
    viewer = napari.Viewer(show=False)
    image, labels = synthetic_nuclei((128, 128), n=12)
    viewer.add_image(image, name="cells")
    viewer.add_labels(labels, name="cells labels")
    _, widget = viewer.window.add_plugin_dock_widget("napari-unet-seg", "Train")
    quick_training(widget, tmp_path / "project", 100_000, {"crop_size": 48, "batch_size": 2})
    widget.settings.max_seconds.setValue(120)
    widget.start()
    qtbot.waitUntil(lambda: widget.progress.value() > 0 or "step" in widget.status.text(), timeout=60_000)
    viewer.close()  # mid-run: the widget goes with it
    qtbot.waitUntil(lambda: any(user_model_dir().glob("objects-model*.safetensors")), timeout=60_000)
    qtbot.waitUntil(lambda: not list(user_model_dir().glob("*-checkpoint.safetensors")), timeout=10_000)
