"""Whole cells grown from nuclei: each takes its nucleus's id and stops where the cell stain says."""

import numpy as np
import pytest
from helpers import tissue
from scipy import ndimage as ndi

from napari_unet_seg.core.common.callbacks import Cancelled
from napari_unet_seg.core.inference.cells import CellOptions, cells_note, grow_cells


def ious(cells, truth):
    ids = np.unique(truth)[1:]
    return np.array([((cells == k) & (truth == k)).sum() / ((cells == k) | (truth == k)).sum() for k in ids])


@pytest.mark.parametrize("boundary", ["cytoplasm", "membrane"])
def test_cells_follow_the_stain_and_keep_their_nucleus_id(boundary):
    truth, nuclei, cytoplasm, membrane = tissue()
    image = cytoplasm if boundary == "cytoplasm" else membrane
    cells = grow_cells(nuclei, image, options=CellOptions(boundary=boundary))
    assert cells.dtype == nuclei.dtype
    assert np.all(cells[nuclei > 0] == nuclei[nuclei > 0])  # each nucleus whole inside its own cell
    assert ious(cells, truth).min() > 0.8
    assert (cells[truth == 0] == 0).mean() > 0.95  # outside the tissue stays background


def test_without_an_image_each_nucleus_takes_what_is_nearest_up_to_a_distance():
    truth, nuclei, *_ = tissue()
    cells = grow_cells(nuclei, options=CellOptions(boundary="distance", max_distance=12))
    distance = ndi.distance_transform_edt(nuclei == 0)
    assert not cells[distance > 12].any() and cells[distance <= 5].all()
    assert set(np.unique(cells)) == set(np.unique(nuclei))
    assert np.mean(ious(grow_cells(nuclei, options=CellOptions(boundary="distance", max_distance=200)) * (truth > 0),
                        truth)) > 0.9  # nearest-nucleus cells inside the tissue are the Voronoi cells


def test_nearest_nucleus_within_the_stain_needs_no_reach():
    truth, nuclei, cytoplasm, _ = tissue()
    cells = grow_cells(nuclei, cytoplasm, options=CellOptions(boundary="distance"))
    assert (cells[truth == 0] == 0).mean() > 0.95 and np.mean(ious(cells, truth)) > 0.9


def test_a_mask_decides_where_cells_are_and_stacks_go_plane_by_plane():
    truth, nuclei, cytoplasm, _ = tissue()
    mask = np.zeros_like(truth)
    mask[:, : truth.shape[1] // 2] = 1  # a class model's "cell" class, say, on the left half only
    stack = np.stack([nuclei, np.zeros_like(nuclei), nuclei])
    reported = []
    cells = grow_cells(stack, np.stack([cytoplasm] * 3), mask=np.stack([mask] * 3),
                       progress=lambda done, total: reported.append((done, total)))
    assert reported == [(1, 3), (2, 3), (3, 3)]
    assert not cells[1].any()
    np.testing.assert_array_equal(cells[0], cells[2])
    outside = (mask == 0) & (nuclei == 0)
    assert not cells[0][outside].any()
    assert (cells[0][mask > 0] > 0).mean() > 0.5


def test_a_colour_cell_image_is_read_as_the_mean_of_its_channels():
    _, nuclei, cytoplasm, _ = tissue()
    rgb = np.stack([cytoplasm, cytoplasm, np.zeros_like(cytoplasm)], axis=-1)
    np.testing.assert_array_equal(grow_cells(nuclei, rgb), grow_cells(nuclei, cytoplasm))


def test_a_nucleus_outside_any_stain_is_a_cell_of_its_own_and_the_note_says_so():
    _, nuclei, cytoplasm, _ = tissue()
    nuclei[2:6, 2:6] = 99  # in the dark corner
    cells = grow_cells(nuclei, cytoplasm)
    assert (cells == 99).sum() == 16
    note = cells_note(nuclei, cells)
    assert note.startswith("10 cells around 10 nuclei") and "1 found no cell stain" in note


@pytest.mark.parametrize(("kwargs", "words"), [
    ({"image": np.zeros((5, 5))}, "has shape (5, 5) but the nuclei have (160, 160)"),
    ({"options": CellOptions(threshold=1.5)}, "above 0 and below 1"),
    ({"options": CellOptions(max_distance=0)}, "must be positive"),
    ({"image": None}, "found in a cell image"),
    ({"image": None, "options": CellOptions(boundary="distance")}, "give the largest distance"),
    ({"options": CellOptions(boundary="outline")}, "unknown boundary"),
])
def test_settings_that_cannot_work_are_refused_in_one_line(kwargs, words):
    _, nuclei, cytoplasm, _ = tissue()
    kwargs = {"image": cytoplasm, **kwargs}
    with pytest.raises(ValueError, match=None) as raised:
        grow_cells(nuclei, **kwargs)
    assert words in str(raised.value) and "\n" not in str(raised.value)


def test_float_nuclei_are_refused_and_cancel_stops():
    _, nuclei, cytoplasm, _ = tissue()
    with pytest.raises(ValueError, match="must be labels"):
        grow_cells(nuclei.astype(np.float32), cytoplasm)
    with pytest.raises(Cancelled):
        grow_cells(nuclei, cytoplasm, cancel=lambda: True)


def test_large_ids_keep_their_values_and_are_counted_without_a_table_of_every_id():
    _, nuclei, cytoplasm, _ = tissue()
    big = nuclei.astype(np.uint32)
    big[big > 0] += 3_000_000_000
    cells = grow_cells(big, cytoplasm)
    np.testing.assert_array_equal(cells, np.where(grow_cells(nuclei, cytoplasm) > 0,
                                                  grow_cells(nuclei, cytoplasm).astype(np.uint32) + 3_000_000_000, 0))
    assert cells_note(big, cells) == cells_note(nuclei, grow_cells(nuclei, cytoplasm))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_a_stain_with_pixels_that_are_not_numbers_still_grows_cells_and_says_so(bad):
    from napari_unet_seg.core.inference.cells import grow_cells_noted

    _, nuclei, cytoplasm, _ = tissue()
    stain = cytoplasm.astype(np.float32)
    clean, notes = grow_cells_noted(nuclei, stain)
    assert notes == []
    spoilt = stain.copy()
    spoilt[0, 0] = bad  # one pixel in a corner made every threshold NaN: no cell grew anywhere
    cells, notes = grow_cells_noted(nuclei, spoilt)
    assert (cells > 0).sum() > 1.5 * (nuclei > 0).sum()  # grown, as from the clean stain
    assert (cells != clean).mean() < 0.01
    assert notes == ["1 pixel of the cell stain is not a number (NaN or infinite): read as the stain's darkest value "
                     "(+inf as its brightest)"]
