"""Cells grown as a step of a run: the same cells the dock and `unet-seg cells` grow from the run's nuclei."""

import re

import numpy as np
import pytest
from helpers import threshold_model, tissue

from napari_unet_seg.core.inference.cells import CellOptions, grow_cells
from napari_unet_seg.core.inference.options import RunOptions
from napari_unet_seg.core.inference.pipeline import segment_image


def two_channels(seed=0):
    """(2, H, W): bright nuclei in channel 0, the cytoplasm stain in channel 1; and the true cells."""
    truth, nuclei, cytoplasm, _ = tissue(seed)
    nuclear = (nuclei > 0) * 1000.0 + np.random.default_rng(seed).normal(0, 20, nuclei.shape)
    return np.stack([nuclear, cytoplasm]).astype(np.float32), truth


@pytest.mark.parametrize("boundary", ["cytoplasm", "distance"])
def test_a_run_grows_each_nucleus_into_its_cell_as_the_cells_dock_would(boundary):
    image, truth = two_channels()
    options = RunOptions(channel=0, cells_channel=1, cell_boundary=boundary, cell_max_distance=40.0)
    result = segment_image(image, options, model=threshold_model(), channel_axis=0)
    alone = segment_image(image, RunOptions(channel=0), model=threshold_model(), channel_axis=0)
    assert np.array_equal(result.labels, alone.labels)  # the nuclei do not change
    expected = grow_cells(result.labels, image[1], options=CellOptions(boundary, None, 40.0))
    assert np.array_equal(result.cells, expected)
    ids = np.unique(result.labels[result.labels > 0])
    assert len(ids) == len(np.unique(truth[truth > 0])) == 9
    assert set(np.unique(result.cells[result.cells > 0])) == set(ids)  # cell k for every nucleus k
    assert np.all(result.cells[result.labels > 0] == result.labels[result.labels > 0])
    assert any(note.startswith("9 cells around 9 nuclei") for note in result.notes)
    assert result.provenance["settings"]["cells_channel"] == 1


def test_stacks_grow_cells_plane_by_plane_and_only_in_the_planes_segmented():
    image, _ = two_channels()
    stack = np.stack([image, image[:, ::-1]])  # (Z, C, H, W)
    options = RunOptions(channel=0, cells_channel=1)
    result = segment_image(stack, options, model=threshold_model(), channel_axis=1, planes=((1,),))
    assert result.cells.shape == result.labels.shape == (2, 160, 160)
    assert not result.cells[0].any()
    assert np.array_equal(result.cells[1], grow_cells(result.labels[1], stack[1, 1]))


def test_growing_over_the_nuclear_channel_is_said():
    image, _ = two_channels()
    result = segment_image(image, RunOptions(channel=0, cells_channel=0), model=threshold_model(), channel_axis=0)
    assert any("grown over the nuclear channel itself" in note for note in result.notes)


@pytest.mark.parametrize("image_kind, options, message", [
    ("gray", RunOptions(cells_channel=1), "this image has one channel: grow them over a stain in another file"),
    ("two", RunOptions(channel=0, cells_channel=2), "the image has 2 channels (0 to 1)"),
    ("two", RunOptions(channel=0, cells_channel=1, output="semantic"), "need an instance model's objects"),
    ("two", RunOptions(channel=0, cells_channel=1, store="x.zarr"), "grow them afterwards with unet-seg cells"),
    ("two", RunOptions(channel=0, cells_channel=1, cell_threshold=1.5), "cells: the threshold is a fraction"),
    ("two", RunOptions(channel=0, cells_channel=1, cell_boundary="wall"), "cells: unknown boundary 'wall'"),
])
def test_cells_that_cannot_be_grown_are_refused_in_one_line_before_any_work(image_kind, options, message, tmp_path):
    image, _ = two_channels()
    kwargs = {"channel_axis": 0} if image_kind == "two" else {}
    with pytest.raises(ValueError, match=re.escape(message)) as info:
        segment_image(image if image_kind == "two" else image[0], options, model=threshold_model(), **kwargs)
    assert "\n" not in str(info.value)


def test_a_negative_cells_channel_is_refused():
    with pytest.raises(ValueError, match="counted from 0"):
        RunOptions(cells_channel=-1)
