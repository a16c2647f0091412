"""Object filters: a smallest and a largest area, and no objects touching the edge; the same on every path."""

import numpy as np
import pytest
import zarr

from helpers import synthetic_nuclei, threshold_model
from napari_unet_seg.core.inference.object_filter import ObjectFilter, filter_plane
from napari_unet_seg.core.inference.options import RunOptions
from napari_unet_seg.core.inference.pipeline import segment_image


def squares() -> np.ndarray:
    """Objects 1-4 of known areas: 1 touches the top edge (16 px), 2 is small (4 px), 3 large (100), 4 mid (36)."""
    labels = np.zeros((40, 50), np.uint16)
    labels[0:4, 10:14] = 1
    labels[20:22, 2:4] = 2
    labels[25:35, 20:30] = 3
    labels[8:14, 35:41] = 4
    return labels


@pytest.mark.parametrize("found, kept", [
    (ObjectFilter(min_area=10), {1, 3, 4}),
    (ObjectFilter(max_area=50), {1, 2, 4}),
    (ObjectFilter(min_area=10, max_area=50), {1, 4}),
    (ObjectFilter(exclude_border=True), {2, 3, 4}),
    (ObjectFilter(min_area=5, max_area=36, exclude_border=True), {4}),
])
def test_each_filter_keeps_the_right_objects_with_their_ids(found, kept):
    labels = squares()
    objects, area, dropped = filter_plane(labels, (), found, rows_per_pass=len(labels))
    assert set(np.unique(labels)) - {0} == kept  # in place; the kept objects keep their ids and pixels
    assert (objects, area, dropped) == (len(kept), float(np.isin(squares(), list(kept)).sum()), 4 - len(kept))
    for i in kept:
        assert ((labels == i) == (squares() == i)).all()


@pytest.mark.parametrize("edge", ["top", "bottom", "left", "right"])
def test_touching_any_edge_counts_also_in_bands(edge):
    """A plane on disk is read a band of rows at a time: the last band's bottom row is an edge too."""
    labels = np.zeros((37, 30), np.uint16)  # 37 rows: bands of 8 leave a last band of 5
    where = {"top": (0, 10), "bottom": (36, 10), "left": (18, 0), "right": (18, 29)}[edge]
    labels[where] = 1
    labels[15:20, 12:17] = 2
    store = zarr.zeros(labels.shape, chunks=(8, 30), dtype=labels.dtype)
    store[:] = labels
    assert filter_plane(store, (), ObjectFilter(exclude_border=True), rows_per_pass=8) == (1, 25.0, 1)
    assert set(np.unique(store[:])) == {0, 2}


def test_a_stack_is_filtered_plane_by_plane_and_nothing_dropped_means_nothing_rewritten():
    stack = np.stack([squares(), squares()])
    filter_plane(stack, (1,), ObjectFilter(min_area=10), rows_per_pass=16)
    assert (stack[0] == squares()).all() and 2 not in stack[1]

    class ReadOnly(np.ndarray):
        def __setitem__(self, key, value):
            raise AssertionError("written although nothing was dropped")

    untouched = squares().view(ReadOnly)
    assert filter_plane(untouched, (), ObjectFilter(min_area=1, max_area=1000)) == (4, 156.0, 0)


def test_in_memory_in_blocks_and_on_disk_give_the_same_filtered_objects(tmp_path):
    """Filters run on finished planes, where objects crossing blocks are whole: every path keeps the same."""
    image, _ = synthetic_nuclei((300, 280), n=150, radius=(4, 8), seed=3)
    model = threshold_model()
    options = RunOptions(device="cpu", precision="fp32", min_area=120, max_area=400, exclude_border=True)
    whole = segment_image(image, options, model=model)  # one block
    unfiltered = segment_image(image, RunOptions(device="cpu", precision="fp32"), model=model).labels
    areas = np.bincount(unfiltered.ravel())
    edge = np.unique(np.concatenate([unfiltered[0], unfiltered[-1], unfiltered[:, 0], unfiltered[:, -1]]))
    expected = {i for i in range(1, len(areas)) if 120 <= areas[i] <= 400 and i not in edge}
    assert set(np.unique(whole.labels)) - {0} == expected and 10 < len(expected) < areas.size - 11
    assert whole.objects == len(expected) and whole.mean_area == pytest.approx(areas[list(expected)].mean())
    assert whole.dropped == areas.size - 1 - len(expected)
    assert whole.notes == [f"{areas.size - 1 - len(expected)} objects dropped (kept: objects of 120-400 px, "
                           "not touching the border)"]
    for block_size in (64, 100):
        for store in (None, str(tmp_path / f"b{block_size}.zarr")):
            other = segment_image(image, RunOptions(**{**options.__dict__, "block_size": block_size,
                                                       "store": store}), model=model)
            labels = np.asarray(other.labels[:])
            assert _same_objects(whole.labels, labels), (block_size, store)
            assert other.objects == whole.objects and other.mean_area == pytest.approx(whole.mean_area)
            assert other.dropped == whole.dropped
            if store:
                assert other.labels.attrs["objects"] == whole.objects and other.labels.attrs["notes"] == whole.notes


@pytest.mark.parametrize("options, said", [
    (RunOptions(min_area=10, output="semantic"), "apply to objects"),
    (RunOptions(min_area=500, max_area=100), "the largest area (100 px) is below the smallest (500 px)"),
])
def test_filters_that_cannot_work_are_refused_before_the_work(options, said):
    with pytest.raises(ValueError, match=said.replace("(", r"\(").replace(")", r"\)")):
        segment_image(np.zeros((40, 40), np.float32), options, model=threshold_model())


def test_negative_areas_are_refused():
    with pytest.raises(ValueError, match="0 \\(no limit\\) or more"):
        RunOptions(min_area=-1)


def _same_objects(a: np.ndarray, b: np.ndarray) -> bool:
    """The same objects pixel for pixel, whatever their ids."""
    if not ((a > 0) == (b > 0)).all():
        return False
    pairs = np.unique(np.stack([a[a > 0], b[b > 0]]), axis=1)
    return pairs.shape[1] == len(np.unique(a[a > 0])) == len(np.unique(b[b > 0]))


def test_filters_with_a_class_model_say_it_is_a_class_model():
    """With instances output asked, "choose instances output" was no help: the model itself makes no objects."""
    from napari_unet_seg.core.inference.object_filter import check_object_filter

    with pytest.raises(ValueError, match="this is a class model") as info:
        check_object_filter(RunOptions(min_area=50), "semantic")
    assert "choose instances output" not in str(info.value)
