"""Menu and command-palette commands: thin wrappers that reuse the dock widgets.

"Segment with U-Net" runs through the Segment widget so the menu uses exactly
the settings the user sees there (and its progress bar and Cancel button).
"""

from __future__ import annotations

from typing import Any

from napari.viewer import Viewer

PLUGIN = "napari-unet-seg"


def _dock(viewer: Viewer, widget_name: str, kind: type) -> Any:
    """The plugin's open dock widget of ``kind``, else a new one called ``widget_name``.

    Looked up by class, not by name: napari names the dock by the plugin's display name
    when the Plugins menu opens it and by its package name in ``add_plugin_dock_widget``,
    so a name lookup opened a second dock whose settings were not the ones the user had set.
    """
    try:
        docked = list(viewer.window.dock_widgets.values())
    except (AttributeError, RuntimeError):
        docked = []
    widget = next((item for item in docked if isinstance(item, kind)), None)
    if widget is None:  # docked under the name the Plugins menu gives it, so that menu finds it too
        from npe2 import PluginManager

        display_name = PluginManager.instance().get_manifest(PLUGIN).display_name
        widget = kind(viewer)
        viewer.window.add_dock_widget(widget, name=f"{widget_name} ({display_name})")
    else:
        widget.parentWidget().raise_()  # a dock tabbed behind another comes to the front
    return widget


def segment_with_unet(viewer: Viewer) -> None:
    """Layers > Segment > Segment with U-Net: segment the selected image layer with the current settings."""
    from ._widgets.segment import SegmentWidget

    widget = _dock(viewer, "Segment", SegmentWidget)
    widget.run(viewer.layers.selection.active)


def open_batch_widget(viewer: Viewer) -> None:
    """File > IO utilities > Batch segment with U-Net…: open the batch dock."""
    from ._widgets.batch import BatchWidget

    _dock(viewer, "Batch segment", BatchWidget)
