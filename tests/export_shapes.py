"""Label images with the shapes exports get wrong: holes, pieces, single pixels, borders, big ids, stacks."""

from __future__ import annotations

import zipfile

import numpy as np
from skimage.draw import disk, polygon

from napari_unet_seg.core.export.outlines import signed_area
from napari_unet_seg.core.export.stamp import read_zip_comment


def awkward_labels() -> np.ndarray:
    """A 2D labels image whose objects cover every hard case."""
    labels = np.zeros((60, 70), dtype=np.uint32)
    labels[disk((14, 14), 9, shape=labels.shape)] = 1
    ring = np.zeros(labels.shape, bool)
    ring[disk((15, 45), 11, shape=labels.shape)] = True
    ring[disk((15, 45), 5, shape=labels.shape)] = False  # object 2 has a hole...
    labels[ring] = 2
    labels[14:17, 44:47] = 3  # ...with object 3 inside it
    labels[35:40, 5:10] = 4  # object 4 has two pieces, one touching the other only at a corner
    labels[40:43, 10:13] = 4
    labels[35:38, 30:33] = 4
    labels[50, 50] = 5  # one pixel
    labels[45:60, 60:70] = 6  # touches the image's border
    labels[45:52, 20:28] = 70000  # an id beyond 16 bits
    labels[52:58, 20:28] = 7  # touches object 70000 along an edge
    rr, cc = polygon([30, 45, 45], [40, 40, 58], labels.shape)
    labels[rr, cc] = 8  # a triangle: staircase outlines
    return labels


def stack_labels() -> np.ndarray:
    """Three slices whose ids repeat (each slice numbers its objects 1..n, as the pipeline does)."""
    stack = np.zeros((3, 40, 50), dtype=np.uint16)
    stack[0, 5:15, 5:20] = 1
    stack[1, 5:15, 5:20] = 1
    stack[1, 20:30, 25:45] = 2
    stack[1, 22:26, 30:35] = 0  # a hole in slice 1's object 2
    stack[2, 30:38, 40:48] = 1
    return stack


def fill_rings(rings, shape) -> np.ndarray:
    """Rasterise (x, y) pixel-corner rings by pixel centres, even-odd: how ImageJ and QuPath fill them."""
    mask = np.zeros(shape, bool)
    for ring in rings:
        ring = np.asarray(ring, dtype=float)
        rr, cc = polygon(ring[:, 1] - 0.5, ring[:, 0] - 0.5, shape)
        inside = np.zeros(shape, bool)
        inside[rr, cc] = True
        mask ^= inside
    return mask


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def polygon_area(rings) -> float:
    return sum(signed_area(np.asarray(ring, dtype=float)) for ring in rings)


def provenance_record() -> dict:
    """A provenance record as a Segment run leaves it: nested, with a non-ASCII path."""
    return {"format": "napari-unet-seg provenance 1", "date": "2025-01-02T03:04:05Z",
            "input": "/data/cellules é/img.tif",
            "model": {"name": "nuclei", "builtin": True, "sha256": "ab" * 32, "lineage": [{"base": "nuclei"}]},
            "settings": {"diameter": 17.5, "planes": "all", "rgb": None},
            "command": "unet-seg predict '/data/cellules é/img.tif' -o out --model nuclei"}


def zip_provenance(path) -> dict | None:
    """The provenance record in an ImageJ ROI zip's comment, or None."""
    with zipfile.ZipFile(path) as archive:
        return read_zip_comment(archive.comment)
