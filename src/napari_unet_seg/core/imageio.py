"""Reading users' image files and writing label files, with clear errors.

Supports TIFF (2D, RGB, multi-page stacks), PNG and JPEG (gray, RGB, RGBA), and
zarr / OME-Zarr folders, which stay lazy (read window by window, never whole).
Everything a user can get wrong raises :class:`ImageReadError` with one line.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import re
import struct
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .common.atomic import atomic_path
from .common.errors import first_line
from .common.labels_zarr import open_labels_zarr

TIFF_SUFFIXES = {".tif", ".tiff"}
PLAIN_SUFFIXES = {".png", ".jpg", ".jpeg"}
ZARR_SUFFIXES = {".zarr", ".ome.zarr"}
PROVENANCE_TAG = "napari_unet_seg_provenance"  # the key in tifffile's JSON description
IMAGE_SUFFIXES = TIFF_SUFFIXES | PLAIN_SUFFIXES | {".zarr"}


class ImageReadError(ValueError):
    """A file that is not a usable image; the message is one clear line."""


@dataclass
class ImageFile:
    """An image as read from disk: data plus how to interpret its axes.

    ``data`` is (H, W), (H, W, 3|4) when ``rgb``, or (N, H, W[, 3|4]) for a stack;
    a numpy array, or a lazy dask array for zarr inputs (``lazy``).
    """

    path: Path
    data: Any
    rgb: bool = False
    stack: bool = False
    pixel_size: tuple[float, float] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def lazy(self) -> bool:
        """True when the pixels stay on disk (zarr): segment window by window."""
        return not isinstance(self.data, np.ndarray)

    @property
    def channel_axis(self) -> int | None:
        """-3 when planes are (C, H, W) multichannel (OME-Zarr ``c`` axis), else None."""
        return self.metadata.get("channel_axis")

    @property
    def plane_shape(self) -> tuple[int, int]:
        shape = self.data.shape[:-1] if self.rgb else self.data.shape
        return tuple(int(s) for s in shape[-2:])


def read_image(path: str | os.PathLike) -> ImageFile:
    """Read a TIFF, PNG or JPEG file, or a zarr / OME-Zarr folder (lazily), for segmentation."""
    path = Path(path)
    suffix = path.suffix.lower()
    if not path.exists():  # the name as given: a row or a line that names the file says the rest
        link = " (a link to nothing, or back to itself)" if path.is_symlink() else ""
        raise ImageReadError(f"{path.name}: no such file{link}")
    if is_zarr(path):
        try:
            image = _read_zarr(path)
        except ImageReadError:
            raise
        except Exception as exc:  # noqa: BLE001 - damaged stores raise many types
            raise ImageReadError(f"{path.name}: cannot be read as zarr ({first_line(exc, 160)})") from None
        _check_shape(image)
        return image
    if path.is_dir():
        raise ImageReadError(f"{path}: is a folder, not an image")
    if suffix not in IMAGE_SUFFIXES:
        raise ImageReadError(f"{path.name}: unsupported file type {suffix or '(none)'} (use TIFF, PNG, JPEG or zarr)")
    if path.stat().st_size == 0:
        raise ImageReadError(f"{path.name}: the file is empty")
    try:
        with _quiet_tifffile() as said:
            image = _read_tiff(path) if suffix in TIFF_SUFFIXES and not _plain_inside(path) else _read_plain(path)
        if _chain_past_the_end(said, path):  # the planes read are only those before the cut: not the image
            raise ImageReadError(f"{path.name}: cannot be read as an image: the file is damaged or cut short (a copy "
                                 "or download that did not finish?): its planes go on past its end")
    except ImageReadError:
        raise
    except Exception as exc:  # noqa: BLE001 - readers raise many types for damaged files
        said = first_line(exc, 160)
        if said.startswith("not a TIFF file"):  # tifffile adds the first bytes: "header=b'\x1c\x82w\xef'"
            raise ImageReadError(f"{path.name}: cannot be read as an image: it is named .tif but holds no TIFF "
                                 "(nor a PNG or JPEG): open it in its own program and save it as TIFF") from None
        # a reader tripping over its own bookkeeping ("list index out of range") met bytes that are not there:
        # its words mean nothing to the user, so only the diagnosis is said
        internal = isinstance(exc, (IndexError, KeyError, TypeError, AttributeError, struct.error, ZeroDivisionError))
        detail = "" if internal else f" ({said})"
        if internal or any(sign in said.lower() for sign in DAMAGED_SIGNS):  # words for bytes that are not there
            raise ImageReadError(f"{path.name}: cannot be read as an image: the file is damaged or cut short (a "
                                 f"copy or download that did not finish?){detail}") from None
        raise ImageReadError(f"{path.name}: cannot be read as an image{detail}") from None
    _check_shape(image)
    return image


# what tifffile, imagecodecs and Pillow say of a file whose bytes are missing or garbled
DAMAGED_SIGNS = ("decompress", "bad_data", "truncated", "invalid offset", "unexpected end", "end of file", "eof",
                 "corrupt", "broken data stream", "failed to read", "suspicious number", "ifd")


class _Heard(logging.Handler):
    """What tifffile logs while this thread reads a file (another thread's file is not this one's fault)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.thread, self.said = threading.get_ident(), []

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self.thread:
            self.said.append(record.getMessage())


