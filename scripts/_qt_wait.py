"""Waiting on napari from a screenshot script: let Qt run, and let a dock's background work finish."""

from __future__ import annotations

import time
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
