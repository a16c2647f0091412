import numpy as np
import pytest
from export_shapes import awkward_labels, fill_rings
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from napari_unet_seg.core.export.outlines import check_labels, object_outlines, plane_outlines, signed_area


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