@contextlib.contextmanager
def _quiet_tifffile() -> Iterator[list[str]]:
    """tifffile logs a damaged file's faults on stderr, and reads on: they are kept (to tell a file cut short)
    and not printed, as the one-line reason given instead is enough."""
    logger, heard = logging.getLogger("tifffile"), _Heard()
    propagate, level = logger.propagate, logger.level
    logger.addHandler(heard)
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    try:
        yield heard.said
    finally:
        logger.removeHandler(heard)
        logger.propagate, logger.level = propagate, level


def _chain_past_the_end(said: list[str], path: Path) -> bool:
    """Whether tifffile found the file's chain of planes going on past its last byte: a file cut short."""
    size = path.stat().st_size
    for text in said:
        found = re.search(r"invalid page offset (\d+)", text)
        if found and int(found.group(1)) >= size:
            return True
    return False


def is_zarr(path: Path) -> bool:
    """A zarr store: a folder named *.zarr or holding zarr metadata files."""
    if not path.is_dir():
        return False
    markers = (".zarray", ".zgroup", "zarr.json")
    return path.suffix.lower() == ".zarr" or any((path / m).exists() for m in markers)


def _read_tiff(path: Path) -> ImageFile:
    import tifffile

    with tifffile.TiffFile(path) as tif:
        series = tif.series[0]
        data = series.asarray()
        axes = series.axes
        pixel_size = _tiff_pixel_size(tif)
        imagej = tif.imagej_metadata or {}
        stated, held = _stated_planes(tif, imagej), data.size // max(math.prod(tif.pages[0].shape), 1)
    if stated is not None and held < stated:  # a stack cut short reads as its first plane(s), without a word
        raise ImageReadError(f"{path.name}: cannot be read as an image: the file is damaged or cut short (a copy or "
                             f"download that did not finish?): it holds {held} of the {stated} planes its header "
                             "states")
    data = np.squeeze(data) if data.ndim > 2 else data
    if _imagej_channels(imagej, data, axes):  # a Fiji composite of 2-4 channels: never planes of a stack
        return ImageFile(path, data, pixel_size=pixel_size, metadata={"axes": "CYX", "channel_axis": -3})
    # a Z or T stack of channels (ImageJ hyperstack ZCYX, TCYX): the channels just before the plane. A lone
    # (N, H, W) stays a stack even if it says C (tifffile writes ImageJ files of any N so): a channel asked for
    # makes its first axis the channels (batch.files.with_channels)
    if data.ndim == 4 and len(axes) == 4 and "C" in axes[:-2] and "S" not in axes:
        data = np.moveaxis(data, axes.index("C"), -3)
        axes = axes.replace("C", "")[:-2] + "CYX"
        return ImageFile(path, data, stack=data.ndim == 4, pixel_size=pixel_size,
                         metadata={"axes": axes, "channel_axis": -3})
    rgb = data.ndim >= 3 and data.shape[-1] in (3, 4) and ("S" in axes or data.dtype == np.uint8)
    stack = data.ndim == (4 if rgb else 3)
    if not rgb and data.ndim == 3 and data.shape[-1] in (3, 4) and data.shape[0] > 4:
        rgb, stack = True, False
    if data.ndim == 3 and data.shape[-1] == 2 and min(data.shape[:2]) > 4 and "S" not in axes:
        # two channels last (numpy's H, W, C saved as is: tifffile writes H pages of W x 2 px), never a stack of
        # planes two pixels wide: the channels, as a CYX file's
        return ImageFile(path, np.moveaxis(data, -1, 0), pixel_size=pixel_size,
                         metadata={"axes": "CYX", "channel_axis": -3})
    metadata: dict[str, Any] = {"axes": axes}
    if stack and axes[:1] == "Z" and (z_spacing := _imagej_z_spacing(imagej)) is not None:
        metadata["z_spacing"] = z_spacing
    return ImageFile(path, data, rgb=rgb, stack=stack, pixel_size=pixel_size, metadata=metadata)


