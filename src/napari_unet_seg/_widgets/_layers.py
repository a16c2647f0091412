"""Reading napari layers the same way in every widget: full-resolution data, and the plane on screen.

No Qt here; call on the main thread.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from napari.layers import Image, Labels
from napari.viewer import Viewer

from ..core.common.labels_checks import looks_like_an_intensity_image


def image_opened_as_labels(viewer: Any) -> Any:
    """A Labels layer that holds a microscope image (values changing pixel to pixel), not labels: napari opens
    32-bit integer TIFFs as labels, and Segment's image list then shows nothing to segment. None if none."""
    return next((layer for layer in reversed(viewer.layers) if opened_as_labels(layer)), None)


def opened_as_labels(layer: Any) -> bool:
    """Whether ``layer`` is a Labels layer that holds a microscope image (see :func:`image_opened_as_labels`)."""
    return isinstance(layer, Labels) and looks_like_an_intensity_image(layer.data)


def layer_kind(layer: Any) -> str:
    """"Labels", "Image", "Shapes"...: the layer's class as a user knows it.

    napari hands plugins their layers wrapped in a ``PublicOnlyProxy``, whose
    ``type()`` is the proxy's; ``__class__`` is the wrapped layer's.
    """
    return layer.__class__.__name__


def layer_id(layer: Any) -> str:
    """A layer's lasting id (napari's ``unique_id``): it survives a rename, which the name does not."""
    return str(getattr(layer, "unique_id", "")) or layer.name


def same_layer(a: Any, b: Any) -> bool:
    """Whether two references name one layer. Not ``is``: a dock opened with ``add_plugin_dock_widget`` reads
    its layers through a proxy (a new one at each look), while the viewer's events hand out the layer itself."""
    return a is not None and b is not None and layer_id(a) == layer_id(b)


def source_array(layer: Image) -> Any:
    """The full-resolution data of an image layer (level 0 of a multiscale pyramid), unread."""
    return layer.data[0] if layer.multiscale else layer.data


def current_plane(viewer: Viewer, layer: Image, lead_ndim: int, channel_axis: int | None = None) -> tuple[int, ...]:
    """The leading (Z/T) index of ``layer`` at the viewer's current position.

    Goes through the layer's world-to-data transform, so it is right for
    scaled and translated layers (``viewer.dims.current_step`` counts world
    steps, not the layer's slices).
    """
    point = viewer.dims.point[-layer.ndim:]
    coords = [round(c) for c in layer.world_to_data(point)]
    if channel_axis is not None:
        del coords[channel_axis % layer.ndim]
    shape = source_array(layer).shape
    if channel_axis is not None:
        shape = tuple(s for i, s in enumerate(shape) if i != channel_axis % len(shape))
    return tuple(int(np.clip(c, 0, n - 1)) for c, n in zip(coords[:lead_ndim], shape[:lead_ndim]))


def layer_named(viewer: Viewer, name: str | None, kind: type) -> Any:
    """The layer called ``name`` if it is a ``kind`` (Image, Labels...), else None (a LayerList has no get())."""
    layer = viewer.layers[name] if name and name in viewer.layers else None
    return layer if isinstance(layer, kind) else None


def on_layers_changed(viewer: Viewer, callback: Callable[..., None]) -> None:
    """Call ``callback`` whenever a layer is added, removed or renamed: what a dock's layer pickers list."""
    for event in (viewer.layers.events.inserted, viewer.layers.events.removed):
        event.connect(callback)
    viewer.layers.events.inserted.connect(lambda e: e.value.events.name.connect(callback))
    for layer in viewer.layers:
        layer.events.name.connect(callback)


PLACEMENT = ("scale", "translate", "rotate", "shear", "affine")  # what says where a layer lies on screen


def on_layers_moved(viewer: Viewer, callback: Callable[..., None]) -> None:
    """Call ``callback`` whenever a layer, present or added later, is moved, scaled, rotated, sheared or warped."""
    def watch(layer: Any) -> None:
        for name in PLACEMENT:
            event = getattr(layer.events, name, None)
            if event is not None:
                event.connect(callback)

    viewer.layers.events.inserted.connect(lambda e: watch(e.value))
    for layer in viewer.layers:
        watch(layer)


def pixel_events(layers: list[Any]) -> list[Any]:
    """The events that say a layer's pixels changed: painted (Labels), or its data replaced whole."""
    return [event for layer in layers for event in (getattr(layer.events, "paint", None), layer.events.data)
            if event is not None]


class RunWatch:
    """Hears, while a run works on copies of some layers, whether the user paints, replaces or deletes them.

    The run's result is of the layers as they were when it started; its end
    says so (:meth:`news`), so nobody takes it for a result of what is on screen.
    """

    def __init__(self, viewer: Viewer, layers: list[Any]) -> None:
        self.viewer = viewer
        self.layers = [layer for layer in layers if layer is not None]
        self._changed: list[Any] = []  # the layers whose pixels changed, in the order they first did
        self._hooks = [(event, self._hook(layer)) for layer in self.layers for event in pixel_events([layer])]
        for event, callback in self._hooks:
            event.connect(callback)

    def _hook(self, layer: Any) -> Callable[..., None]:
        def changed(event: Any = None) -> None:
            if not any(seen is layer for seen in self._changed):
                self._changed.append(layer)
        return changed

    def news(self) -> tuple[list[str], list[str]]:
        """(deleted, changed): the names of the watched layers gone from the viewer, and of those still there
        whose pixels changed since the run started."""
        gone = [layer for layer in self.layers if layer not in self.viewer.layers]
        kept = [layer for layer in self._changed if not any(layer is other for other in gone)]
        return [layer.name for layer in gone], [layer.name for layer in kept]

    def stop(self) -> None:
        for event, callback in self._hooks:
            event.disconnect(callback)
        self._hooks = []


def same_place(image: Any, labels: Any, plane: tuple[int, ...]) -> bool:
    """Whether an image's plane lies where the labels' plane lies on screen (two opposite corners agree)."""
    try:
        for corner in ((0, 0), tuple(plane)):
            at = [np.asarray(layer.data_to_world((0,) * (layer.ndim - 2) + corner), float)[-2:]
                  for layer in (image, labels)]
            if not np.allclose(at[0], at[1], rtol=0, atol=1e-6 * max(1, *plane)):
                return False
    except (ValueError, IndexError, TypeError):
        return True  # a layout this check cannot read: the shape decides, as before
    return True
