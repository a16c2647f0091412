"""Screenshot scripts' napari chores: let Qt run, wait for a dock's work, share the docks' height, shoot."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any


def pump(seconds: float = 0.5) -> None:
    """Process Qt events for ``seconds`` (layouts settle, workers report)."""
    from qtpy.QtWidgets import QApplication

    end = time.time() + seconds
    while time.time() < end:
        QApplication.processEvents()
        time.sleep(0.02)


def wait(widget: Any) -> None:
    """Until a dock's worker is done, then a little more for its results to be shown."""
    while widget.worker is not None:
        pump(0.05)
    pump()


def share_dock_heights(viewer: Any, heights: list[int]) -> None:
    """Stack the docks (top to bottom, in the order opened) with these heights in px, as a user would drag them.

    On a short window the plugin opens its docks as tabs; a picture that
    shows two docks at once drags them out of the tabs first.
    """
    from qtpy.QtCore import Qt

    window = viewer.window._qt_window
    docks = [widget.parent() for widget in viewer.window.dock_widgets.values()]  # the dock frames, not the widgets
    for dock in docks:
        window.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, dock)
    window.resizeDocks(docks, heights, Qt.Orientation.Vertical)


def shoot(viewer: Any, out: Path) -> None:
    """The whole window as the user sees it, once the layout has settled."""
    pump(1.0)
    out.parent.mkdir(parents=True, exist_ok=True)
    viewer.screenshot(str(out), canvas_only=False)