def _stated_planes(tif: Any, imagej: dict) -> int | None:
    """How many planes the file says it holds (ImageJ's "images", tifffile's shape, OME's sizes), to tell a stack
    cut short from a single image; None when it says nothing."""
    page = tif.pages[0]
    if isinstance(imagej.get("images"), int) and imagej["images"] > 1:
        return int(imagej["images"])
    for shaped in tif.shaped_metadata or ():
        shape = shaped.get("shape") if isinstance(shaped, dict) else None
        if isinstance(shape, list) and all(isinstance(n, int) for n in shape) and math.prod(page.shape):
            return math.prod(shape) // math.prod(page.shape)
    described = page.description or ""
    if described.lstrip().startswith("<?xml") and "<OME" in described:
        pixels = re.search(r"<Pixels\b[^>]*>", described)
        sizes = [re.search(rf'\b{name}="(\d+)"', pixels.group(0)) if pixels else None
                 for name in ("SizeZ", "SizeT", "SizeC")]
        if all(sizes):
            return math.prod(int(size.group(1)) for size in sizes) // max(int(page.samplesperpixel), 1)
    return None


def _imagej_z_spacing(imagej: dict) -> float | None:
    """An ImageJ z-stack's step between slices, in micrometres, when its file states one (Fiji's "Voxel depth")."""
    spacing, factor = imagej.get("spacing"), micrometres_per(imagej.get("unit"))
    if not isinstance(spacing, (int, float)) or not math.isfinite(spacing) or spacing <= 0 or factor is None:
        return None
    return float(spacing) * factor


def _imagej_channels(imagej: dict, data: np.ndarray, axes: str) -> bool:
    """Whether a (C, H, W) ImageJ file is a multichannel image that Fiji shows as colours ("composite" or "color"
    mode). tifffile calls every (N, H, W) ImageJ file it writes "channels" (mode "grayscale"): those stay stacks."""
    channels = imagej.get("channels")
    return (data.ndim == 3 and axes == "CYX" and isinstance(channels, int) and 2 <= channels <= 4
            and data.shape[0] == channels and str(imagej.get("mode", "")).lower() in ("composite", "color"))


def stated_pixel_size(path: str | os.PathLike | None) -> tuple[float, float] | None:
    """(y, x) µm that a TIFF's tags (ImageJ's calibration) or an OME-Zarr's scale state, read without the
    pixels; None otherwise.

    napari's own readers open every TIFF and zarr at scale 1, so the Segment dock
    asks this to offer the file's calibration.
    """
    if path is not None and is_zarr(Path(path)):
        try:
            return _read_zarr(Path(path)).pixel_size  # lazy: the metadata, not the pixels
        except Exception:  # noqa: BLE001 - a calibration is a nicety, never a failure
            return None
    if path is None or Path(path).suffix.lower() not in TIFF_SUFFIXES or not Path(path).is_file():
        return None
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            return _tiff_pixel_size(tif)
    except Exception:  # noqa: BLE001 - a calibration is a nicety, never a failure
        return None


def stated_z_spacing(path: str | os.PathLike | None) -> float | None:
    """The µm between the slices of an ImageJ z-stack, when its TIFF states it (Fiji's *Voxel depth*), read
    without the pixels; None otherwise."""
    if path is None or Path(path).suffix.lower() not in TIFF_SUFFIXES or not Path(path).is_file():
        return None
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            axes = "".join(a for a, n in zip(tif.series[0].axes, tif.series[0].shape) if n > 1)
            return _imagej_z_spacing(tif.imagej_metadata or {}) if axes.startswith("Z") else None
    except Exception:  # noqa: BLE001 - a calibration is a nicety, never a failure
        return None


