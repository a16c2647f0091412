"""segment() and segment_image(): every shape, stacks plane by plane, progress, the default model, every path agrees."""

import numpy as np
import pytest
from helpers import synthetic_nuclei, threshold_model

from napari_unet_seg import ModelFileError, save_model, segment


def test_2d_stack_rgb_shapes(tiny_model):
    assert segment(np.random.rand(40, 50), tiny_model).shape == (40, 50)
    assert segment(np.random.rand(3, 40, 50), tiny_model).shape == (3, 40, 50)
    assert segment(np.random.rand(2, 3, 40, 50), tiny_model).shape == (2, 3, 40, 50)
    rgb = (np.random.rand(40, 50, 3) * 255).astype(np.uint8)
    assert segment(rgb, tiny_model).shape == (40, 50)


def test_stack_slices_equal_single_plane_results(tiny_model):
    rng = np.random.default_rng(0)
    stack = (rng.random((3, 48, 40)) * 1000).astype(np.uint16)
    together = segment(stack, tiny_model)
    for z in range(3):
        np.testing.assert_array_equal(together[z], segment(stack[z], tiny_model))


def test_progress_spans_all_slices(tiny_model):
    calls = []
    segment(np.random.rand(2, 40, 40), tiny_model, progress=lambda d, t: calls.append((d, t)))
    assert calls[-1][0] == calls[-1][1] and calls[0][1] == calls[-1][1]


def test_a_few_planes_segmented_one_by_one_are_said_to_be_maybe_channels(tiny_model):
    from napari_unet_seg.core.inference.options import RunOptions
    from napari_unet_seg.core.inference.pipeline import segment_image

    def notes(image, **kwargs):
        return [n for n in segment_image(image, RunOptions(), model=tiny_model, **kwargs).notes if "channels" in n]

    two = np.random.rand(2, 40, 50)
    said = notes(two)
    assert len(said) == 1 and said[0].startswith("the image's 2 planes along its first axis were segmented one by one")
    assert notes(np.random.rand(7, 40, 50)) == []  # a real stack
    assert notes(two, planes=((1,),)) == []  # one plane chosen: the user knows what the axis holds
    assert notes(np.random.rand(40, 50)) == []
    # frames of a TCYX hyperstack whose nuclear channel was chosen are frames, as the file says
    movie = np.random.rand(3, 2, 40, 50)
    kept = segment_image(movie, RunOptions(channel=1), model=tiny_model, channel_axis=1, file_axes="TCYX")
    assert not [n for n in kept.notes if "channels" in n]
    chosen = segment_image(movie, RunOptions(channel=1), model=tiny_model, channel_axis=1)  # napari's way: no axes
    assert not [n for n in chosen.notes if "channels" in n]
    assert notes(two, file_axes="CYX")  # a lone CYX says nothing: tifffile writes any (N, H, W) ImageJ file so


def test_a_store_keeps_the_notes_the_run_gave(tiny_model, tmp_path):
    """A batch output read later says what the run said: the channels note too, in the same order."""
    from napari_unet_seg.core.common.labels_zarr import open_labels_zarr
    from napari_unet_seg.core.inference.options import RunOptions
    from napari_unet_seg.core.inference.pipeline import segment_image

    two = np.random.default_rng(3).random((2, 40, 50)).astype(np.float32)
    in_memory = segment_image(two, RunOptions(device="cpu"), model=tiny_model).notes
    stored = segment_image(two, RunOptions(device="cpu", store=str(tmp_path / "two.zarr")), model=tiny_model)
    assert any("planes along its first axis" in n for n in in_memory)
    assert stored.notes == in_memory
    assert open_labels_zarr(tmp_path / "two.zarr").attrs["notes"] == in_memory


def test_default_model_missing_or_present():
    from napari_unet_seg.core.model.registry import builtin_model_paths

    if "nuclei" in builtin_model_paths():
        assert segment(np.zeros((20, 20), np.uint8)).shape == (20, 20)
    else:
        with pytest.raises(ModelFileError, match="nuclei"):
            segment(np.zeros((20, 20), np.uint8))


