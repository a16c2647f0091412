"""Menu and command-palette commands: thin wrappers that reuse the dock widgets.

"Segment with U-Net" runs through the Segment widget so the menu uses exactly
the settings the user sees there (and its progress bar and Cancel button).
"""

from __future__ import annotations

from typing import Any

from napari.viewer import Viewer

PLUGIN = "napari-unet-seg"


def _dock(viewer: Viewer, widget_name: str) -> Any:
    """The plugin's dock widget called ``widget_name``, opened if it is not docked yet."""
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, widget_name)
    return widget


def segment_with_unet(viewer: Viewer) -> None:
    """Layers > Segment > Segment with U-Net: segment the selected image layer with the current settings."""
    widget = _dock(viewer, "Segment")
    widget.run(viewer.layers.selection.active)


def open_batch_widget(viewer: Viewer) -> None:
    """File > IO utilities > Batch segment with U-Net…: open the batch dock."""
    _dock(viewer, "Batch segment")