def stated_axes(path: str | os.PathLike | None) -> str | None:
    """The axes a TIFF names for its image, singletons left out ("TYX" for an ImageJ movie), read without its
    pixels; None for another file or one that names none."""
    if path is None or Path(path).suffix.lower() not in TIFF_SUFFIXES or not Path(path).is_file():
        return None
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            return "".join(a for a, n in zip(series.axes, series.shape) if n > 1) or None
    except Exception:  # noqa: BLE001 - a hint is a nicety, never a failure
        return None


MICROMETRES_PER_UNIT = {  # the spellings microscopes, ImageJ, OME and NGFF use for a length unit
    **dict.fromkeys(("um", "µm", "\u03bcm", "\\u00b5m", "micron", "microns", "micrometer", "micrometre",
                     "micrometers", "micrometres"), 1.0),
    **dict.fromkeys(("nm", "nanometer", "nanometre", "nanometers", "nanometres"), 1e-3),
    **dict.fromkeys(("mm", "millimeter", "millimetre", "millimeters", "millimetres"), 1e3),
    **dict.fromkeys(("cm", "centimeter", "centimetre", "centimeters", "centimetres"), 1e4),
    **dict.fromkeys(("m", "meter", "metre", "meters", "metres"), 1e6),
    **dict.fromkeys(("inch", "inches", "in"), 25_400.0),
    **dict.fromkeys(("pm", "picometer", "picometre"), 1e-6),
    **dict.fromkeys(("å", "angstrom", "ångström"), 1e-4),
}


def micrometres_per(unit: Any) -> float | None:
    """How many µm one ``unit`` is (``"nm"`` 0.001, ``"cm"`` 10,000); None for no unit, pixels or an unknown one."""
    return MICROMETRES_PER_UNIT.get(str(unit).strip().lower()) if unit is not None else None


def _in_micrometres(y: float, x: float, unit: Any) -> tuple[float, float] | None:
    factor = micrometres_per(unit)
    if factor is None or not (math.isfinite(y) and math.isfinite(x) and y > 0 and x > 0):
        return None
    return (y * factor, x * factor)


def _tiff_pixel_size(tif: Any) -> tuple[float, float] | None:
    """(y, x) pixel size in micrometres as the file states it, in any length unit; None when it states none.

    Rounded to 6 significant digits: TIFF stores pixels per unit as a fraction, so 0.65 µm read back as
    0.6499999999999999 (shown so in napari's scale). No microscope is calibrated more finely.
    """
    stated = _tiff_pixel_size_as_stored(tif)
    return None if stated is None else (float(f"{stated[0]:.6g}"), float(f"{stated[1]:.6g}"))


def _tiff_pixel_size_as_stored(tif: Any) -> tuple[float, float] | None:
    """:func:`_tiff_pixel_size` before rounding.

    An OME-TIFF's PhysicalSize, else ImageJ's calibration (its ``unit``: a
    file of 500 nm pixels is 0.5 µm, one calibrated in "pixel" has none),
    else the TIFF resolution (:func:`_resolution_pixel_size`).
    """
    try:
        if tif.is_ome:
            stated = _ome_pixel_size(tif.ome_metadata or "")
            if stated is not None:
                return stated
        tags = tif.pages[0].tags
        if "XResolution" not in tags or "YResolution" not in tags:
            return None
        xr, yr = tags["XResolution"].value, tags["YResolution"].value
        if not (xr[0] and yr[0]):
            return None
        x, y = xr[0] / xr[1], yr[0] / yr[1]  # pixels per unit
        unit = (tif.imagej_metadata or {}).get("unit") if tif.is_imagej else None
        if unit is not None and micrometres_per(unit) != micrometres_per("inch"):  # inches: maybe a print size
            return _in_micrometres(1 / y, 1 / x, unit)
        return _resolution_pixel_size(y, x, int(tags["ResolutionUnit"].value) if "ResolutionUnit" in tags else 2)
    except Exception:  # noqa: BLE001 - pixel size is a nicety, never a failure
        return None


MAX_SCRIPT_RESOLUTION = 25.0  # "pixels per inch" a script's resolution=(1 / µm) gives: pixels of 0.04 µm or more
MIN_MICROSCOPE_RESOLUTION = 10_000.0  # pixels per inch of a microscope's calibration in inches: 2.54 µm or less
MAX_PIXEL_UM = 25.0  # a pixel size in centimetres above this is a print size (72 dpi: 353 µm), not a microscope's
PRINT_DPI = (72, 96, 150, 200, 240, 300, 360, 400, 600, 720, 1200, 2400, 4800)  # image editors' print sizes