def test_every_path_gives_segments_result_on_an_enlarged_image(tmp_path):
    from napari_unet_seg.core.inference.options import RunOptions
    from napari_unet_seg.core.inference.pipeline import segment_image, segment_to_zarr

    model = threshold_model()
    model.metadata["object_diameter"] = 20.0
    image, _ = synthetic_nuclei((64, 80), n=8, seed=3)
    reference = segment(image, model, diameter=8.0)  # enlarged 2.5x
    assert reference.max() >= 5
    zarr_labels = segment_to_zarr(image, model, tmp_path / "l.zarr", diameter=8.0, block_size=256)
    np.testing.assert_array_equal(zarr_labels[:], reference)
    save_model(model, tmp_path / "threshold.safetensors")
    result = segment_image(image, RunOptions(model=str(tmp_path / "threshold.safetensors"), diameter=8.0))
    np.testing.assert_array_equal(result.labels, reference)


def test_rgba_images_feed_a_three_channel_model(tmp_path):
    """The alpha channel is not a colour: an RGBA image segments with an RGB model, as before the one pipeline."""
    from napari_unet_seg.core.model.modelfile import new_model

    model = new_model("instances", in_channels=3, depth=2, base_channels=4)
    rgba = np.random.default_rng(0).integers(0, 255, (48, 40, 4), dtype=np.uint8)
    assert segment(rgba, model, device="cpu").shape == (48, 40)


def test_unsupported_store_combinations_are_refused_in_one_line(tmp_path):
    import pytest

    from napari_unet_seg.core.inference.options import RunOptions
    from napari_unet_seg.core.inference.pipeline import segment_image

    image, _ = synthetic_nuclei((32, 32))
    for options in (RunOptions(store=str(tmp_path / "p.zarr"), probabilities=True),
                    RunOptions(store=str(tmp_path / "s.zarr"), output="semantic")):
        with pytest.raises(ValueError, match="written to disk"):
            segment_image(image, options, model=threshold_model())
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("store", [False, True])
def test_a_costly_window_is_raised_said_and_changes_nothing(tmp_path, tiny_model, store):
    """A 64-px window of a depth-2 net keeps 8 px of each: raised, with a note; the labels are the same."""
    from napari_unet_seg.core.inference.options import RunOptions
    from napari_unet_seg.core.inference.pipeline import segment_image, slices_on_their_own_note

    image = np.random.default_rng(2).random((5, 160, 140)).astype(np.float32)  # a stack (2-4 planes: channels?)
    where = {"store": str(tmp_path / "w.zarr")} if store else {}
    small = segment_image(image, RunOptions(device="cpu", tile_size=64, **where), model=tiny_model)
    assert len(small.notes) == 2 and "a 64-px window would have cost" in small.notes[0]
    default = segment_image(image, RunOptions(device="cpu"), model=tiny_model)
    assert default.notes == [slices_on_their_own_note(5)] == small.notes[1:]
    np.testing.assert_array_equal(np.asarray(small.labels), default.labels)
    if store:
        assert small.labels.attrs["notes"] == small.notes


def test_channels_last_read_as_width_are_refused_and_mixed_channels_said(tiny_model):
    """(H, W, 2) is two channels, not H planes of W x 2 px; 3 fluorescence channels fed to a gray model are mixed."""
    from napari_unet_seg.core.inference.options import RunOptions
    from napari_unet_seg.core.inference.pipeline import segment_image

    two = np.random.default_rng(4).random((48, 40, 2)).astype(np.float32)
    with pytest.raises(ValueError, match=r"planes would be 40 x 2 px: its last axis \(2 values\) looks like channels"):
        segment_image(two, RunOptions(device="cpu"), model=tiny_model)
    three = np.random.default_rng(4).random((3, 48, 40)).astype(np.float32)
    notes = segment_image(three, RunOptions(device="cpu"), model=tiny_model, channel_axis=0).notes
    assert [n for n in notes if "mixed into one gray image" in n] == [
        "the image's 3 channels were mixed into one gray image as colour is (30 % of the first, 59 % of the second, "
        "11 % of the third) for a one-channel model: to segment the nuclei of one stain, choose that channel "
        "(its number, from 0)"]
    last = segment_image(np.moveaxis(three, 0, -1), RunOptions(device="cpu"), model=tiny_model, channel_axis=-1)
    np.testing.assert_array_equal(last.labels, segment_image(three, RunOptions(device="cpu"), model=tiny_model,
                                                             channel_axis=0).labels)
    as_planes = segment_image(three, RunOptions(device="cpu"), model=tiny_model).notes  # no channel axis: planes
    assert any("planes along" in n for n in as_planes) and not any("mixed" in n for n in as_planes)


