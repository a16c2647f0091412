"""Labels -> polygons that follow pixel edges, shared by the ImageJ and GeoJSON writers.

Coordinates are (x, y) with pixel ``(row, col)`` covering ``[col, col + 1) x
[row, row + 1)``: the convention of ImageJ, QuPath and GeoJSON tools, so a
polygon's area equals the object's pixel count and filling it by pixel centres
gives the object back exactly. An object is one or more parts (4-connected
pieces; pixels touching only at a corner are separate parts), each an exterior
ring (counter-clockwise in x, y) with zero or more holes (clockwise). No ring
visits a vertex twice: where an outline pinches at a pixel corner (a hole or a
notch touching the outline only there) it is split into rings that touch at
that corner, as OGC simple features (GeoJSON, shapely, QuPath) require.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage
from skimage.measure import find_contours

Ring = np.ndarray  # (n, 2) int64 x, y vertices, first != last (closed implicitly)


@dataclass(frozen=True)
class ObjectOutline:
    """One object of a plane: its label id, the plane's index in a stack, and its parts."""

    label: int
    plane: tuple[int, ...]  # () for a 2D image, (k,) for slice k of a stack
    parts: tuple[tuple[Ring, ...], ...]  # each part: (exterior, *holes)

    @property
    def rings(self) -> list[Ring]:
        return [ring for part in self.parts for ring in part]

    @property
    def area(self) -> float:
        """Pixel count, from the polygons (holes subtract)."""
        return float(sum(signed_area(ring) for ring in self.rings))


def check_labels(labels: Any) -> None:
    """Refuse what is not a labels image, in one line (shape or pixel type)."""
    shape = tuple(getattr(labels, "shape", ()))
    dtype = np.dtype(getattr(labels, "dtype", np.float64))
    if len(shape) not in (2, 3):
        raise ValueError(f"labels must be 2D (H, W) or a stack (N, H, W), not shape {shape}")
    if min(shape) < 1:
        raise ValueError(f"labels have no pixels (shape {shape})")
    if not (np.issubdtype(dtype, np.integer) or dtype == bool):
        raise ValueError(f"labels must hold integer ids, not {dtype}")


def check_same_plane(labels_shape: Sequence[int], image_shape: Sequence[int], what: str = "image") -> None:
    """Labels and the image they belong to must cover the same pixels."""
    if tuple(labels_shape) != tuple(image_shape):
        raise ValueError(f"labels of shape {tuple(labels_shape)} do not match the {what} of shape "
                         f"{tuple(image_shape)}")


def iter_planes(labels: Any) -> Iterator[tuple[tuple[int, ...], np.ndarray]]:
    """(plane index, plane as numpy) for a 2D image or each slice of a stack; lazy arrays read one plane at a time."""
    if labels.ndim == 2:
        yield (), np.asarray(labels)
        return
    for k in range(labels.shape[0]):
        yield (k,), np.asarray(labels[k])


def object_outlines(labels: Any) -> Iterator[ObjectOutline]:
    """Every object of every plane, in plane then label order."""
    check_labels(labels)
    for index, plane in iter_planes(labels):
        yield from plane_outlines(plane, index)


def plane_outlines(plane: np.ndarray, index: tuple[int, ...] = ()) -> Iterator[ObjectOutline]:
    """The objects of one 2D plane, in label order."""
    plane = np.asarray(plane)
    if plane.dtype == bool:
        plane = plane.view(np.uint8)
    if np.issubdtype(plane.dtype, np.signedinteger) and plane.min(initial=0) < 0:
        raise ValueError("labels must not be negative")
    if int(plane.max(initial=0)) <= 4 * plane.size:  # find_objects lists every id up to the largest
        compact, ids = plane, None
    else:  # sparse, huge ids: number them 1..n first
        ids, inverse = np.unique(plane, return_inverse=True)
        compact = inverse.reshape(plane.shape)
        if ids[0] != 0:
            compact, ids = compact + 1, np.concatenate([[0], ids])
    for k, box in enumerate(ndimage.find_objects(compact), start=1):
        if box is None:
            continue
        parts = mask_parts(compact[box] == k, origin=(box[1].start, box[0].start))
        yield ObjectOutline(int(ids[k]) if ids is not None else k, index, parts)


