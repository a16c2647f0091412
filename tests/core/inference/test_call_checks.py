"""A Python caller's slips are one clear line before any work, and a store path never replaces what it holds."""

import os

import numpy as np
import pytest
import zarr
from helpers import synthetic_nuclei, threshold_model

from napari_unet_seg import RunOptions, load_model, predict_tiled, segment, segment_image
from napari_unet_seg.core.inference.prediction import predict_network
from napari_unet_seg.core.measure.measurements import measure_objects
from napari_unet_seg.core.training.metrics import matching_accuracy


@pytest.fixture
def image():
    return synthetic_nuclei((64, 80), n=6, seed=3)[0]


@pytest.mark.parametrize("call, error, words", [
    (lambda img: segment("cells.tif"), TypeError, "not a file name: read 'cells.tif' first"),
    (lambda img: segment_image(img, {"diameter": 30}), TypeError, "options must be a RunOptions"),
    (lambda img: segment_image(np.stack([img] * 3), RunOptions(), model=threshold_model(), planes=[(5,)]),
     ValueError, "plane (5,) is not a slice of this stack"),
    (lambda img: segment_image(img, RunOptions(), model=threshold_model(), planes=[(0,)]), ValueError,
     "the image is a single plane"),
    (lambda img: segment_image(img, RunOptions(), model=threshold_model(), pixel_size=(-1, 1)), ValueError,
     "pixel_size must be two positive numbers"),
    (lambda img: segment_image(img, RunOptions(), model=threshold_model(), pixel_size=0.5), ValueError,
     "pixel_size is (y, x) in µm, two numbers"),
    (lambda img: predict_tiled(threshold_model(), img.astype(np.float32)), TypeError, "model.net"),
    (lambda img: predict_network("nuclei", img), TypeError, "load_model('nuclei') gives one"),
    (lambda img: segment_image(np.stack([img, img]), RunOptions(channel=1), model=threshold_model()), ValueError,
     "if its first axis (2 values) holds the channels, say so (channel_axis=0)"),
    (lambda img: measure_objects(np.zeros((4, 4), np.uint16), img), TypeError, "images maps a name"),
    (lambda img: measure_objects(np.zeros((4, 4), np.uint16), pixel_size=0.5), ValueError, "two numbers"),
    (lambda img: segment_image(np.stack([img] * 3, axis=-1).astype(np.uint16), RunOptions(), model=threshold_model()),
     ValueError, "name it the channel axis and segment the nuclear channel alone (channel_axis=-1 and "
                 "RunOptions(channel=K)"),
    (lambda img: segment_image(img, RunOptions(), model=threshold_model(), progress=5), TypeError,
     "progress must be a function, progress(done, total), not int"),
    (lambda img: segment_image(img, RunOptions(), model=threshold_model(), cancel=True), TypeError,
     "cancel must be a function"),
    (lambda img: predict_tiled(threshold_model().net, img.tolist()), TypeError,
     "image must be an array (numpy, dask, zarr...), not list"),
    (lambda img: matching_accuracy(img[:5, :5] > 9, img > 9), ValueError,
     "the ground truth has shape (5, 5) but the prediction (64, 80)"),
])
def test_a_callers_slip_is_one_clear_line(image, call, error, words):
    with pytest.raises(error) as info:
        call(image)
    assert words in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("field, value, words", [
    ("diameter", -5, "diameter must be a positive number"), ("diameter", "30", "diameter must be a positive number"),
    ("tile_size", -1, "tile_size must be a positive whole number"), ("batch_size", 0, "batch_size must be"),
    ("block_size", 0, "block_size must be a positive whole number"), ("halo", -1, "halo must be a whole number"),
    ("tile_size", 100.5, "whole number"),
])
def test_run_options_refuse_sizes_that_cannot_be(field, value, words):
    with pytest.raises(ValueError, match=words):
        RunOptions(**{field: value})
    assert RunOptions(**{field: None if field != "block_size" else 512})  # None: chosen for the image
    assert RunOptions(tile_size=np.int64(256)).tile_size == 256  # numpy numbers are numbers


def test_a_single_index_names_a_slice_of_a_one_axis_stack(image):
    stack = np.stack([image, image[::-1], image[:, ::-1]])
    model = threshold_model()
    by_index = segment_image(stack, RunOptions(), model=model, planes=[1])
    assert by_index.planes == ((1,),) and np.array_equal(by_index.labels[1], segment(stack[1], model))
    assert segment_image(stack, RunOptions(), model=model, planes=1).planes == ((1,),)  # one slice, named alone


def test_a_model_given_by_name_is_loaded(image):
    assert np.array_equal(segment_image(image, RunOptions(), model="nuclei").labels, segment(image))


@pytest.mark.parametrize("kind", ["folder of the user's", "file", "the zarr being segmented"])
def test_a_store_path_holding_something_else_is_refused_and_kept(image, tmp_path, kind):
    model = threshold_model()
    if kind == "file":
        path = tmp_path / "notes.txt"
        path.write_text("mine")
    elif kind == "folder of the user's":
        path = tmp_path / "results"
        path.mkdir()
        (path / "notes.txt").write_text("mine")
    else:
        path = tmp_path / "in.zarr"
        source = zarr.open_array(str(path), mode="w", shape=image.shape, dtype=image.dtype)
        source[:] = image
        image = source
    before = sorted(os.listdir(path)) if path.is_dir() else path.read_text()
    with pytest.raises(FileExistsError, match="napari-unet-seg did not write: it is kept"):
        segment_image(image, RunOptions(store=str(path)), model=model)
    assert (sorted(os.listdir(path)) if path.is_dir() else path.read_text()) == before


def test_a_store_of_ours_is_replaced_by_a_new_run(image, tmp_path):
    model = threshold_model()
    first = segment_image(image, RunOptions(store=str(tmp_path / "l.zarr")), model=model)
    again = segment_image(image[::-1].copy(), RunOptions(store=str(tmp_path / "l.zarr")), model=model)
    assert np.array_equal(np.asarray(again.labels) > 0, segment(image[::-1].copy(), model) > 0)
    assert first.objects == again.objects


def test_predict_network_guesses_colour_as_segment_does(image):
    model = load_model("nuclei")
    colour = np.stack([image, image // 2, image], axis=-1)
    assert np.array_equal(predict_network(model, colour).labels(model), segment(colour))
