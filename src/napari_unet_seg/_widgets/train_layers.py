"""Viewer layers -> training pairs for the Train widget (no Qt here; call on the main thread).

An Image layer and a Labels layer become one :class:`TrainingPair` per chosen
2D plane; a Shapes layer or a mask (Labels/Image) layer becomes the annotated
region. Everything is copied, so painting on while training runs is safe.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from napari.layers import Shapes

from ..core.inference.layout import channels_first, one_channel
from ..core.training.data import TrainingPair
from ._layers import source_array
from .segment_layers import METADATA_KEY, edited_region, spatial_kwargs

MODES = ("dense", "region", "scribbles")


def plane_axes(layer: Any) -> int:
    """How many trailing axes make one plane: 3 for RGB images, else 2."""
    return 3 if getattr(layer, "rgb", False) else 2


def _full(layer: Any) -> Any:
    """The full-resolution data (level 0 of a pyramid), unread: a multiscale layer's ``data`` reads its
    smallest level when made into an array."""
    return source_array(layer) if getattr(layer, "multiscale", False) else layer.data


def _shape(layer: Any) -> tuple[int, ...]:
    """The full-resolution shape, without reading pixels."""
    return tuple(np.shape(_full(layer)))


@dataclass(frozen=True)
class ChannelRead:
    """How Segment read an image's channels (the axis that holds them, the one channel segmented alone), so that
    training reads the same pixels: the nuclear channel of a (C, Y, X) layer, not its plane on screen."""

    channel_axis: int | None = None
    channel: int | None = None

    def data(self, image_layer: Any) -> tuple[Any, bool]:
        """(data, rgb): the layer's full-resolution data as Segment saw it, unread: (..., H, W), (..., H, W, 3|4)
        when ``rgb``, or (..., C, H, W)."""
        data, rgb = _full(image_layer), bool(getattr(image_layer, "rgb", False)) and self.channel_axis is None
        if self.channel is not None:
            return one_channel(data, self.channel, rgb=rgb, channel_axis=self.channel_axis), False
        return channels_first(data, self.channel_axis), rgb

    def plane_axes(self, image_layer: Any) -> int:
        """How many trailing axes of :meth:`data` make one plane."""
        if self.channel is not None:
            return 2
        return 3 if self.channel_axis is not None else plane_axes(image_layer)


def channel_read(image_layer: Any, labels_layer: Any) -> ChannelRead:
    """How Segment read ``image_layer``'s channels when it made ``labels_layer`` from it (recorded in the labels'
    metadata); the layer as it is for labels made otherwise."""
    made = labels_layer.metadata.get(METADATA_KEY) if hasattr(labels_layer, "metadata") else None
    if not isinstance(made, dict) or not _made_from(made, image_layer):
        return ChannelRead()
    axis, channel = made.get("channel_axis"), made.get("channel")
    ndim = len(_shape(image_layer))
    axis = int(axis) if isinstance(axis, int) and -ndim <= axis < ndim else None
    return ChannelRead(axis, int(channel) if isinstance(channel, int) and channel >= 0 else None)


def channels_for_model(image_layer: Any, labels_layer: Any, in_channels: int | None) -> ChannelRead:
    """How to read the image for a starting model of ``in_channels``: as Segment did for its labels; else, for a
    model of N > 1 channels, the image's axis of N values that is not the labels' plane (first, else last), so
    hand-painted labels over a (C, Y, X) or (Y, X, C) layer train a multichannel model on all its channels."""
    read = channel_read(image_layer, labels_layer)
    if read != ChannelRead() or not in_channels or in_channels < 2 or getattr(image_layer, "rgb", False):
        return read
    shape, plane = _shape(image_layer), _shape(labels_layer)[-2:]
    if len(shape) >= 3 and shape[0] == in_channels and shape[-2:] == plane:
        return ChannelRead(0)
    if len(shape) >= 3 and shape[-1] == in_channels and shape[-3:-1] == plane:
        return ChannelRead(-1)
    return read


def _made_from(made: dict[str, Any], image_layer: Any) -> bool:
    source_id = made.get("source_id")
    if source_id and str(getattr(image_layer, "unique_id", "")):
        return source_id == str(image_layer.unique_id)
    return made.get("source") == image_layer.name


def _plane_size(shape: tuple[int, ...], rgb: bool) -> tuple[int, ...]:
    """(H, W) of data read by :class:`ChannelRead`: colour last when ``rgb``, channels (if any) before."""
    return shape[-3:-1] if rgb else shape[-2:]


def leading_shape(image_layer: Any, read: ChannelRead = ChannelRead()) -> tuple[int, ...]:
    """The leading (Z/T) shape of an image read as ``read`` says: what is left once a plane's axes are taken."""
    shape = tuple(np.shape(read.data(image_layer)[0]))
    return shape[: len(shape) - read.plane_axes(image_layer)]


