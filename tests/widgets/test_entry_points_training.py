"""Training through the plugin's real entry point: the Train dock as napari opens it from the Plugins menu."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import quick_training, synthetic_nuclei

from napari_unet_seg._widgets import _common
from napari_unet_seg._widgets import train as train_module
from napari_unet_seg._widgets.train_form import MODE_TEXT
from napari_unet_seg.core.model.modelfile import load_model_file, read_metadata
from napari_unet_seg.core.model.registry import available_models, user_model_dir

pytestmark = pytest.mark.gui
TIMEOUT = 60_000


@pytest.fixture
def errors(monkeypatch) -> list[str]:
    seen: list[str] = []
    monkeypatch.setattr(train_module, "show_error", seen.append)
    monkeypatch.setattr(_common, "show_error", seen.append)  # failures in the worker
    return seen


def test_region_limited_training_from_a_shapes_rectangle_saves_a_region_model(make_napari_viewer, qtbot, tmp_path,
                                                                               errors):
    viewer = make_napari_viewer()
    image, labels = synthetic_nuclei((96, 96))
    viewer.add_image(image, name="cells")
    viewer.add_labels(labels, name="partly painted")
    viewer.add_shapes([np.array([[0, 0], [0, 60], [60, 60], [60, 0]])], shape_type="rectangle", name="done here")
    _, widget = viewer.window.add_plugin_dock_widget("napari-unet-seg", "Train")
    assert isinstance(widget, train_module.TrainWidget)
    quick_training(widget, tmp_path / "project", 2)
    widget.settings.mode_box.setCurrentText(MODE_TEXT["region"])
    assert widget.settings.mode() == "region" and widget.settings.region_box.isEnabled()
    widget.settings.region_box.setCurrentText("done here")
    chosen = (widget.settings.image_box.currentText(), widget.settings.labels_box.currentText())
    assert chosen == ("cells", "partly painted")
    widget.start()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=TIMEOUT)
    assert not errors, errors
    path = widget.outcome.path
    assert path.parent == user_model_dir() and path.stem in available_models()
    assert widget.outcome.result.train.steps == 2
    run = read_metadata(path)["lineage"][-1]
    assert run["mode"] == "region" and run["base"] == "scratch"
    assert run["data"][0]["name"] == "cells" and run["data"][0]["annotated_pixels"] == 61 * 61  # the rectangle only
    assert load_model_file(path).net.config()["base_channels"] == 4  # whole, and the tiny network asked for
