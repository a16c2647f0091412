"""Reading users' image files and writing label files, with clear errors.

Supports TIFF (2D, RGB, multi-page stacks), PNG and JPEG (gray, RGB, RGBA).
Everything a user can get wrong raises :class:`ImageReadError` with one line.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

TIFF_SUFFIXES = {".tif", ".tiff"}
PLAIN_SUFFIXES = {".png", ".jpg", ".jpeg"}
IMAGE_SUFFIXES = TIFF_SUFFIXES | PLAIN_SUFFIXES


class ImageReadError(ValueError):
    """A file that is not a usable image; the message is one clear line."""


@dataclass
class ImageFile:
    """An image as read from disk: data plus how to interpret its axes.

    ``data`` is (H, W), (H, W, 3|4) when ``rgb``, or (N, H, W[, 3|4]) for a stack.
    """

    path: Path
    data: Any
    rgb: bool = False
    stack: bool = False
    pixel_size: tuple[float, float] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def plane_shape(self) -> tuple[int, int]:
        shape = self.data.shape[:-1] if self.rgb else self.data.shape
        return tuple(int(s) for s in shape[-2:])


def read_image(path: str | os.PathLike) -> ImageFile:
    """Read a TIFF, PNG or JPEG file for segmentation."""
    path = Path(path)
    suffix = path.suffix.lower()
    if not path.exists():
        raise ImageReadError(f"{path}: no such file")
    if path.is_dir():
        raise ImageReadError(f"{path}: is a folder, not an image")
    if suffix not in IMAGE_SUFFIXES:
        raise ImageReadError(f"{path.name}: unsupported file type {suffix or '(none)'} (use TIFF, PNG or JPEG)")
    if path.stat().st_size == 0:
        raise ImageReadError(f"{path.name}: the file is empty")
    try:
        if suffix in TIFF_SUFFIXES:
            image = _read_tiff(path)
        else:
            image = _read_plain(path)
    except ImageReadError:
        raise
    except Exception as exc:  # noqa: BLE001 - readers raise many types for damaged files
        raise ImageReadError(f"{path.name}: cannot be read as an image ({_first_line(exc)})") from None
    _check_shape(image)
    return image


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:160]


def _read_tiff(path: Path) -> ImageFile:
    import tifffile

    with tifffile.TiffFile(path) as tif:
        series = tif.series[0]
        data = series.asarray()
        axes = series.axes
        pixel_size = _tiff_pixel_size(tif)
    data = np.squeeze(data) if data.ndim > 2 else data
    rgb = data.ndim >= 3 and data.shape[-1] in (3, 4) and ("S" in axes or data.dtype == np.uint8)
    stack = data.ndim == (4 if rgb else 3)
    if not rgb and data.ndim == 3 and data.shape[-1] in (3, 4) and data.shape[0] > 4:
        rgb, stack = True, False
    return ImageFile(path, data, rgb=rgb, stack=stack, pixel_size=pixel_size, metadata={"axes": axes})


def _tiff_pixel_size(tif: Any) -> tuple[float, float] | None:
    """(y, x) pixel size in micrometres from ImageJ or resolution tags, if present."""
    try:
        page = tif.pages[0]
        tags = page.tags
        if "XResolution" in tags and "YResolution" in tags:
            xr, yr = tags["XResolution"].value, tags["YResolution"].value
            x = xr[1] / xr[0] if xr[0] else None
            y = yr[1] / yr[0] if yr[0] else None
            unit = tif.imagej_metadata.get("unit") if tif.imagej_metadata else None
            if x and y and (unit in ("micron", "um", "\\u00B5m", "µm") or (x != 1.0 or y != 1.0)):
                return (float(y), float(x))
    except Exception:  # noqa: BLE001 - pixel size is a nicety, never a failure
        return None
    return None


def _read_plain(path: Path) -> ImageFile:
    from PIL import Image

    with Image.open(path) as img:
        img.load()
        if img.mode in ("P", "LA", "PA", "CMYK", "YCbCr", "HSV"):
            img = img.convert("RGBA" if "A" in img.mode else "RGB")
        data = np.asarray(img)
    if data.ndim == 3 and data.shape[-1] == 4 and (data[..., 3] == 255).all():
        data = data[..., :3]
    rgb = data.ndim == 3
    if rgb and np.array_equal(data[..., 0], data[..., 1]) and np.array_equal(data[..., 1], data[..., 2]):
        data, rgb = np.ascontiguousarray(data[..., 0]), False  # gray saved as RGB
    return ImageFile(path, data, rgb=rgb)


def _check_shape(image: ImageFile) -> None:
    data = image.data
    plane_ndim = 3 if image.rgb else 2
    if data.ndim < plane_ndim or data.ndim > plane_ndim + 1:
        raise ImageReadError(f"{image.path.name}: unsupported image shape {tuple(data.shape)} (expected 2D, RGB or a stack of 2D planes)")
    if min(image.plane_shape) < 1 or data.size == 0:
        raise ImageReadError(f"{image.path.name}: the image has no pixels")
    if not (np.issubdtype(data.dtype, np.number) or data.dtype == bool):
        raise ImageReadError(f"{image.path.name}: unsupported pixel type {data.dtype}")


def write_labels_tiff(path: str | os.PathLike, labels: np.ndarray, pixel_size: tuple[float, float] | None = None) -> Path:
    """Write labels atomically (temporary file + rename): never a truncated output."""
    import tifffile

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.partial")
    kwargs: dict[str, Any] = {"compression": "zlib"}
    if pixel_size:
        kwargs.update(resolution=(1.0 / pixel_size[1], 1.0 / pixel_size[0]), imagej=True,
                      metadata={"unit": "um", "axes": "ZYX" if labels.ndim == 3 else "YX"})
        kwargs.pop("compression")
        if labels.dtype == np.uint32:  # ImageJ files cannot hold uint32
            kwargs.pop("imagej"), kwargs.pop("metadata")
    try:
        tifffile.imwrite(tmp, labels, **kwargs)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
