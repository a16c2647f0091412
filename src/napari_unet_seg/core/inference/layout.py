"""How an image's axes map to planes and channels, and lazy views that read only what is sliced.

Every path describes an image the same way: optional leading (Z/T) axes,
then one plane that is (H, W), (H, W, 3|4) when ``rgb``, or (C, H, W) once
the channel axis has been moved by :func:`channels_first`.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

NUMBER_KINDS = "biuf"  # numpy dtype kinds: bool, signed and unsigned integers, floating point
MAX_CHANNELS = 4  # px: a "plane" this narrow in a stack is channels read as width


def numeric_image(image: Any) -> Any:
    """``image`` with number pixels: a nested list becomes an array; complex, text, dates, objects are refused.

    Casting such pixels to float silently dropped an imaginary part or parsed
    text; one clear line is better than a result made of something else.
    """
    if isinstance(image, (str, bytes, os.PathLike)):
        raise TypeError(f"segment takes the image's pixels (a numpy, dask or zarr array), not a file name: read "
                        f"{os.fspath(image)!r} first (napari_unet_seg.core.imageio.read_image(path).data), or run "
                        "`unet-seg predict` on the file")
    if not hasattr(image, "shape") or not hasattr(image, "ndim"):
        image = np.asarray(image)
    try:
        kind = np.dtype(image.dtype).kind
    except (AttributeError, TypeError):
        return image  # an array-like without a numpy dtype: its windows are read as float32
    if kind == "c":
        raise ValueError("the image has complex pixels: pass its magnitude (np.abs) or its real part")
    if kind not in NUMBER_KINDS:
        raise ValueError(f"the image's pixels must be numbers (bool, integer or floating point), not {image.dtype}")
    return image


def is_rgb(image: Any) -> bool:
    """Guess whether the last axis holds colour: (..., H, W, 3|4) of 8-bit data."""
    return image.ndim >= 3 and image.shape[-1] in (3, 4) and np.dtype(image.dtype) == np.uint8


def as_lazy(image: Any) -> Any:
    """numpy and dask pass through; anything else (zarr, h5py...) becomes dask so slicing stays lazy."""
    if isinstance(image, np.ndarray):
        return image
    import dask.array as da

    if isinstance(image, da.Array):
        return image
    chunks = getattr(image, "chunks", None)
    return da.from_array(image, chunks=chunks if isinstance(chunks, tuple) else "auto")


def channels_first(image: Any, channel_axis: int | None) -> Any:
    """Move the channel axis just before the plane, (..., C, H, W); lazily (as dask) for anything but numpy."""
    if channel_axis is None:
        return image
    if isinstance(image, np.ndarray):
        return np.moveaxis(image, channel_axis, -3)
    import dask.array as da

    return da.moveaxis(as_lazy(image), channel_axis, -3)


def plane_layout(shape: tuple[int, ...], rgb: bool, channel_axis: int | None) -> tuple[tuple[int, ...], int, int, int]:
    """Leading (Z/T) shape, channels, height and width of an image of ``shape``."""
    if rgb:
        if len(shape) < 3:
            raise ValueError("an RGB image needs a colour axis")
        return tuple(shape[:-3]), int(shape[-1]), int(shape[-3]), int(shape[-2])
    if channel_axis is not None:
        if not -len(shape) <= channel_axis < len(shape) or len(shape) < 3:
            raise ValueError(f"an image of shape {tuple(shape)} has no channel axis {channel_axis}")
        moved = list(shape)
        channels = moved.pop(channel_axis)
        moved.insert(len(moved) - 2, channels)
        return tuple(moved[:-3]), int(channels), int(moved[-2]), int(moved[-1])
    if len(shape) < 2:
        raise ValueError(f"image of shape {tuple(shape)} has too few dimensions")
    return tuple(shape[:-2]), 1, int(shape[-2]), int(shape[-1])


def one_channel(image: Any, channel: int, *, rgb: bool, channel_axis: int | None) -> Any:
    """Channel ``channel`` alone of a multichannel (``channel_axis``) or colour (``rgb``) image, lazily.

    What is left is a one-channel image with the same leading axes. Raises
    ``ValueError`` with one line for an image with one channel or a channel
    out of range.
    """
    if channel_axis is None and not rgb:
        first = int(image.shape[0]) if image.ndim == 3 else 0
        hint = (f"; if its first axis ({first} values) holds the channels, say so (channel_axis=0)"
                if 2 <= first <= MAX_CHANNELS else "")
        raise ValueError(f"channel {channel} was asked, but the image has one channel (neither colour nor "
                         f"channels): segment it without choosing one{hint}")
    axis = image.ndim - 1 if channel_axis is None else channel_axis % image.ndim
    count = int(image.shape[axis])
    if channel >= count:
        raise ValueError(f"channel {channel} was asked, but the image has {count} channels (0 to {count - 1})")
    return as_lazy(image)[(slice(None),) * axis + (channel,)]


def check_channels(model_channels: int, image_channels: int, model_name: str) -> None:
    """Raise a clear ValueError when the image cannot feed the model (colour feeds a gray model)."""
    if image_channels == model_channels or (model_channels == 1 and image_channels in (3, 4)):
        return
    if image_channels == 1:
        raise ValueError(
            f"model '{model_name}' expects {model_channels} channels but the image has one; "
            "choose the image's channel axis"
        )
    if model_channels == 1:
        raise ValueError(f"model '{model_name}' takes one channel but the image has {image_channels}: choose the "
                         "nuclear channel (its number, from 0) to segment it alone")
    raise ValueError(f"model '{model_name}' expects {model_channels} channel(s) but the image has {image_channels}")


class PlaneView:
    """A lazy view of one plane of a (..., H, W[, C]) array: reads only what is sliced."""

    def __init__(self, source: Any, lead: tuple[int, ...]) -> None:
        self.source, self.lead = source, lead
        self.shape = tuple(int(s) for s in source.shape[len(lead):])
        self.ndim = len(self.shape)
        self.dtype = np.dtype(source.dtype)

    def __getitem__(self, index: Any) -> np.ndarray:
        index = index if isinstance(index, tuple) else (index,)
        return np.asarray(self.source[self.lead + index])


def plane_size(plane: Any, rgb: bool) -> tuple[int, int]:
    """(H, W) of a 2D plane: channels last when RGB, first (or none) otherwise."""
    return (int(plane.shape[0]), int(plane.shape[1])) if rgb else (int(plane.shape[-2]), int(plane.shape[-1]))


class WindowView:
    """A (C, h, w) window of a (C, H, W) sliceable image, itself sliceable like one (for predict_tiled)."""

    def __init__(self, image: Any, y0: int, y1: int, x0: int, x1: int) -> None:
        self.image, self.y0, self.x0 = image, y0, x0
        self.shape = (image.shape[0], y1 - y0, x1 - x0)
        self.ndim, self.dtype = 3, np.dtype(getattr(image, "dtype", np.float32))

    def __getitem__(self, index: tuple) -> np.ndarray:
        ys, xs = index[-2], index[-1]
        ya, yb, _ = ys.indices(self.shape[1])
        xa, xb, _ = xs.indices(self.shape[2])
        return self.image[..., self.y0 + ya:self.y0 + yb, self.x0 + xa:self.x0 + xb]

    def __array__(self, dtype=None, copy=None) -> np.ndarray:  # noqa: ANN001 - numpy's protocol
        out = np.asarray(self[..., 0:self.shape[1], 0:self.shape[2]])
        return out if dtype is None else out.astype(dtype)


def central_window(image: Any, side: int) -> WindowView:
    """The central ``side`` x ``side`` window of a (C, H, W) image (all of it when smaller)."""
    _, h, w = image.shape
    y0, x0 = max((h - side) // 2, 0), max((w - side) // 2, 0)
    return WindowView(image, y0, min(y0 + side, h), x0, min(x0 + side, w))


def check_plane_size(lead: tuple[int, ...], height: int, width: int) -> None:
    """Refuse a stack whose "planes" are a few pixels wide: its last axis is channels, read as width.

    A (256, 256, 2) two-channel image read as 256 planes of 256 x 2 px would
    run for minutes and find nothing, in silence.
    """
    if lead and min(height, width) <= MAX_CHANNELS:
        raise ValueError(f"the image's planes would be {height} x {width} px: its last axis ({width} values) looks "
                         "like channels, not width; name it the channel axis and segment the nuclear channel alone "
                         "(channel_axis=-1 and RunOptions(channel=K); saved on its own, or a layer of its own), give "
                         "rgb=True for a colour image, or use a model with as many channels")


def channels_mixed_note(rgb: bool, channel_axis: int | None, channels: int, in_channels: int) -> str | None:
    """A note when a one-channel model gets 3-4 fluorescence channels: they are mixed like colour into gray.

    Mixed with colour weights, a nuclear stain in the third channel counts
    for a tenth: the user should know, and can segment that channel alone.
    """
    if rgb or channel_axis is None or in_channels != 1 or channels not in (3, 4):
        return None
    return (f"the image's {channels} channels were mixed into one gray image as colour is (30 % of the first, 59 % "
            f"of the second, 11 % of the third{', the fourth unused' if channels == 4 else ''}) for a one-channel "
            "model: to segment the nuclei of one stain, choose that channel (its number, from 0)")


def likely_channel_axis(shape: tuple[int, ...], rgb: bool, channel_axis: int | None, in_channels: int) -> int | None:
    """The leading axis of 2-4 planes that a single-channel model would segment plane by plane, if any.

    Two to four planes are far more often a nuclear stain beside other stains
    than a short stack: (2-4, H, W), or the C of a (T, C, H, W) movie. When
    several leading axes are that short, the last is taken (ImageJ's order,
    T Z C Y X, puts channels last).
    """
    if rgb or channel_axis is not None or in_channels != 1 or not 3 <= len(shape) <= 5:
        return None
    short = [axis for axis, size in enumerate(shape[:-2]) if 2 <= size <= 4]
    return short[-1] if short else None


def channels_as_planes_note(shape: tuple[int, ...], rgb: bool, channel_axis: int | None,
                            in_channels: int) -> str | None:
    """A note when a single-channel model segments 2-4 planes along an axis one by one: likely channels, not Z/T.

    Segmenting each channel as its own image finds nuclei in the wrong stain
    too, in silence. The shape cannot tell, so the user is told rather than refused.
    """
    axis = likely_channel_axis(shape, rgb, channel_axis, in_channels)
    if axis is None:
        return None
    where = "its first axis" if axis == 0 else f"axis {axis}"
    return (f"the image's {shape[axis]} planes along {where} were segmented one by one: if they are channels "
            "(a nuclear stain and others), choose the nuclear channel (its number, from 0) to segment it alone")

