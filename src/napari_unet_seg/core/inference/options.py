"""One frozen description of a segmentation run, shared by every path (widget, menu, CLI, batch, dask).

Saying *how* to run lives here; saying *which image* (its colour or channel
axis, the planes wanted) is an argument of :func:`.pipeline.segment_image`.
"""

from __future__ import annotations

import math
import numbers
import os
from dataclasses import dataclass

OUTPUTS = ("instances", "semantic")
MEMORY_FRACTION = 0.25  # labels bigger than this share of free RAM go to disk
LAZY_PLANE_PIXELS = 8192 * 8192  # lazy planes bigger than this go to disk


@dataclass(frozen=True)
class RunOptions:
    """How to segment: which model, at what object size, into what, on which device, stored where.

    ``model`` is a model name or a ``.safetensors`` path (None: the built-in
    ``nuclei``). ``diameter`` is the objects' size in pixels (None: measured).
    ``output`` is ``"instances"`` or ``"semantic"`` (an instance model's
    foreground mask). ``tile_size`` and ``batch_size`` are the network's
    window side and windows per call (None: chosen for the image, the device
    and its free memory); results do not depend on them. A window so small
    that its discarded margins would make the run cost more than twice one
    whole-image pass is raised, and ``SegmentResult.notes`` says so. ``flip_average`` averages the
    network's logits over the four mirror images of each window (4x the network's time; a little
    more accurate, see the model card). ``min_area``, ``max_area`` (px of the image; 0: no limit)
    and ``exclude_border`` keep only objects of that size, not touching the image's edge
    (:mod:`.object_filter`). ``link_frames`` gives an object of a (T, H, W) stack the id it had in the
    frame before, while it overlaps itself by more than half (:mod:`.frame_links`). ``channel`` segments
    one channel of a multichannel or colour image alone (the nuclear stain; None: every channel the model
    takes, a colour image mixed into gray for a one-channel model). ``cells_channel`` also grows each
    nucleus into its whole cell over that channel of the same image (a cytoplasm or membrane stain;
    None: no cells), as the *Cells from nuclei* dock does with ``cell_boundary`` (cytoplasm, membrane or
    distance), ``cell_threshold`` (0-1 of the stain's range; None: Otsu) and ``cell_max_distance`` (px from the
    nucleus; None: no limit): see :mod:`.cells`. ``store`` is a zarr
    path to write the labels to,
    block by block (``block_size`` px a side, ``halo`` px of context, None:
    enough for the model's objects); None keeps them in memory.
    """

    model: str | None = None
    diameter: float | None = None
    output: str = "instances"
    probabilities: bool = False
    tile_size: int | None = None
    batch_size: int | None = None
    device: str = "auto"
    precision: str = "auto"
    store: str | None = None
    block_size: int = 2048
    halo: int | None = None
    flip_average: bool = False
    min_area: int = 0
    max_area: int = 0
    exclude_border: bool = False
    link_frames: bool = False
    channel: int | None = None
    cells_channel: int | None = None
    cell_boundary: str = "cytoplasm"
    cell_threshold: float | None = None
    cell_max_distance: float | None = None

    def __post_init__(self) -> None:
        if self.output not in OUTPUTS:
            raise ValueError(f"output must be one of {OUTPUTS}, not {self.output!r}")
        if self.min_area < 0 or self.max_area < 0:
            raise ValueError(f"object areas must be 0 (no limit) or more, not {min(self.min_area, self.max_area)}")
        if self.channel is not None and self.channel < 0:
            raise ValueError(f"channels are counted from 0: there is no channel {self.channel}")
        if self.cells_channel is not None and self.cells_channel < 0:
            raise ValueError(f"channels are counted from 0: there is no channel {self.cells_channel}")
        if self.device != "auto":  # a typo said now, not when the run starts (availability is checked then)
            from ..model.devices import DEVICES

            if str(self.device).lower().split(":")[0] not in DEVICES:
                raise ValueError(f"unknown device {self.device!r}; choose one of {', '.join(DEVICES)}")
        _positive("diameter", self.diameter, optional=True)
        for name in ("tile_size", "batch_size", "block_size"):
            _positive(name, getattr(self, name), optional=name != "block_size", whole=True)
        if self.halo is not None and not (_is_number(self.halo) and self.halo >= 0 and self.halo == int(self.halo)):
            raise ValueError(f"halo must be a whole number of pixels, 0 or more (None: chosen), not {self.halo!r}")
        # the area range and the cell_* fields are checked where they are used (object_filter, cells_step), before
        # any work


def _is_number(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def _positive(name: str, value: object, *, optional: bool, whole: bool = False) -> None:
    """A positive number (a whole one for pixels counted); None too when ``optional`` (chosen for the image)."""
    if value is None and optional:
        return
    if not (_is_number(value) and value > 0 and (not whole or value == int(value))):  # type: ignore[operator]
        kind = "a positive whole number" if whole else "a positive number"
        raise ValueError(f"{name} must be {kind}" + (" (None: chosen for the image)" if optional else "")
                         + f", not {value!r}")


def available_memory() -> int:
    """Bytes of RAM free for new data: psutil (it comes with napari), else /proc/meminfo, else sysconf.

    "Available" counts the page cache the kernel gives back on demand, which
    plain "free" memory does not.
    """
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except ImportError:
        pass
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def needs_disk(shape: tuple[int, ...], lazy: bool, plane_pixels: int, available_bytes: int | None = None) -> bool:
    """True when labels of ``shape`` would not fit comfortably in memory (or the input is a huge lazy image)."""
    if available_bytes is None:
        available_bytes = available_memory()
    labels_bytes = math.prod(shape) * 4
    return labels_bytes > MEMORY_FRACTION * available_bytes or (lazy and plane_pixels > LAZY_PLANE_PIXELS)