def mask_parts(mask: np.ndarray, origin: tuple[int, int] = (0, 0)) -> tuple[tuple[Ring, ...], ...]:
    """The parts of a binary mask as (exterior, *holes) rings, shifted by ``origin`` (x, y)."""
    shift = np.asarray(origin)
    rings = _edge_rings(mask)
    if len(rings) == 1:  # the common case: one piece, no hole
        return ((_oriented(rings[0], positive=True) + shift,),)
    pieces, count = ndimage.label(mask)  # 4-connected, as the traced outlines are
    if count == 1:
        return (_piece_part(rings, shift),)
    return tuple(_piece_part(_edge_rings(pieces[box] == k), shift + [box[1].start, box[0].start])
                 for k, box in enumerate(ndimage.find_objects(pieces), start=1))


def _piece_part(rings: list[Ring], shift: np.ndarray) -> tuple[Ring, ...]:
    """(exterior, *holes) of one 4-connected piece from its simple rings, shifted by ``shift``.

    The interior of a 4-connected piece is connected, so exactly one of its
    rings has the piece on its inside: the exterior, which encloses the others.
    """
    exterior, *holes = sorted(rings, key=lambda ring: -abs(signed_area(ring)))
    return (_oriented(exterior, positive=True) + shift, *(_oriented(hole, positive=False) + shift for hole in holes))


def _edge_rings(mask: np.ndarray) -> list[Ring]:
    """Closed outlines along the pixel edges of a mask, one per boundary, vertices on pixel corners.

    Marching squares puts a vertex in the middle of every boundary edge; where
    two consecutive ones lie on a horizontal and a vertical edge, the outline
    turns at the pixel corner between them. Those corners are the outline.
    The background is 8-connected (the objects 4-connected), so where an
    object touches itself only diagonally, its outline passes that pixel
    corner twice (a hole meeting the outside or another hole there); such an
    outline is split there into simple rings (see :func:`_simple_rings`).
    """
    rings = []
    for contour in find_contours(np.pad(mask, 1).astype(np.uint8), 0.5, fully_connected="low"):
        yx = contour[:-1] - 0.5  # pixel-corner coordinates (the padding shifted them by one pixel)
        after = yx[np.r_[1:len(yx), 0]]
        on_row_edge = np.abs(yx[:, 0] - np.rint(yx[:, 0])) < 0.25  # a horizontal edge: y is whole
        turns = on_row_edge != on_row_edge[np.r_[1:len(yx), 0]]
        x = np.where(on_row_edge, after[:, 1], yx[:, 1])
        y = np.where(on_row_edge, yx[:, 0], after[:, 0])
        ring = np.rint(np.stack([x, y], axis=1)[turns]).astype(np.int64)
        if len(ring) >= 4:
            rings.extend(_simple_rings(ring))
    return rings


def _simple_rings(ring: Ring) -> list[Ring]:
    """A closed outline split at every vertex it visits twice into rings that visit no vertex twice.

    Each loop between two visits of a vertex is a closed ring of its own, in
    the outline's direction; together they cover the same pixels under
    even-odd filling. A pixel corner is passed at most twice, and the outline
    turns there on both passes, so every loop turns at each of its vertices.
    """
    y = ring[:, 1] - ring[:, 1].min()
    keys = ring[:, 0] * (int(y.max()) + 1) + y  # one number per vertex
    if len(np.unique(keys)) == len(keys):  # the common case: a simple ring
        return [ring]
    loops, path, seen = [], [], {}
    for i, key in enumerate(keys.tolist()):
        if key in seen:  # closed a loop: from the first visit up to here
            start = seen[key]
            loops.append(np.asarray(path[start:]))
            for j in path[start + 1:]:
                del seen[int(keys[j])]
            del path[start + 1:]
        else:
            seen[key] = len(path)
            path.append(i)
    loops.append(np.asarray(path))
    return [ring[loop] for loop in loops if len(loop) >= 4]


def signed_area(ring: np.ndarray) -> float:
    """Shoelace area: positive for counter-clockwise (x right, y up) rings."""
    x, y = ring[:, 0].astype(np.float64), ring[:, 1].astype(np.float64)
    return 0.5 * float(x[:-1] @ y[1:] - x[1:] @ y[:-1] + x[-1] * y[0] - x[0] * y[-1])


def _oriented(ring: Ring, *, positive: bool) -> Ring:
    return ring if (signed_area(ring) > 0) == positive else ring[::-1].copy()


def closed(ring: Ring) -> np.ndarray:
    """The ring with its first vertex repeated at the end (GeoJSON's closed rings)."""
    return np.concatenate([ring, ring[:1]])