def _resolution_pixel_size(y: float, x: float, unit: int) -> tuple[float, float] | None:
    """(y, x) µm from TIFF resolution tags: ``y``, ``x`` pixels per ``unit`` (1 none, 2 inch, 3 centimetre).

    Image editors and cameras write a print size (72 or 300 dpi, in inches
    or centimetres): no pixel size at all, and read as one it made a nucleus
    millions of µm² or a thousandth of one. A pixel size is read from what
    only a calibration gives: centimetres of a pixel of at most 25 µm (and
    not a common print size: 1200 dpi is 21 µm);
    inches of a microscope (tens of thousands of pixels per inch); or the
    small numbers a script's ``resolution=(1 / µm, 1 / µm)`` leaves when
    tifffile writes its default unit (at most 25 "per inch": pixels of
    0.04 µm or more). Anything between is taken for a print size: no pixel
    size beats a wrong one.
    """
    if unit == 3:
        size = _in_micrometres(1 / y, 1 / x, "cm")
        print_size = any(abs(v * 2.54 - dpi) < 0.01 for v in (y, x) for dpi in PRINT_DPI)
        return size if size is not None and max(size) <= MAX_PIXEL_UM and not print_size else None
    if unit == 2 and min(y, x) >= MIN_MICROSCOPE_RESOLUTION:
        return _in_micrometres(1 / y, 1 / x, "inch")
    if max(y, x) <= MAX_SCRIPT_RESOLUTION and (y, x) != (1.0, 1.0):  # tifffile's resolution=(1 / µm, ...)
        return _in_micrometres(1 / y, 1 / x, "um")
    return None


def _ome_pixel_size(xml: str) -> tuple[float, float] | None:
    """PhysicalSizeY and X of an OME-XML's first image, in µm (OME's default unit)."""
    import re

    pixels = re.search(r"<(?:\w+:)?Pixels\b([^>]*)>", xml)
    if pixels is None:
        return None
    attrs = dict(re.findall(r'(\w+)="([^"]*)"', pixels.group(1)))
    try:
        y, x = float(attrs["PhysicalSizeY"]), float(attrs["PhysicalSizeX"])
    except (KeyError, ValueError):
        return None
    unit_y, unit_x = attrs.get("PhysicalSizeYUnit", "µm"), attrs.get("PhysicalSizeXUnit", "µm")
    factor_y, factor_x = micrometres_per(unit_y), micrometres_per(unit_x)
    if factor_y is None or factor_x is None:
        return None
    return _in_micrometres(y * factor_y, x * factor_x, "um")


PLAIN_SIGNATURES = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff")  # a PNG's and a JPEG's first bytes


def _plain_inside(path: Path) -> bool:
    """A PNG or JPEG saved under a .tif name (napari opened it, unet-seg refused it): read as what it is."""
    with open(path, "rb") as file:
        head = file.read(8)
    return head.startswith(PLAIN_SIGNATURES)


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


