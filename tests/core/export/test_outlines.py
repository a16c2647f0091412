import numpy as np
import pytest
from export_shapes import awkward_labels, fill_rings
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import ndimage

from napari_unet_seg.core.export.outlines import check_labels, object_outlines, plane_outlines, signed_area

# a hole (pixel (2, 2)) that meets the outside only at the pixel corner x=2, y=3: a "pinch"
PINCH = np.array([[0, 0, 0, 0, 0], [0, 1, 1, 1, 0], [0, 1, 0, 1, 0], [0, 0, 1, 1, 0], [0, 0, 0, 0, 0]], np.uint16)


def diagonal_labels() -> np.ndarray:
    """Objects that touch themselves only at pixel corners."""
    labels = np.zeros((12, 22), np.uint16)
    labels[1:7, 1:7] = (np.indices((6, 6)).sum(axis=0) % 2 == 0)  # 1: a checkerboard, 18 one-pixel pieces
    labels[1:8, 9:16] = 2  # 2: three holes in a diagonal chain, each touching the next at a corner
    labels[[3, 4, 5], [11, 12, 13]] = 0
    labels[8:11, 1:4] = 3  # 3: a square with a hole, and a notch that meets the hole at one corner
    labels[9, 2] = labels[10, 1] = 0
    labels[1:6, 17:21] = 4  # 4: a ring (its hole touches nothing)...
    labels[2:5, 18:20] = 0
    labels[[6, 7, 8, 9, 10], [16, 16, 15, 16, 17]] = 4  # ...and a zigzag of 4 pieces off its corner, each
    # touching the next only at a corner
    return labels


def blobby_labels(seed: int = 0, tiles: int = 16, tile: int = 9) -> np.ndarray:
    """tiles² random blobs of smoothed noise, one per tile: holes, pieces and pinches of every kind."""
    rng = np.random.default_rng(seed)
    field = ndimage.gaussian_filter(rng.random((tiles * tile, tiles * tile)), 0.8)
    labels = np.zeros(field.shape, np.uint16)
    for k in range(tiles * tiles):
        row, col = divmod(k, tiles)
        box = labels[row * tile:(row + 1) * tile, col * tile:(col + 1) * tile]
        patch = field[row * tile:(row + 1) * tile, col * tile:(col + 1) * tile]
        box[patch > np.quantile(patch, rng.uniform(0.3, 0.6))] = k + 1
    return labels


def check_simple_polygons(outline, mask) -> None:
    """The outline is valid polygons without shapely: rings that never visit a vertex twice, turn at every
    vertex, wind the right way, nest (holes inside their exterior, apart from each other and from other parts)
    and fill back (even-odd) to exactly the object's pixels, whose count is the area."""
    fills = []
    for exterior, *holes in outline.parts:
        assert signed_area(exterior) > 0 and all(signed_area(hole) < 0 for hole in holes), outline.label
        for ring in (exterior, *holes):
            assert ring.dtype.kind == "i" and ring.ndim == 2 and ring.shape[1] == 2 and len(ring) >= 4
            assert len(set(map(tuple, ring.tolist()))) == len(ring), f"label {outline.label} repeats a vertex"
            edges = np.roll(ring, -1, axis=0) - ring
            assert np.all((edges == 0).sum(axis=1) == 1)  # axis-parallel edges between pixel corners...
            assert np.all((edges * np.roll(edges, 1, axis=0)).sum(axis=1) == 0)  # ...turning at each vertex
        inside = fill_rings([exterior], mask.shape)
        hole_fills = [fill_rings([hole], mask.shape) for hole in holes]
        assert all(np.all(inside[hole]) for hole in hole_fills)  # holes lie within their exterior
        assert np.all(np.sum(hole_fills, axis=0) <= 1)  # and overlap no other hole
        fills.append(inside & ~np.any(hole_fills, axis=0))
    assert np.all(np.sum(fills, axis=0) <= 1)  # parts overlap no other part
    assert np.array_equal(np.any(fills, axis=0), mask), outline.label
    assert np.array_equal(fill_rings(outline.rings, mask.shape), mask), outline.label
    assert outline.area == mask.sum()


def test_outlines_fill_back_to_exactly_each_object():
    labels = awkward_labels()
    outlines = list(plane_outlines(labels))
    assert [o.label for o in outlines] == [1, 2, 3, 4, 5, 6, 7, 8, 70000]
    for outline in outlines:
        mask = labels == outline.label
        assert np.array_equal(fill_rings(outline.rings, labels.shape), mask), outline.label
        assert outline.area == mask.sum()


def test_holes_are_interior_rings_and_pieces_are_parts():
    outlines = {o.label: o for o in plane_outlines(awkward_labels())}
    assert [len(part) for part in outlines[2].parts] == [2]  # one piece: exterior + one hole
    exterior, hole = outlines[2].parts[0]
    assert signed_area(exterior) > 0 > signed_area(hole)
    assert len(outlines[4].parts) == 3  # corner contact does not join pieces
    assert [len(part) for part in outlines[1].parts] == [1]


