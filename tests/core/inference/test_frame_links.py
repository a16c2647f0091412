"""Objects keep their id from frame to frame of a time-lapse, the same on every path."""

import numpy as np
import pytest
import zarr

from helpers import drifting_disks, threshold_model
from napari_unet_seg.core.inference.frame_links import link_frames
from napari_unet_seg.core.inference.options import RunOptions
from napari_unet_seg.core.inference.pipeline import segment_image


def test_each_object_takes_the_id_it_overlaps_by_more_than_half_and_new_ones_get_fresh_ids():
    labels = np.zeros((3, 20, 20), np.uint16)
    labels[0, 2:8, 2:8], labels[0, 12:18, 12:18] = 1, 2
    labels[1, 3:9, 2:8], labels[1, 12:18, 12:18], labels[1, 0:2, 15:20] = 2, 1, 3  # ids swapped; a newcomer
    labels[2, 3:9, 3:9], labels[2, 12:18, 12:18] = 1, 2
    labels[2, 12:14, 0:2] = 3  # the newcomer left; another appears: a fresh id, not the newcomer's
    used = link_frames(labels, rows_per_pass=20)
    assert labels[1, 5, 5] == 1 and labels[1, 15, 15] == 2  # followed the objects, not the frame's numbering
    assert labels[1, 0, 16] == 3 and labels[2, 12, 0] == 4 and used == 4
    assert labels[2, 5, 5] == 1 and labels[2, 15, 15] == 2


def test_a_gap_in_the_first_frame_ids_is_closed_so_the_count_is_the_ids_the_file_holds():
    """An object filtered out of frame 0 left its id unused: the run said 69 ids, the file held 68."""
    labels = np.zeros((2, 20, 20), np.uint32)
    labels[0, 2:8, 2:8], labels[0, 12:18, 12:18] = 1, 3  # 2 was filtered out
    labels[1, 2:8, 2:8], labels[1, 0:2, 15:20] = 5, 9
    for rows in (20, 7):
        linked = labels.copy()
        used = link_frames(linked, rows_per_pass=rows)
        assert used == len(np.unique(linked)) - 1 == 3 and linked.max() == 3
        assert linked[0, 5, 5] == linked[1, 5, 5] == 1 and linked[0, 15, 15] == 2 and linked[1, 0, 16] == 3


def test_a_store_linked_in_bands_equals_the_array_linked_whole():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 6, (4, 37, 30)).astype(np.uint32)
    labels[:, 10:25, 5:20] = 7  # one big object everywhere: linked; the speckle mostly not
    store = zarr.zeros(labels.shape, chunks=(1, 8, 30), dtype=labels.dtype)
    store[:] = labels
    link_frames(labels, rows_per_pass=37)
    link_frames(store, rows_per_pass=8)
    np.testing.assert_array_equal(store[:], labels)
    assert len({int(labels[t, 15, 10]) for t in range(4)}) == 1


def test_a_time_lapse_is_linked_alike_in_memory_in_blocks_and_on_disk(tmp_path):
    movie = drifting_disks()
    model = threshold_model()
    options = RunOptions(device="cpu", precision="fp32", link_frames=True)
    linked = segment_image(movie, options, model=model)
    labels = linked.labels
    for start in ((20, 20), (60, 40)):  # the two disks seen throughout keep one id each
        ids = {int(labels[t, start[0] + 2 * t, start[1] + 2 * t]) for t in range(5)}
        assert len(ids) == 1 and 0 not in ids
    assert len(np.unique(labels)) - 1 == 4 and linked.notes[-1].startswith("objects linked across 5 frames: 4 ids")
    for block_size, store in ((64, None), (64, tmp_path / "b.zarr"), (2048, tmp_path / "w.zarr")):
        other = segment_image(movie, RunOptions(**{**options.__dict__, "block_size": block_size,
                                                   "store": str(store) if store else None}), model=model)
        np.testing.assert_array_equal(np.asarray(other.labels[:]), labels)
        if store:  # the brush's next free id, known without reading the store: the ids linking used
            assert other.labels.attrs["largest_id"] == labels.max()
    one = segment_image(movie, options, model=model, planes=((2,),))  # one frame: nothing to link to
    assert not any("linked" in note for note in one.notes)


def test_links_that_cannot_be_made_are_refused():
    with pytest.raises(ValueError, match="needs one stack axis"):
        segment_image(np.zeros((2, 3, 30, 30), np.float32), RunOptions(link_frames=True), model=threshold_model())
    with pytest.raises(ValueError, match="needs objects"):
        segment_image(np.zeros((3, 30, 30), np.float32), RunOptions(link_frames=True, output="semantic"),
                      model=threshold_model())


def test_ids_beyond_the_dtype_are_one_clear_error_that_says_what_to_do():
    labels = np.zeros((3, 20, 20), np.uint8)
    labels[0].flat[:200] = np.arange(1, 201)  # 200 one-pixel objects, then 150 elsewhere: 350 ids
    labels[1].flat[200:350] = np.arange(1, 151)
    with pytest.raises(ValueError, match=r"more than uint8 labels hold: link a uint32 copy"):
        link_frames(labels)
    assert link_frames(np.zeros((3, 4, 4), np.uint8)) == 0
