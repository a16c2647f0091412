"""What users do while Segment runs, or between runs: rename, replace pixels, ask for probabilities."""

from __future__ import annotations

import time

import numpy as np
import pytest
from napari.layers import Labels

from napari_unet_seg._widgets import segment_form
from napari_unet_seg._widgets.segment import SegmentWidget
from napari_unet_seg.core.model.modelfile import new_model, save_model
from napari_unet_seg.core.model.registry import user_model_dir

pytestmark = pytest.mark.gui
TIMEOUT = 60_000


@pytest.fixture
def widget_and_viewer(make_napari_viewer, qtbot):
    save_model(new_model("instances", depth=2, base_channels=4), user_model_dir() / "tiny")
    viewer = make_napari_viewer()
    widget = SegmentWidget(viewer)
    qtbot.addWidget(widget)
    widget.refresh_models()
    widget.model_picker.combo.setCurrentText("tiny")
    return viewer, widget


def run(qtbot, widget):
    widget.run()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=TIMEOUT)


def labels_layers(viewer):
    return [layer for layer in viewer.layers if isinstance(layer, Labels)]


def test_renaming_the_image_between_runs_updates_the_same_result(widget_and_viewer, qtbot):
    viewer, widget = widget_and_viewer
    image = viewer.add_image(np.random.default_rng(0).integers(0, 255, (40, 48), dtype=np.uint8), name="cells")
    run(qtbot, widget)
    image.name = "cells day 2"
    run(qtbot, widget)
    assert len(labels_layers(viewer)) == 1


def test_pixels_replaced_mid_run_discard_the_stale_result(widget_and_viewer, qtbot, monkeypatch):
    viewer, widget = widget_and_viewer
    image = viewer.add_image(np.zeros((40, 48), np.uint8), name="cells")
    real = segment_form.segment_image

    def slow(*args, **kwargs):
        time.sleep(1.0)
        return real(*args, **kwargs)

    monkeypatch.setattr(segment_form, "segment_image", slow)
    widget.run()
    image.data = np.zeros((80, 96), np.uint8)  # the user loads another image into the layer meanwhile
    qtbot.waitUntil(lambda: widget.worker is None, timeout=TIMEOUT)
    assert labels_layers(viewer) == [] and "discarded" in widget.status.text()


def test_the_image_picker_stays_on_the_image_and_the_old_run_line_is_cleared(widget_and_viewer, qtbot, monkeypatch):
    viewer, widget = widget_and_viewer
    viewer.add_image(np.random.default_rng(1).integers(0, 255, (40, 48), dtype=np.uint8), name="cells")
    widget.settings.probabilities.setChecked(True)
    run(qtbot, widget)
    assert "cells probability" in viewer.layers and widget.image_picker.currentText() == "cells"
    assert widget.ran_on.text().startswith("Ran on")
    real = segment_form.segment_image
    monkeypatch.setattr(segment_form, "segment_image", lambda *a, **k: (time.sleep(0.5), real(*a, **k))[1])
    widget.run()
    assert widget.ran_on.text() == ""  # no stale "Ran on ... s" while the new run works
    qtbot.waitUntil(lambda: widget.worker is None, timeout=TIMEOUT)
    assert widget.ran_on.text().startswith("Ran on")


def test_renaming_the_image_during_a_run_updates_its_result_layer(widget_and_viewer, qtbot, monkeypatch):
    viewer, widget = widget_and_viewer
    image = viewer.add_image(np.random.default_rng(2).integers(0, 255, (40, 48), dtype=np.uint8), name="cells")
    run(qtbot, widget)
    [result] = labels_layers(viewer)
    real = segment_form.segment_image
    monkeypatch.setattr(segment_form, "segment_image", lambda *a, **k: (time.sleep(1.0), real(*a, **k))[1])
    widget.run()
    image.name = "cells day 2"  # while the second run works
    qtbot.waitUntil(lambda: widget.worker is None, timeout=TIMEOUT)
    assert labels_layers(viewer) == [result]  # no new layer: the run found its result by the image's id
    assert widget.status.text().startswith("Updated 'cells labels'")


@pytest.mark.parametrize("entry", ["constructed", "plugin dock"])
def test_deleting_the_image_mid_run_stops_the_run_at_once(widget_and_viewer, qtbot, monkeypatch, entry):
    """Also in a dock napari opened, whose viewer hands out proxies of the layers its events name bare."""
    from napari_unet_seg.core.common.callbacks import raise_if_cancelled

    viewer, widget = widget_and_viewer
    if entry == "plugin dock":
        _, widget = viewer.window.add_plugin_dock_widget("napari-unet-seg", "Segment")
        widget.refresh_models()
        widget.model_picker.combo.setCurrentText("tiny")
    image = viewer.add_image(np.random.default_rng(0).integers(0, 255, (48, 48), dtype=np.uint8), name="cells")
    other = viewer.add_image(np.zeros((8, 8), np.uint8), name="other")
    windows = []

    def long_run(*args, progress=None, cancel=None, **kwargs):  # a long run that checks cancel, as the core does
        for window in range(600):
            raise_if_cancelled(cancel)
            windows.append(window)
            progress(window, 600)
            time.sleep(0.05)
        raise AssertionError("the run was not stopped")

    monkeypatch.setattr(segment_form, "segment_image", long_run)
    widget.run(widget.viewer.layers["cells"])  # as the dock reads it: a proxy, in a plugin dock
    qtbot.waitUntil(lambda: len(windows) > 2, timeout=TIMEOUT)
    viewer.layers.remove(other)  # another layer: the run goes on
    assert not widget._cancel.is_set()
    viewer.layers.remove(image)
    assert widget._cancel.is_set()  # its result has nowhere to go: no waiting for the rest of the run
    assert widget.status.text() == "'cells' was removed: stopping…"  # not the network's stale line meanwhile
    qtbot.waitUntil(lambda: widget.worker is None, timeout=TIMEOUT)
    assert widget.status.text() == "'cells' was removed during the run; segmentation stopped."
    assert labels_layers(viewer) == [] and len(windows) < 100
