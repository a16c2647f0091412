"""Labels -> an ImageJ/Fiji ROI set (.zip): one ROI per object, for the ROI Manager.

An object of one piece without holes becomes a *traced* polygon (what
ImageJ's wand and Analyze Particles make: vertices on pixel corners, so
ImageJ measures exactly the object's pixels). An object with holes or several
pieces becomes a composite (shape) ROI; holes wind against the exterior, so
ImageJ leaves them out under either filling rule.
ROIs are named ``label-0017`` (2D) or ``slice-003-label-0017`` (stacks, whose
ROIs also carry their 1-based slice as ImageJ's stack position). A plain
position, not a hyperstack one, on purpose: ImageJ shows a plain position on a
hyperstack as the Z slice when there are several, otherwise as the frame, on
every channel (``ImageCanvas.drawOverlay``), so the ROIs of a movie's labels
land on the right frame of the two-channel movie, and on a plain stack too,
where a hyperstack position would have shown every ROI on every slice.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..common.atomic import atomic_path
from .outlines import ObjectOutline, check_labels, object_outlines
from .stamp import zip_comment
from .target import prepare_target

PathOps = list[float]
MOVETO, LINETO, CLOSE = 0.0, 1.0, 4.0


def write_imagej_rois(path: str | os.PathLike, labels: Any, *, provenance: Mapping[str, Any] | None = None,
                      overwrite: bool = False, progress: Callable[[int, int], None] | None = None) -> Path:
    """Write every object of ``labels`` (2D or a stack) as ImageJ ROIs into the zip file ``path``.

    Raises ``ValueError`` for labels without any object (ImageJ cannot open an
    empty ROI set) and ``FileExistsError`` for an existing ``path`` unless
    ``overwrite``. The zip is complete or absent (written under a temporary name).
    ``provenance`` (where the labels came from) goes in the zip's comment, as
    JSON: an extra entry would not do, as ImageJ's ROI Manager skips non-.roi
    entries but roifile's reader fails on them.
    """
    import roifile

    check_labels(labels)
    path = prepare_target(path, overwrite=overwrite)
    stack = labels.ndim == 3
    found = []
    for outline in object_outlines(labels):
        found.append((outline, object_roi(outline, stack=stack)))
        if progress is not None and stack:
            progress(outline.plane[0] + 1, labels.shape[0])
    if not found:
        raise ValueError("the labels hold no objects: there is nothing to write as ImageJ ROIs")
    width = max(4, len(str(max(outline.label for outline, _ in found))))
    slice_width = max(3, len(str(labels.shape[0]))) if stack else 0
    for outline, roi in found:
        roi.name = roi_name(outline.label, outline.plane[0] if stack else None, width, slice_width)
    with atomic_path(path) as tmp:
        roifile.roiwrite(tmp, [roi for _, roi in found], mode="w")
        if provenance is not None:
            with zipfile.ZipFile(tmp, "a") as archive:
                archive.comment = zip_comment(provenance)
    return path


def roi_name(label: int, slice_index: int | None, width: int = 4, slice_width: int = 3) -> str:
    """``label-0017``, or ``slice-003-label-0017`` in a stack (1-based slice, as ImageJ counts)."""
    name = f"label-{label:0{width}d}"
    return name if slice_index is None else f"slice-{slice_index + 1:0{slice_width}d}-{name}"


def object_roi(outline: ObjectOutline, *, stack: bool) -> Any:
    """The ImageJ ROI of one object, unnamed; in a stack it carries its 1-based slice as position."""
    import roifile

    rings = outline.rings
    if len(rings) == 1:
        roi = roifile.ImagejRoi.frompoints(rings[0], name="")
        roi.roitype = roifile.ROI_TYPE.TRACED
        roi.options = roifile.ROI_OPTIONS(0)
        roi.right, roi.bottom = (int(v) for v in rings[0].max(axis=0))  # ImageJ's bounds of corner outlines
    else:
        roi = composite_roi(rings)
    if stack:
        roi.position = outline.plane[0] + 1
    return roi


def composite_roi(rings: list[np.ndarray]) -> Any:
    """A composite (shape) ROI whose path is the rings, each closed: holes stay holes under even-odd filling."""
    import roifile

    ops: PathOps = []
    for ring in rings:
        ops += [MOVETO, *map(float, ring[0])]
        for x, y in ring[1:]:
            ops += [LINETO, float(x), float(y)]
        ops.append(CLOSE)
    allpoints = np.concatenate(rings)
    left, top = allpoints.min(axis=0)
    right, bottom = allpoints.max(axis=0)
    roi = roifile.ImagejRoi()
    roi.roitype = roifile.ROI_TYPE.RECT
    roi.left, roi.top, roi.right, roi.bottom = int(left), int(top), int(right), int(bottom)
    roi.multi_coordinates = np.asarray(ops, dtype=np.float32)
    roi.shape_roi_size = len(ops)
    return roi
