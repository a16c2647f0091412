"""Whole cells grown from segmented nuclei: each cell takes its nucleus's id, so the two stay linked.

Nuclei are what the U-Net finds reliably; a cell's outline is then where its
cytoplasm (or membrane) stain ends and where it meets its neighbour. Each
nucleus floods outwards over the cell stain (a seeded watershed, as
CellProfiler's secondary objects): through bright cytoplasm and stopped at
the dim seam between two touching cells (``boundary="cytoplasm"``), or
stopped at a bright membrane (``"membrane"``). Where the cells are is the
stain above an automatic (Otsu) threshold, a threshold given, or a mask
given (a class model's "cell" class, for example). Without a cell image,
each nucleus takes the pixels nearer to it than to any other nucleus, up to
``max_distance``. A nucleus always lies inside its own cell, and a nucleus in
no cell area is a cell of its own size, so cell *k* exists for every
nucleus *k*, and the tables of both layers join on ``label``.

Stacks (leading axes) are done plane by plane, each plane in memory.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from scipy import ndimage as ndi
from skimage.filters import threshold_otsu
from skimage.segmentation import watershed

from ..common.callbacks import CancelCallback, ProgressCallback, raise_if_cancelled
from ..common.notes import add_note, collecting_notes

Boundary = Literal["cytoplasm", "membrane", "distance"]
BOUNDARIES: tuple[Boundary, ...] = ("cytoplasm", "membrane", "distance")
SMOOTHING = 1.0  # px: the stain's Gaussian blur, against pixel noise in thresholds and seams


@dataclass(frozen=True)
class CellOptions:
    """How cells are grown. ``threshold`` is a fraction (0-1) of the plane's stain range (1st-99.8th
    percentile); None: Otsu. ``max_distance`` (px) caps how far a cell reaches from its nucleus."""

    boundary: Boundary = "cytoplasm"
    threshold: float | None = None
    max_distance: float | None = None


def check_cell_options(options: CellOptions, has_image: bool, has_mask: bool) -> None:
    """One-line ``ValueError`` for settings that cannot work, before any work is done."""
    if options.boundary not in BOUNDARIES:
        raise ValueError(f"unknown boundary {options.boundary!r}: use one of {', '.join(BOUNDARIES)}")
    if options.threshold is not None and not 0.0 < options.threshold < 1.0:
        raise ValueError(f"the threshold is a fraction of the stain's range, above 0 and below 1, "
                         f"not {options.threshold:g} (leave it out for auto: Otsu)")
    if options.max_distance is not None and options.max_distance <= 0:
        raise ValueError(f"the largest distance from a nucleus must be positive, not {options.max_distance:g}")
    if options.boundary != "distance" and not has_image:
        raise ValueError(f"'{options.boundary}' boundaries are found in a cell image: give one, "
                         "or split by distance to the nuclei")
    if not has_image and not has_mask and options.max_distance is None:
        raise ValueError("without a cell image or a cell mask, give the largest distance from a nucleus: "
                         "otherwise every pixel of the image would belong to some cell")


def grow_cells(
    nuclei: Any,
    image: Any | None = None,
    *,
    mask: Any | None = None,
    options: CellOptions = CellOptions(),
    progress: ProgressCallback | None = None,
    cancel: CancelCallback | None = None,
) -> np.ndarray:
    """Cells around ``nuclei`` (leading axes, H, W), each with its nucleus's id.

    ``image`` is the cell stain, of the nuclei's shape (or with a trailing
    colour axis, averaged). ``mask`` (same shape, nonzero = cell) replaces
    the threshold. Raises ``ValueError`` with one line for shapes that do
    not match or settings that cannot work.
    """
    shape = tuple(int(s) for s in nuclei.shape)
    if len(shape) < 2:
        raise ValueError(f"nuclei labels must have at least two axes (height, width), not shape {shape}")
    if not np.issubdtype(np.dtype(nuclei.dtype), np.integer):
        raise ValueError(f"nuclei must be labels (integers), not {np.dtype(nuclei.dtype)}: pick a Labels layer")
    for name, array in (("the cell image", image), ("the cell mask", mask)):
        if array is not None and tuple(array.shape[: len(shape)]) != shape:
            raise ValueError(f"{name} has shape {tuple(array.shape)} but the nuclei have {shape}: "
                             "they must match pixel for pixel")
    check_cell_options(options, image is not None, mask is not None)
    cells = np.zeros(shape, np.dtype(nuclei.dtype))
    planes = list(np.ndindex(shape[:-2]))
    for index, plane in enumerate(planes):
        raise_if_cancelled(cancel)
        cells[plane] = grow_plane(
            np.asarray(nuclei[plane]),
            None if image is None else _grey(np.asarray(image[plane]), shape[-2:]),
            None if mask is None else np.asarray(mask[plane]) != 0,
            options,
        )
        if progress is not None:
            progress(index + 1, len(planes))
    return cells


def grow_plane(nuclei: np.ndarray, image: np.ndarray | None, mask: np.ndarray | None,
               options: CellOptions) -> np.ndarray:
    """One plane's cells: a watershed from the nuclei over the stain, within the cell area.

    A cell area found by thresholding the stain is a soft edge (a blurred
    membrane spills a halo outward), so outside it floods too, as one more
    seed, and takes what lies on its side of the stain's ridge; a mask given
    is a hard edge.
    """
    seeds = nuclei != 0
    if not seeds.any():
        return np.zeros_like(nuclei)
    stain = None if image is None else _normalised(ndi.gaussian_filter(_finite(image), SMOOTHING))
    if mask is not None or stain is None:
        area = np.ones(nuclei.shape, bool) if mask is None else mask.copy()
    else:
        area = stain > (options.threshold if options.threshold is not None else _otsu(stain))
        if options.boundary == "membrane":
            area = ndi.binary_fill_holes(area)  # a cell's inside is dim in a membrane stain
    if options.max_distance is not None:
        area &= ndi.distance_transform_edt(~seeds) <= options.max_distance
    area |= seeds
    if options.boundary == "distance" or stain is None:
        relief = ndi.distance_transform_edt(~seeds)
    else:
        relief = 1.0 - stain if options.boundary == "cytoplasm" else stain
    markers = nuclei.astype(np.int64)
    if mask is None:
        outside = int(markers.max()) + 1
        markers[~area] = outside
        cells = watershed(relief, markers=markers)
        cells[cells == outside] = 0
    else:
        cells = watershed(relief, markers=markers, mask=area)
    cells[seeds] = nuclei[seeds]  # a nucleus is whole inside its own cell
    return cells.astype(nuclei.dtype, copy=False)


def cells_note(nuclei: Any, cells: np.ndarray) -> str:
    """One line for people: how many cells, and how much bigger than their nuclei.

    A stack counts the objects of each plane, as Measurements does (a Z
    stack's slices number their objects each from 1: distinct ids would
    undercount them).
    """
    nuclei = np.asarray(nuclei)
    pairs = [(nuclei, np.asarray(cells))] if nuclei.ndim == 2 else list(zip(nuclei, np.asarray(cells)))
    count = alone = 0
    ratios = []
    for plane, grown_plane in pairs:
        ids, nucleus_area = np.unique(plane, return_counts=True)  # ids may be large: no bincount
        nucleus_area, ids = nucleus_area[ids > 0], ids[ids > 0]
        if not ids.size:
            continue
        cell_ids, cell_counts = np.unique(grown_plane, return_counts=True)
        cell_area = np.zeros(ids.size, np.int64)
        found = np.isin(cell_ids, ids)
        cell_area[np.searchsorted(ids, cell_ids[found])] = cell_counts[found]
        count += ids.size
        alone += int((cell_area <= nucleus_area).sum())
        ratios.append(cell_area / nucleus_area)
    if not count:
        return "no nuclei: no cells"
    ratio = float(np.median(np.concatenate(ratios)))
    where = f" in {len(pairs)} planes" if nuclei.ndim > 2 else ""
    said = f"; {alone} found no cell stain around them (cell = nucleus)" if alone else ""
    return f"{count} cells around {count} nuclei{where}, same ids; a cell is {ratio:.1f}x its nucleus (median){said}"


def grow_cells_noted(*args: Any, **kwargs: Any) -> tuple[np.ndarray, list[str]]:
    """:func:`grow_cells`, and what it has to tell the user (a stain with pixels that are not numbers)."""
    with collecting_notes() as notes:
        cells = grow_cells(*args, **kwargs)
    return cells, list(notes.values())


def _finite(image: np.ndarray) -> np.ndarray:
    """The stain as float32 with NaN and -inf read as its darkest finite value, +inf as its brightest, said in a
    note: one NaN pixel made the smoothed stain and its threshold NaN, so no cell grew anywhere."""
    image = image.astype(np.float32)
    finite = np.isfinite(image)
    if finite.all():
        return image
    bad = int(finite.size - finite.sum())
    low, high = (float(image[finite].min()), float(image[finite].max())) if finite.any() else (0.0, 0.0)
    add_note(f"{bad} pixel{'s' if bad != 1 else ''} of the cell stain {'are' if bad != 1 else 'is'} not a number "
             "(NaN or infinite): read as the stain's darkest value (+inf as its brightest)", key="cells-nonfinite")
    return np.where(finite, image, np.where(np.isposinf(image), high, low)).astype(np.float32)


def _grey(image: np.ndarray, plane_shape: tuple[int, ...]) -> np.ndarray:
    """A colour (or multichannel, trailing axis) plane as one stain: the mean of its channels."""
    return image.mean(axis=-1) if image.ndim == 3 and image.shape[:2] == plane_shape else image


def _normalised(stain: np.ndarray) -> np.ndarray:
    """The stain on 0-1 between its 1st and 99.8th percentiles: thresholds mean the same on any camera."""
    low, high = np.percentile(stain, (1.0, 99.8))
    if high <= low:
        return np.zeros_like(stain)
    return np.clip((stain - low) / (high - low), 0.0, 1.0)


def _otsu(stain: np.ndarray) -> float:
    return float(threshold_otsu(stain)) if stain.max() > stain.min() else 1.0
