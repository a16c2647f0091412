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
    """Give the docks (top to bottom) these heights in px, as a user would drag the splitter between them."""
    from qtpy.QtCore import Qt

    docks = [widget.parent() for widget in viewer.window.dock_widgets.values()]  # the dock frames, not the widgets
    viewer.window._qt_window.resizeDocks(docks, heights, Qt.Orientation.Vertical)


def shoot(viewer: Any, out: Path) -> None:
    """The whole window as the user sees it, once the layout has settled."""
    pump(1.0)
    out.parent.mkdir(parents=True, exist_ok=True)
    viewer.screenshot(str(out), canvas_only=False)