def overlays(image_layer: Any, labels_layer: Any, read: ChannelRead | None = None) -> bool:
    """Whether the labels cover the image's planes pixel for pixel, as :func:`pairs_from_layers` needs (the image
    read as Segment read it when it made the labels)."""
    read = channel_read(image_layer, labels_layer) if read is None else read
    try:
        data, rgb = read.data(image_layer)
    except ValueError:  # a recorded channel the image no longer has
        return False
    lead = leading_shape(image_layer, read)
    plane = _plane_size(tuple(np.shape(data)), rgb)
    labels_shape = _shape(labels_layer)
    return labels_shape[-2:] == plane and (len(labels_shape) <= 2 or labels_shape[:-2] == lead)


def plane_text(layer: Any) -> str:
    """"520 × 696" (a plane's height × width), or "3 × 520 × 696" for a stack: sizes a user compares."""
    shape = _shape(layer)
    return " × ".join(str(n) for n in (shape[:-1] if plane_axes(layer) == 3 else shape))


def image_for(labels_layer: Any, images: list[Any], current: Any = None) -> Any:
    """The image layer that goes with ``labels_layer``, or None when no single one does.

    The image Segment made the labels from (recorded in their metadata), else
    the image whose name begins the labels' ("cells" for "cells_corrected",
    the longest if several), else ``current`` when the labels overlay it, else
    the only image they overlay.
    """
    matching = [image for image in images if overlays(image, labels_layer)]
    made_from = labels_layer.metadata.get(METADATA_KEY)
    if isinstance(made_from, dict):  # the id follows the image through renames; else its name at the time
        source_id = made_from.get("source_id")
        by_id = [image for image in matching if source_id and str(getattr(image, "unique_id", "")) == source_id]
        by_name = [image for image in matching if image.name == made_from.get("source")]
        if by_id or by_name:
            return (by_id or by_name)[0]
    named = [image for image in matching if image.name and str(labels_layer.name).startswith(image.name)]
    if named and not (current is not None and current in named):
        return max(named, key=lambda image: len(image.name))  # labels opened from "<image>_labels.tif" and the like
    if current is not None and current in matching:  # == and in: napari may hand out proxies of one layer
        return current
    return matching[0] if len(matching) == 1 else None


def parse_slices(text: str, count: int, current: int) -> list[int]:
    """"" = the slice on screen; "all"; or "0, 3, 5-8" (indices into the leading axis)."""
    text = text.strip().lower()
    if not text:
        return [current]
    if text == "all":
        return list(range(count))
    chosen: list[int] = []
    for part in text.replace(" ", "").split(","):
        if not part:
            continue
        try:
            if "-" in part:
                a, b = (int(v) for v in part.split("-", 1))
                chosen.extend(range(a, b + 1))
            else:
                chosen.append(int(part))
        except ValueError:
            raise ValueError(f"cannot read slices {text!r}: use e.g. '0, 3, 5-8' or 'all'") from None
    bad = [i for i in chosen if not 0 <= i < count]
    if bad:
        raise ValueError(f"slice {bad[0]} does not exist (the stack has {count} slices, 0-{count - 1})")
    return sorted(set(chosen))


