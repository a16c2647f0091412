"""Reading napari layers the same way in every widget: full-resolution data, and the plane on screen.

No Qt here; call on the main thread.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from napari.layers import Image
from napari.viewer import Viewer


def layer_kind(layer: Any) -> str:
    """"Labels", "Image", "Shapes"...: the layer's class as a user knows it.

    napari hands plugins their layers wrapped in a ``PublicOnlyProxy``, whose
    ``type()`` is the proxy's; ``__class__`` is the wrapped layer's.
    """
    return layer.__class__.__name__


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