def _read_zarr(path: Path) -> ImageFile:
    """A zarr array, or the full-resolution level of an OME-Zarr image, as a lazy dask array.

    Singleton axes are dropped; OME axes say which axis holds channels (moved
    first, so the plane is (C, H, W)) and which are stacks (Z, T).
    """
    import dask.array as da
    import zarr

    node = zarr.open(str(path), mode="r")
    attrs = dict(node.attrs)
    meta = attrs.get("ome", attrs)
    axes: list[str] | None = None
    pixel_size = None
    if isinstance(node, zarr.Array):
        array = node
        if attrs.get("pixel_size"):
            pixel_size = tuple(float(v) for v in attrs["pixel_size"][-2:])
    elif meta.get("multiscales"):
        scales = meta["multiscales"][0]
        dataset = scales["datasets"][0]
        array = node[dataset["path"]]
        axes = [a["name"] if isinstance(a, dict) else str(a) for a in scales.get("axes", [])] or None
        units = [a.get("unit") if isinstance(a, dict) else None for a in scales.get("axes", [])][-2:]
        for transform in dataset.get("coordinateTransformations", []):
            if transform.get("type") == "scale" and len(transform.get("scale", [])) >= 2:
                # NGFF names each axis's unit (micrometer, nanometer...); none named: micrometres, as before
                y, x = (_in_micrometres(float(v), 1.0, unit or "um") for v, unit in zip(transform["scale"][-2:], units))
                pixel_size = (y[0], x[0]) if y and x else None
                if not any(units) and [float(v) for v in transform["scale"][-2:]] == [1.0, 1.0]:
                    pixel_size = None  # a scale of 1 naming no unit: NGFF's "no calibration", not 1 µm pixels
        if "pixel_size" in attrs:  # our labels store: None when unknown, where NGFF still needs a scale (of 1)
            pixel_size = tuple(float(v) for v in attrs["pixel_size"][-2:]) if attrs["pixel_size"] else None
    else:
        arrays = [a for _, a in node.arrays()] if hasattr(node, "arrays") else []
        if not arrays:
            raise ImageReadError(f"{path.name}: the zarr group holds no image array")
        array = arrays[0]
    data = da.from_zarr(array)
    axes = [a.lower() for a in axes] if axes and len(axes) == data.ndim else None
    keep = [i for i, s in enumerate(data.shape) if s != 1 or i >= data.ndim - 2]
    data = data[tuple(slice(None) if i in keep else 0 for i in range(data.ndim))]
    axes = [axes[i] for i in keep] if axes else None
    channel_first = False
    if axes and "c" in axes[:-2]:
        data = da.moveaxis(data, axes.index("c"), -3)
        channel_first = True
    rgb = not channel_first and data.ndim >= 3 and data.shape[-1] in (3, 4) and data.dtype == np.uint8
    stack = data.ndim == (4 if rgb or channel_first else 3)
    metadata = {"axes": "".join(axes) if axes else None, "channel_axis": -3 if channel_first else None}
    return ImageFile(path, data, rgb=rgb, stack=stack, pixel_size=pixel_size, metadata=metadata)


def _check_shape(image: ImageFile) -> None:
    data = image.data
    plane_ndim = 3 if image.rgb or image.channel_axis is not None else 2
    if data.ndim > plane_ndim + 1:  # e.g. a TZYX hyperstack: the Segment dock takes it, plane by plane
        raise ImageReadError(f"{image.path.name}: unsupported image shape {tuple(data.shape)}: files are segmented as "
                             "2D images or stacks along one axis (Z or T); segment a hyperstack of both in napari's "
                             "Segment dock, or save each time point as a file of its own")
    if data.ndim < plane_ndim:
        raise ImageReadError(f"{image.path.name}: unsupported image shape {tuple(data.shape)} (expected 2D, RGB or "
                             "a stack of 2D planes)")
    if min(image.plane_shape) < 1 or data.size == 0:
        raise ImageReadError(f"{image.path.name}: the image has no pixels")
    if not (np.issubdtype(data.dtype, np.number) or data.dtype == bool):
        raise ImageReadError(f"{image.path.name}: unsupported pixel type {data.dtype}")


def labels_digest(labels: np.ndarray) -> str:
    """A short hash of labels' pixels, recorded with an output: an untouched output is told from a corrected one."""
    array = np.ascontiguousarray(labels)
    digest = hashlib.blake2b(f"{array.shape}".encode(), digest_size=16)
    digest.update(array.astype(np.int64, copy=False).view(np.uint8))  # the same ids in any integer type
    return digest.hexdigest()


def untouched_output(labels: Any, record: Mapping[str, Any] | None) -> bool:
    """Labels exactly as unet-seg wrote them (their recorded hash matches): its own output, not an annotation
    until corrected. A file corrected since (in napari, or in Fiji, which keeps the record), a hand-made one or
    a zarr store (no hash recorded) is not."""
    if not isinstance(record, Mapping) or "model" not in record or "labels_digest" not in record:
        return False
    return isinstance(labels, np.ndarray) and not changed_since_written(labels, record)


def changed_since_written(labels: Any, record: Mapping[str, Any] | None) -> bool:
    """Labels whose pixels are no longer those their record's hash was taken of: corrected since (in napari,
    Fiji...). Unknown (False) when no hash was recorded (a zarr store, an older file) or the labels are lazy."""
    if not isinstance(record, Mapping) or not isinstance(labels, np.ndarray) or "labels_digest" not in record:
        return False
    return record["labels_digest"] != labels_digest(labels)