@pytest.mark.parametrize("store", [False, True])
def test_one_channel_of_a_multichannel_or_colour_image_is_segmented_alone(tiny_model, tmp_path, store):
    """The nuclear stain alone equals that stain given as its own image, in memory and on disk, and is recorded."""
    import zarr

    from napari_unet_seg.core.inference.options import RunOptions
    from napari_unet_seg.core.inference.pipeline import segment_image
    from napari_unet_seg.core.inference.provenance import predict_command

    rng = np.random.default_rng(7)
    nuclei, other = rng.random((2, 48, 40)).astype(np.float32)
    two = np.stack([other, nuclei])  # (C, H, W)
    options = RunOptions(device="cpu", precision="fp32", channel=1,
                         store=str(tmp_path / "labels.zarr") if store else None)
    alone = segment_image(nuclei, RunOptions(device="cpu", precision="fp32"), model=tiny_model)
    if store:
        source = zarr.open(str(tmp_path / "two.zarr"), mode="w", shape=two.shape, chunks=(1, 16, 16), dtype="f4")
        source[:] = two
        two = source  # read lazily, one channel only
    result = segment_image(two, options, model=tiny_model, channel_axis=0)
    np.testing.assert_array_equal(np.asarray(result.labels), alone.labels)
    assert not any("mixed" in note for note in result.notes)
    assert result.provenance["settings"]["channel"] == 1 and "--channel 1" in predict_command(result.provenance)
    rgb = np.stack([other, other, nuclei], axis=-1)
    blue = segment_image(rgb, RunOptions(device="cpu", precision="fp32", channel=2), model=tiny_model, rgb=True)
    np.testing.assert_array_equal(blue.labels, alone.labels)


def test_a_channel_that_is_not_there_is_refused_in_one_line(tiny_model):
    from napari_unet_seg.core.inference.options import RunOptions
    from napari_unet_seg.core.inference.pipeline import segment_image

    image = np.zeros((2, 24, 24), np.float32)
    with pytest.raises(ValueError, match=r"channel 2 was asked, but the image has 2 channels \(0 to 1\)"):
        segment_image(image, RunOptions(device="cpu", channel=2), model=tiny_model, channel_axis=0)
    with pytest.raises(ValueError, match="the image has one channel"):
        segment_image(image[0], RunOptions(device="cpu", channel=0), model=tiny_model)
    with pytest.raises(ValueError, match="counted from 0"):
        RunOptions(channel=-1)
    from napari_unet_seg import new_model

    three = new_model(in_channels=3, depth=2, base_channels=4)
    with pytest.raises(ValueError, match="model '.*' takes 3 channels: leave the channel unset"):
        segment_image(np.zeros((24, 24, 3), np.uint8), RunOptions(device="cpu", channel=2), model=three, rgb=True)


def test_progress_over_a_stack_never_runs_backwards():
    """The measuring pass (the whole image, kept when no resizing follows) counted the plane once, and a pass at
    another scale counted it again from 0: a stack's bar went 33 % -> 16 %."""
    from napari_unet_seg._sample_data import nuclei_sample
    from napari_unet_seg.core.model.registry import load_model

    image = np.asarray(nuclei_sample()[0][0])[:160, :160]
    stack = np.stack([image, image[::-1], image[:, ::-1]])
    calls = []
    segment(stack, load_model(), progress=lambda d, t: calls.append((d, t)))
    fractions = [d / t for d, t in calls]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0, calls


def test_a_blank_frame_of_a_movie_is_named_not_the_whole_movie(tiny_model):
    from napari_unet_seg.core.inference.options import RunOptions
    from napari_unet_seg.core.inference.pipeline import segment_image
    from napari_unet_seg.core.inference.prediction import BLANK_NOTE

    movie = np.random.default_rng(0).random((4, 40, 48)).astype(np.float32)
    movie[2] = 0.0
    notes = segment_image(movie, RunOptions(), model=tiny_model).notes
    assert BLANK_NOTE not in notes  # "the image is blank": it is not
    assert any(note.startswith("slice 2 of 4 is blank") for note in notes), notes
    assert BLANK_NOTE in segment_image(np.zeros((3, 40, 48), np.float32), RunOptions(), model=tiny_model).notes