def region_mask(layer: Any, plane_shape: tuple[int, int], index: tuple[int, ...]) -> np.ndarray:
    """The annotated region on one plane: inside any shape, or nonzero in a mask layer."""
    if isinstance(layer, Shapes):
        if layer.nshapes == 0:
            return np.zeros(plane_shape, bool)
        if layer.ndim == 2:
            return np.asarray(layer.to_masks(mask_shape=plane_shape)).any(axis=0)
        full = tuple(int(i) + 1 for i in index) + tuple(plane_shape)
        masks = np.asarray(layer.to_masks(mask_shape=full)).any(axis=0)
        return masks[index] if index else masks
    full = _full(layer)
    data = np.asarray(full[index] if index and np.ndim(full) > 2 else full)
    if data.shape != plane_shape:
        raise ValueError(f"the region layer '{layer.name}' has shape {data.shape}, the image plane {plane_shape}")
    return data > 0


def pairs_from_layers(
    image_layer: Any, labels_layer: Any, *, mode: str = "dense", region_layer: Any = None,
    slices: str = "", on_screen: tuple[int, ...] = (), read: ChannelRead | None = None,
) -> list[TrainingPair]:
    """Copy the chosen planes of an image/labels pair into training pairs.

    ``on_screen`` is the leading (Z/T...) index of the plane the viewer shows
    (:func:`._layers.current_plane`): the default for a stack, and the only
    choice for deeper stacks. ``read`` says how to read the image's channels
    (default: as Segment did, when it made the labels).
    """
    if mode not in MODES:
        raise ValueError(f"unknown annotation mode {mode!r}")
    if mode == "region" and region_layer is None:
        raise ValueError("region-limited training needs a Shapes or mask layer that marks the annotated region")
    read = channel_read(image_layer, labels_layer) if read is None else read
    image_data, rgb = read.data(image_layer)
    lead = leading_shape(image_layer, read)
    labels_data = _full(labels_layer)
    image_shape = tuple(np.shape(image_data))
    plane_shape = _plane_size(image_shape, rgb)
    labels_shape = tuple(np.shape(labels_data))
    if not overlays(image_layer, labels_layer, read):
        raise ValueError(f"labels '{labels_layer.name}' have shape {labels_shape} but image "
                         f"'{image_layer.name}' is {image_shape}: they must overlay exactly")
    if not lead:
        indices: list[tuple[int, ...]] = [()]
    elif len(lead) == 1:
        current = int(on_screen[0]) if on_screen else 0
        indices = [(i,) for i in parse_slices(slices, lead[0], current)]
    else:  # deeper stacks (T, Z, ...): the plane on screen
        indices = [tuple(int(s) for s in on_screen[: len(lead)])]
    pairs = []
    for index in indices:
        image = np.array(image_data[index] if index else image_data)
        labels = np.array(labels_data[index] if index and len(labels_shape) > 2 else labels_data)
        valid = region_mask(region_layer, plane_shape, index) if mode == "region" else None
        name = image_layer.name + (f" [{', '.join(map(str, index))}]" if index else "")
        if read.channel is not None:
            name += f" (channel {read.channel})"
        # where the user corrected Segment's result: the project keeps earlier rounds' corrections elsewhere
        edited = None if mode == "scribbles" or not hasattr(labels_layer, "metadata") else \
            edited_region(labels_layer, tuple(index) if len(labels_shape) > 2 else ())
        pairs.append(TrainingPair(image, labels.astype(np.int64, copy=False), valid, rgb=rgb, name=name,
                                  plane=tuple(index), edited=edited))
    if mode == "dense" or len(lead) > 1:
        return pairs
    annotated = [pair for pair in pairs if _annotated(pair, mode)]
    if annotated:
        return annotated  # "all" or a range over a stack painted on some slices: those slices
    elsewhere = [i for i in range(lead[0]) if (i,) not in indices and len(labels_shape) > 2
                 and _annotated_slice(labels_data[i], mode, region_layer, plane_shape, (i,))] if lead else []
    if elsewhere:
        where = ", ".join(map(str, elsewhere[:10])) + (", ..." if len(elsewhere) > 10 else "")
        chosen = ", ".join(str(i[0]) for i in indices[:10])
        several = len(elsewhere) > 1
        raise ValueError(f"nothing is annotated on slice{'s' if len(indices) > 1 else ''} {chosen}; slice"
                         f"{'s' if several else ''} {where} {'are' if several else 'is'} annotated: type "
                         f"{'them' if several else 'it'} in 'stack slices' (or 'all')")
    if mode == "scribbles":  # named after the layer that is empty, not the image it lies over
        raise ValueError(f"'{labels_layer.name}' holds no scribbles yet: paint a stroke of each class over "
                         f"'{image_layer.name}' (1 = background), then press Train")
    return pairs  # no region drawn: the training checks say so