def write_labels_tiff(path: str | os.PathLike, labels: np.ndarray, pixel_size: tuple[float, float] | None = None,
                      provenance: Mapping[str, Any] | None = None, stack_axis: str = "Z",
                      z_spacing: float | None = None) -> Path:
    """Write labels atomically (temporary file + rename): never a truncated output.

    ``provenance`` (a JSON-ready dict) goes where readers keep it: in an
    ImageJ file, the "Info" property (Fiji: Image > Show Info, kept when Fiji
    saves the file again); otherwise tifffile's JSON ImageDescription.
    :func:`read_tiff_provenance` reads it from either. ``stack_axis`` names
    a stack's leading axis ("Z" or "T", as the image's file did), so a
    time-lapse's labels stay frames, not slices; ``z_spacing`` (µm) is a
    z-stack's step between slices, kept as the image's file stated it.
    """
    import tifffile

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if stack_axis.upper() not in ("Z", "T"):
        raise ValueError(f"stack_axis must be 'Z' or 'T', not {stack_axis!r}")
    axes = f"{stack_axis.upper()}YX" if labels.ndim == 3 else "YX" if labels.ndim == 2 else None
    kwargs: dict[str, Any] = {"compression": "zlib", "metadata": {}}
    if provenance is not None:  # with its pixels' hash: training refuses the output until it is corrected
        provenance = {**provenance, "labels_digest": labels_digest(labels)}
        kwargs["metadata"][PROVENANCE_TAG] = dict(provenance)
    if axes is not None:
        kwargs["metadata"]["axes"] = axes  # tifffile's own description keeps them too
    if labels.dtype != np.uint32 and axes is not None:  # an ImageJ file (they cannot hold uint32), zlib-compressed
        kwargs.update(imagej=True, metadata={"axes": axes})
        if pixel_size:
            kwargs.update(resolution=(1.0 / pixel_size[1], 1.0 / pixel_size[0]))
            kwargs["metadata"]["unit"] = "um"
        if z_spacing and axes == "ZYX":
            kwargs["metadata"].update(spacing=float(z_spacing), unit="um")
        if provenance is not None:
            kwargs["metadata"]["Info"] = json.dumps(dict(provenance), indent=1, ensure_ascii=True, default=str)
    elif pixel_size:  # tifffile's own file: the resolution in pixels per centimetre, as TIFF readers understand it
        kwargs.update(resolution=(1e4 / pixel_size[1], 1e4 / pixel_size[0]), resolutionunit="CENTIMETER")
    with atomic_path(path) as tmp:
        tifffile.imwrite(tmp, labels, **kwargs)
    return path


def read_tiff_provenance(path: str | os.PathLike) -> dict[str, Any] | None:
    """The provenance :func:`write_labels_tiff` recorded in a TIFF, or None."""
    import tifffile

    with tifffile.TiffFile(path) as tif:
        info = (tif.imagej_metadata or {}).get("Info") if tif.is_imagej else None
        if info:
            try:
                record = json.loads(info)
            except ValueError:  # an Info text that someone else wrote
                record = None
            if isinstance(record, dict):
                return record
        for shaped in tif.shaped_metadata or ():
            if isinstance(shaped, dict) and isinstance(shaped.get(PROVENANCE_TAG), dict):
                return shaped[PROVENANCE_TAG]
    return None


def read_labels_image(path: str | os.PathLike) -> ImageFile:
    """LABELS given on a command line, as an :class:`ImageFile`: for an OME-Zarr that holds an image and its
    labels (an export), its first labels group, never its image (measured as labels, an image makes nonsense)."""
    path = Path(path)
    inner = _labels_inside(path) if is_zarr(path) else None
    return read_image(inner if inner is not None else path)


def _labels_inside(path: Path) -> Path | None:
    """``<store>/labels/<first>`` of an OME-Zarr image with a labels group; None for anything else."""
    import zarr

    try:
        node = zarr.open(str(path), mode="r")
        if isinstance(node, zarr.Array) or "image-label" in node.attrs or "labels" not in node:
            return None
        names = node["labels"].attrs.get("labels") or []
        return path / "labels" / str(names[0]) if names and (path / "labels" / str(names[0])).is_dir() else None
    except Exception:  # noqa: BLE001 - not a store we can look into: read as it is, and said by the reader
        return None


def read_labels(path: str | os.PathLike) -> Any:
    """A labels output as written by :func:`write_labels_tiff` (numpy) or a zarr store (opened, not read).

    A store is an NGFF labels group (its level 0) or, from older versions, a plain zarr array.
    """
    path = Path(path)
    if is_zarr(path):
        return open_labels_zarr(path, mode="r")
    import tifffile

    return tifffile.imread(path)
