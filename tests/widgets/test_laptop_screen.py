"""Every dock fits a 768-px-high laptop screen, docked together, with its Run button in view."""

from __future__ import annotations

import pytest
from qtpy.QtWidgets import QApplication

PLUGIN = "napari-unet-seg"


@pytest.mark.gui
def test_segment_train_and_batch_docked_together_fit_a_1366x768_screen(make_napari_viewer):
    viewer = make_napari_viewer(show=True)
    _, segment = viewer.window.add_plugin_dock_widget(PLUGIN, "Segment")
    _, train = viewer.window.add_plugin_dock_widget(PLUGIN, "Train")
    viewer.window.resize(1366, 740)  # 768 less a task bar
    for _ in range(10):
        QApplication.processEvents()
    height = viewer.screenshot(canvas_only=False).shape[0]
    assert height <= 768, f"the window cannot shrink below {height} px"
    assert segment.minimumSizeHint().height() + train.minimumSizeHint().height() <= 600
    for button in (segment.segment_button, train.train_button, train.cancel_button):
        assert button.isVisible() and not button.visibleRegion().isEmpty()
    assert not train.plot.visibleRegion().isEmpty()
    _, batch = viewer.window.add_plugin_dock_widget(PLUGIN, "Batch segment")
    assert batch.minimumSizeHint().height() <= 400