def _annotated(pair: TrainingPair, mode: str) -> bool:
    """Whether a scribbles or region pair holds any annotated pixel."""
    if mode == "region":
        return bool(pair.valid is not None and pair.valid.any())
    return bool((np.asarray(pair.labels) > 0).any())


def _annotated_slice(labels: Any, mode: str, region_layer: Any, plane_shape: tuple[int, int],
                     index: tuple[int, ...]) -> bool:
    if mode == "region":
        return bool(region_mask(region_layer, plane_shape, index).any())
    return bool((np.asarray(labels) > 0).any())


def visible_box(image_layer: Any, plane_shape: tuple[int, int], limit: int = 768,
                channel_axis: int | None = None) -> tuple[int, int, int, int]:
    """(y0, y1, x0, x1): the part of the plane on screen, at most ``limit`` px a side (cheap previews).

    ``corner_pixels`` has one column per axis of the layer (a colour axis is
    not one); a channel axis is taken out, and the plane is the last two.
    """
    h, w = plane_shape
    try:
        corners = np.asarray(image_layer.corner_pixels)
        if channel_axis is not None:
            corners = np.delete(corners, channel_axis % corners.shape[1], axis=1)
        corners = corners[:, -2:]
        y0, x0 = (int(v) for v in corners[0])
        y1, x1 = (int(v) + 1 for v in corners[1])
    except (AttributeError, IndexError, ValueError, TypeError):
        y0, y1, x0, x1 = 0, h, 0, w
    y0, x0 = max(y0, 0), max(x0, 0)
    y1, x1 = min(y1, h), min(x1, w)
    if y1 - y0 < 8 or x1 - x0 < 8:
        y0, y1, x0, x1 = 0, h, 0, w
    cy, cx = (y0 + y1) // 2, (x0 + x1) // 2
    if y1 - y0 > limit:
        y0 = min(max(cy - limit // 2, 0), h - limit)
        y1 = y0 + limit
    if x1 - x0 > limit:
        x0 = min(max(cx - limit // 2, 0), w - limit)
        x1 = x0 + limit
    return y0, y1, x0, x1


def plane_placement(image_layer: Any, channel_axis: int | None, plane: tuple[int, ...]) -> dict[str, Any]:
    """Where a (1, ..., 1, H, W) layer holding plane ``plane`` of the image's stack must lie to overlay it: the
    image's scale, rotation, shear and affine, its translate moved by that plane's offset in the world."""
    kwargs = spatial_kwargs(image_layer, channel_axis)
    offset = np.zeros(len(kwargs["scale"]))
    offset[:len(plane)] = plane
    linear = kwargs["rotate"] @ kwargs["shear"] @ np.diag(kwargs["scale"])  # napari's order: rotate, shear, scale
    kwargs["translate"] = tuple(np.asarray(kwargs["translate"], float) + linear @ offset)
    return kwargs


def fresh_layer_name(existing: list[str], base: str) -> str:
    """A layer name nobody uses yet: the widget never writes into a user's layer."""
    name, n = base, 1
    while name in existing:
        n += 1
        name = f"{base} {n}"
    return name