def test_vertices_sit_on_pixel_corners_and_straight_runs_are_one_edge():
    labels = np.zeros((10, 10), np.uint8)
    labels[2:5, 3:8] = 1
    (outline,) = plane_outlines(labels)
    (ring,) = outline.rings
    assert sorted(map(tuple, ring.tolist())) == [(3, 2), (3, 5), (8, 2), (8, 5)]


def test_stacks_give_each_slice_its_own_objects():
    stack = np.zeros((2, 8, 8), np.uint16)
    stack[0, 1:3, 1:3] = 1
    stack[1, 4:6, 4:6] = 1
    assert [(o.plane, o.label) for o in object_outlines(stack)] == [((0,), 1), ((1,), 1)]


@settings(max_examples=60, deadline=None)
@given(arrays(np.uint8, st.tuples(st.integers(1, 12), st.integers(1, 12)), elements=st.integers(0, 3)))
def test_any_labels_round_trip_exactly(labels):
    for outline in plane_outlines(labels):
        assert np.array_equal(fill_rings(outline.rings, labels.shape), labels == outline.label)


def test_a_hole_touching_the_outline_at_a_corner_is_an_interior_ring_not_a_pinched_exterior():
    (outline,) = plane_outlines(PINCH)
    ((exterior, hole),) = outline.parts
    assert set(map(tuple, exterior.tolist())) == {(2, 4), (2, 3), (1, 3), (1, 1), (4, 1), (4, 4)}
    assert set(map(tuple, hole.tolist())) == {(2, 3), (3, 3), (3, 2), (2, 2)}  # pixel (2, 2), touching at (2, 3)
    check_simple_polygons(outline, PINCH == 1)
    assert outline.area == 7


def test_objects_touching_themselves_at_corners_give_simple_rings():
    labels = diagonal_labels()
    outlines = {o.label: o for o in plane_outlines(labels)}
    for label, outline in outlines.items():
        check_simple_polygons(outline, labels == label)
    assert len(outlines[1].parts) == 18 and all(len(part) == 1 for part in outlines[1].parts)
    assert [len(part) for part in outlines[2].parts] == [4]  # three one-pixel holes, not one pinched ring
    assert [len(part) for part in outlines[3].parts] == [2]
    assert sorted(len(part) for part in outlines[4].parts) == [1, 1, 1, 1, 2]  # the ring keeps its hole


def test_a_ring_shaped_object_is_one_exterior_with_one_hole():
    labels = np.zeros((9, 9), np.uint8)
    labels[1:8, 2:7] = 1
    labels[3:6, 3:6] = 0
    (outline,) = plane_outlines(labels)
    ((exterior, hole),) = outline.parts
    assert sorted(map(tuple, exterior.tolist())) == [(2, 1), (2, 8), (7, 1), (7, 8)]
    assert sorted(map(tuple, hole.tolist())) == [(3, 3), (3, 6), (6, 3), (6, 6)]
    check_simple_polygons(outline, labels == 1)


def test_random_blobs_give_simple_rings_that_fill_back_to_each_object():
    labels = blobby_labels()
    outlines = list(plane_outlines(labels))
    assert len(outlines) == 256
    for outline in outlines:
        check_simple_polygons(outline, labels == outline.label)
    assert sum(len(part) > 1 for o in outlines for part in o.parts) > 50  # the blobs have holes...
    assert sum(len(o.parts) > 1 for o in outlines) > 50  # ...and pieces


def test_outlines_are_valid_ogc_geometry():
    shapely_geometry = pytest.importorskip("shapely.geometry")
    from shapely.validation import explain_validity

    for labels in (PINCH, diagonal_labels(), blobby_labels(seed=1), awkward_labels()):
        for outline in plane_outlines(labels):
            geometry = shapely_geometry.MultiPolygon([shapely_geometry.Polygon(exterior, holes)
                                                      for exterior, *holes in outline.parts])
            assert geometry.is_valid, (outline.label, explain_validity(geometry))
            assert geometry.area == (labels == outline.label).sum()


@settings(max_examples=60, deadline=None)
@given(arrays(np.uint8, st.tuples(st.integers(1, 10), st.integers(1, 10)), elements=st.integers(0, 2)))
def test_any_labels_give_simple_nested_rings(labels):
    for outline in plane_outlines(labels):
        check_simple_polygons(outline, labels == outline.label)


@pytest.mark.parametrize("bad, message", [
    (np.zeros((2, 3, 4, 5), np.uint8), "2D"),
    (np.zeros((4, 5), np.float32), "integer"),
    (np.zeros((0, 5), np.uint8), "no pixels"),
])
def test_what_is_not_labels_is_refused_in_one_line(bad, message):
    with pytest.raises(ValueError, match=message):
        check_labels(bad)


def test_negative_ids_are_refused():
    with pytest.raises(ValueError, match="negative"):
        list(plane_outlines(np.array([[0, -1]], np.int32)))
