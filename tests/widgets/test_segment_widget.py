"""The Segment dock widget, driven like a user would: pick, press Segment, wait for the layer."""

from __future__ import annotations

import json
import time

import dask.array as da
import numpy as np
import pytest
import torch
from napari.layers import Image, Labels
from qtpy.QtCore import Qt

from napari_unet_seg import new_model, save_model
from napari_unet_seg._sample_data import nuclei_sample
from napari_unet_seg._widgets import _common
from napari_unet_seg._widgets import segment as segment_module
from napari_unet_seg._widgets import segment_form, segment_pickers
from napari_unet_seg._widgets.segment import SegmentWidget
from napari_unet_seg.core.common.labels_zarr import open_labels_zarr
from napari_unet_seg.core.model.registry import user_model_dir

pytestmark = pytest.mark.gui
TIMEOUT = 60_000


def save_tiny(name: str = "tiny", *, in_channels: int = 1, everywhere: bool = False, classes: int = 0) -> None:
    """A tiny model in the user folder; ``everywhere`` makes it see one object filling each plane.

    ``classes`` > 0 makes a semantic model with that many classes (background included).
    """
    torch.manual_seed(0)
    if classes:
        model = new_model("semantic", num_classes=classes, depth=2, base_channels=4)
    else:
        model = new_model("instances", in_channels=in_channels, depth=2, base_channels=4)
    if everywhere:
        with torch.no_grad():
            model.net.head.weight.zero_()
            model.net.head.bias.fill_(10.0)
    save_model(model, user_model_dir() / name)


@pytest.fixture
def messages(monkeypatch) -> dict[str, list[str]]:
    """Notifications the widget sent, by kind."""
    seen: dict[str, list[str]] = {"error": [], "warning": [], "info": []}
    for module in (segment_module, segment_form, segment_pickers, _common):
        for kind in seen:
            if hasattr(module, f"show_{kind}"):
                monkeypatch.setattr(module, f"show_{kind}", seen[kind].append)
    return seen


@pytest.fixture
def make_widget(make_napari_viewer, qtbot):
    def factory(model: str = "tiny", **kwargs) -> tuple:
        if not (user_model_dir() / f"{model}.safetensors").exists():
            save_tiny(model, **kwargs)
        viewer = make_napari_viewer()
        widget = SegmentWidget(viewer)
        qtbot.addWidget(widget)
        widget.refresh_models()
        widget.model_picker.combo.setCurrentText(model)
        return viewer, widget

    return factory


def segment_and_wait(qtbot, widget: SegmentWidget, layer=None) -> None:
    widget.run(layer)
    qtbot.waitUntil(lambda: widget.worker is None, timeout=TIMEOUT)


def result_layers(viewer) -> list[Labels]:
    return [layer for layer in viewer.layers if isinstance(layer, Labels) and "labels" in layer.name
            and "ground truth" not in layer.name]


def add_sample(viewer) -> Image:
    data, kwargs, _ = nuclei_sample()[0]
    return viewer.add_image(data, scale=(0.5, 0.25), translate=(10.0, -3.0), **kwargs)


def test_image_picker_follows_layers(make_widget):
    viewer, widget = make_widget()
    picker = widget.image_picker
    first = viewer.add_image(np.zeros((8, 8)), name="first")
    viewer.add_labels(np.zeros((8, 8), int), name="not an image")
    assert picker.currentText() == "first"  # an existing image is chosen even when a labels layer is active
    second = viewer.add_image(np.zeros((8, 8)), name="second")
    assert picker.currentText() == "second"
    viewer.layers.selection.active = first
    assert picker.currentText() == "first"
    first.name = "renamed"
    assert picker.currentText() == "renamed" and picker.layer() is first
    viewer.layers.remove(first)
    assert picker.layer() is second


def test_widget_made_after_the_image_picks_it(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((8, 8)), name="img")
    viewer.add_labels(np.zeros((8, 8), int), name="labels")
    widget = SegmentWidget(viewer)
    qtbot.addWidget(widget)
    assert widget.image_picker.currentText() == "img"


def test_large_results_are_detected():
    from napari_unet_seg.core.inference.layout import plane_layout
    from napari_unet_seg.core.inference.options import needs_disk

    gib = 2**30
    assert not needs_disk((512, 512), lazy=False, plane_pixels=512 * 512, available_bytes=8 * gib)
    assert needs_disk((200, 4096, 4096), lazy=False, plane_pixels=4096**2, available_bytes=8 * gib)
    assert needs_disk((10000, 10000), lazy=True, plane_pixels=10000**2, available_bytes=64 * gib)
    assert plane_layout((5, 2, 30, 40), rgb=False, channel_axis=1) == ((5,), 2, 30, 40)
    assert plane_layout((3, 30, 40, 3), rgb=True, channel_axis=None) == ((3,), 3, 30, 40)


def test_sample_gives_labels_layer_that_overlays(make_widget, qtbot, messages):
    viewer, widget = make_widget()
    image = add_sample(viewer)
    assert widget.image_picker.currentText() == "nuclei"
    widget.segment_button.click()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=TIMEOUT)
    (labels,) = result_layers(viewer)
    assert labels.name == "nuclei labels"
    assert labels.data.shape == image.data.shape
    assert np.allclose(labels.scale, image.scale) and np.allclose(labels.translate, image.translate)
    assert "Ran on CPU" in widget.ran_on.text() and "objects)" in widget.status.text()
    assert not messages["error"]


def test_probabilities_and_semantic_output(make_widget, qtbot, messages):
    viewer, widget = make_widget()
    add_sample(viewer)
    widget.settings.probabilities.setChecked(True)
    widget.settings.output.setCurrentIndex(widget.settings.output.findData("semantic"))
    segment_and_wait(qtbot, widget)
    assert viewer.layers["nuclei classes"].data.max() <= 1  # a mask is a class output: not the objects' layer
    probability = viewer.layers["nuclei probability"]
    assert probability.data.dtype == np.float32 and probability.data.shape == (520, 696)
    assert not messages["error"]


def test_semantic_model_gives_classes_and_one_map_per_class(make_widget, qtbot, messages):
    viewer, widget = make_widget("classes", classes=3)
    assert [widget.settings.output.itemData(i) for i in range(widget.settings.output.count())] == ["semantic"]
    viewer.add_image(np.random.default_rng(8).integers(0, 255, (40, 48), dtype=np.uint8), name="tissue")
    widget.settings.probabilities.setChecked(True)
    segment_and_wait(qtbot, widget)
    assert viewer.layers["tissue classes"].data.max() <= 2
    assert viewer.layers["tissue p(class 1)"].data.shape == (40, 48)
    assert viewer.layers["tissue p(class 2)"].data.shape == (40, 48)
    assert not messages["error"]
    # the classes in the colours the scribbles that taught them have (class k: value k + 1), named on hover
    labels, painted = viewer.layers["tissue classes"], viewer.add_labels(np.zeros((2, 2), np.uint8)).colormap
    for k in (1, 2):
        np.testing.assert_allclose(labels.colormap.map(np.array([k]))[0], painted.map(np.array([k + 1]))[0])
    assert labels.colormap.map(np.array([0]))[0][3] == 0  # background clear
    assert list(labels.features["class"]) == ["background", "class 1", "class 2"]


def test_a_class_model_s_output_goes_beside_the_objects_never_over_them(make_widget, qtbot, messages):
    """Objects, then classes of the same image, then objects again: two layers, each replaced only by its kind."""
    save_tiny("tiny")
    viewer, widget = make_widget("classes", classes=3)
    image = viewer.add_image(np.random.default_rng(8).integers(0, 255, (40, 48), dtype=np.uint8), name="tissue")
    widget.model_picker.combo.setCurrentText("tiny")
    segment_and_wait(qtbot, widget, image)
    objects = viewer.layers["tissue labels"]
    before = np.array(objects.data)
    widget.model_picker.combo.setCurrentText("classes")
    segment_and_wait(qtbot, widget, image)
    classes = viewer.layers["tissue classes"]
    assert np.array_equal(objects.data, before) and classes.data.max() <= 2
    widget.model_picker.combo.setCurrentText("tiny")
    segment_and_wait(qtbot, widget, image)
    assert [layer.name for layer in viewer.layers] == ["tissue", "tissue labels", "tissue classes"]
    assert viewer.layers["tissue classes"] is classes and not messages["error"]


def test_auto_storage_sends_huge_results_to_disk(make_widget, qtbot, monkeypatch, tmp_path):
    viewer, widget = make_widget()
    viewer.add_image(da.zeros((64, 64), dtype=np.uint8, chunks=32), name="huge")
    monkeypatch.setattr(segment_form, "needs_disk", lambda *args, **kwargs: True)  # as if 64 x 64 were enormous
    widget.settings.folder.setText(str(tmp_path))
    segment_and_wait(qtbot, widget)
    assert (tmp_path / "huge_labels.zarr").exists()
    assert not isinstance(viewer.layers["huge labels"].data, np.ndarray)


def test_a_result_on_disk_sets_the_brush_to_a_new_object_too(make_widget, qtbot, monkeypatch, tmp_path):
    # a store is not read whole for its largest id: the brush stayed on 1 and a missed nucleus joined object 1
    from helpers import synthetic_nuclei

    viewer, widget = make_widget("full", everywhere=True)
    viewer.add_image(da.from_array(synthetic_nuclei((96, 96), n=6, seed=4)[0], chunks=48), name="scan")  # default brush: 1
    monkeypatch.setattr(segment_form, "needs_disk", lambda *args, **kwargs: True)
    widget.settings.folder.setText(str(tmp_path))
    segment_and_wait(qtbot, widget)
    labels = viewer.layers["scan labels"]
    largest = int(np.asarray(labels.data).max())
    assert not isinstance(labels.data, np.ndarray) and largest >= 1 and labels.selected_label == largest + 1


def test_cancel_mid_run_leaves_no_layer(make_widget, qtbot, messages):
    viewer, widget = make_widget()
    viewer.add_image(np.random.default_rng(0).integers(0, 255, (1024, 1024), dtype=np.uint8), name="big")
    widget.settings.tile_size.setValue(64)
    widget.run()
    qtbot.waitUntil(lambda: widget.status.text().startswith("Network:"), timeout=TIMEOUT)
    widget.cancel_button.click()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=TIMEOUT)
    assert result_layers(viewer) == []
    assert "Cancelled" in widget.status.text()
    assert widget.segment_button.isEnabled() and not widget.cancel_button.isEnabled()
    assert not messages["error"]


def test_cancel_during_a_last_step_that_cannot_stop_adds_nothing(make_widget, qtbot, messages, monkeypatch):
    """Post-processing does not look at Cancel: a result that arrives after it is discarded, and the
    earlier result layer stays as it was."""
    viewer, widget = make_widget()
    viewer.add_image(np.random.default_rng(0).integers(0, 255, (96, 96), dtype=np.uint8), name="img")
    segment_and_wait(qtbot, widget)
    earlier = result_layers(viewer)[0].data.copy()
    run = segment_form.SegmentJob.run

    def slow_last_step(job, progress=None, cancel=None):
        result = run(job, progress=progress, cancel=None)  # as post-processing: never asks
        deadline = time.monotonic() + TIMEOUT / 1000
        while not cancel() and time.monotonic() < deadline:  # the user presses Cancel meanwhile
            time.sleep(0.01)
        return result

    monkeypatch.setattr(segment_form.SegmentJob, "run", slow_last_step)
    viewer.layers["img"].data = viewer.layers["img"].data[::-1].copy()
    widget.run()
    widget.cancel_button.click()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=TIMEOUT)
    assert widget.status.text() == "Cancelled; nothing was added."
    assert len(result_layers(viewer)) == 1 and np.array_equal(result_layers(viewer)[0].data, earlier)


def test_event_loop_stays_responsive(make_widget, qtbot, monkeypatch):
    """While the worker runs, a 50 ms timer keeps ticking.

    Measured up to the moment the result is handed to napari: creating a new
    layer's visuals is napari's own main-thread work (~0.1 s), not ours.
    """
    from qtpy.QtCore import QTimer

    viewer, widget = make_widget()
    viewer.add_image(np.random.default_rng(1).integers(0, 255, (1024, 1024), dtype=np.uint8), name="big")
    widget.settings.tile_size.setValue(128)
    handed_over: list[float] = []
    publish = segment_module.publish_labels
    monkeypatch.setattr(segment_module, "publish_labels",
                        lambda *a, **k: (handed_over.append(time.perf_counter()), publish(*a, **k))[1])
    ticks: list[float] = []
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    timer.start(50)
    try:
        segment_and_wait(qtbot, widget)
    finally:
        timer.stop()
    assert result_layers(viewer) and handed_over
    during = [t for t in ticks if t < handed_over[0]] + handed_over[:1]
    gaps = np.diff(during)
    assert len(gaps) > 3
    assert gaps.max() < 0.3, f"event loop blocked for {gaps.max():.2f} s"


@pytest.mark.parametrize("mode", ["all slices", "current slice only"])
def test_stack_all_or_current_slice(make_widget, qtbot, mode):
    viewer, widget = make_widget("full", everywhere=True)
    stack = viewer.add_image(np.random.default_rng(2).integers(0, 255, (3, 40, 48), dtype=np.uint8),
                             name="stack", scale=(2.0, 0.5, 0.5))
    viewer.dims.set_current_step(0, 1)
    widget.settings.slices.setCurrentText(mode)
    segment_and_wait(qtbot, widget)
    (labels,) = result_layers(viewer)
    assert labels.data.shape == stack.data.shape
    assert np.allclose(labels.scale, stack.scale)
    done = [bool(labels.data[z].any()) for z in range(3)]
    assert done == ([True, True, True] if mode == "all slices" else [False, True, False])


def test_current_slice_runs_fill_the_same_layer(make_widget, qtbot):
    viewer, widget = make_widget("full", everywhere=True)
    viewer.add_image(np.random.default_rng(2).integers(0, 255, (3, 40, 48), dtype=np.uint8), name="stack")
    widget.settings.slices.setCurrentText("current slice only")
    for z in (0, 2):
        viewer.dims.set_current_step(0, z)
        segment_and_wait(qtbot, widget)
        assert widget.status.text().endswith(f" in slice {z}.")  # which one: a 3D view shows no slider
    (labels,) = result_layers(viewer)
    assert [bool(labels.data[z].any()) for z in range(3)] == [True, False, True]


def test_rgb_image(make_widget, qtbot):
    viewer, widget = make_widget()
    rgb = viewer.add_image(np.random.default_rng(3).integers(0, 255, (64, 80, 3), dtype=np.uint8), name="colour")
    assert rgb.rgb
    segment_and_wait(qtbot, widget)
    assert viewer.layers["colour labels"].data.shape == (64, 80)


def test_multichannel_uses_channel_axis(make_widget, qtbot, messages):
    viewer, widget = make_widget("two", in_channels=2)
    viewer.add_image(np.random.default_rng(4).random((2, 48, 64), dtype=np.float32), name="two channels",
                     scale=(1.0, 0.3, 0.3))
    assert widget.settings.channel_axis.currentData() == 0  # guessed from the model's channel count
    segment_and_wait(qtbot, widget)
    labels = viewer.layers["two channels labels"]
    assert labels.data.shape == (48, 64) and np.allclose(labels.scale, (0.3, 0.3))
    assert not messages["error"]


def test_channels_last_are_offered_as_the_channel_axis_and_never_read_as_width(make_widget, qtbot, messages):
    viewer, widget = make_widget("two", in_channels=2)
    last = viewer.add_image(np.random.default_rng(4).random((48, 64, 2), dtype=np.float32), name="last", rgb=False,
                            scale=(0.5, 0.5, 1.0))
    offered = [widget.settings.channel_axis.itemText(i) for i in range(widget.settings.channel_axis.count())]
    assert offered == ["none", "axis 2 (2)"]  # not the 48 rows
    assert widget.settings.channel_axis.currentData() == 2  # guessed: the model takes two channels
    assert widget.settings.planes_hint.isHidden()
    # napari lines layers up by their last axes: (48, 64) labels lie over the layer's 64 x 2, sideways
    assert not widget.settings.channels_row.isHidden()
    assert widget.settings.channels_hint.text() == ("'last' has its channels on axis 2 of 3: napari lines layers up "
                                                    "by their last axes, so its labels would lie over it sideways, "
                                                    "the channels as width.")
    segment_and_wait(qtbot, widget)
    assert viewer.layers["last labels"].data.shape == (48, 64) and not messages["error"]  # right, if not overlaid
    sideways = "napari draws 'last' sideways (its last axis, the channels, as width)"
    assert any(sideways in text and "press 'Put channels first'" in text for text in messages["info"])
    widget.settings.channel_axis.setCurrentIndex(0)  # "none": 48 planes of 64 x 2 px
    hint = ("The last axis (2 values) looks like channels, not width: choose axis 2 as the channel axis and the "
            "nuclear channel.")
    assert not widget.settings.planes_hint.isHidden() and widget.settings.planes_hint.text().startswith(hint)
    assert widget.settings.channels_row.isHidden()
    widget.run()
    assert widget.worker is None and messages["error"][-1].startswith(hint)  # what to do here, in the dock
    widget.settings.channel_axis.setCurrentIndex(1)
    widget.settings.channels_first.click()
    first = viewer.layers["last (channels first)"]
    assert first.data.shape == (2, 48, 64) and np.shares_memory(first.data, last.data)  # not a copy
    assert tuple(first.scale) == (1.0, 0.5, 0.5) and not last.visible
    assert widget.settings.image_picker.layer() is first and widget.settings.channel_axis.currentData() == 0
    assert widget.settings.channels_row.isHidden()
    segment_and_wait(qtbot, widget)
    labels = viewer.layers["last (channels first) labels"]
    assert labels.data.shape == (48, 64) and tuple(labels.scale) == (0.5, 0.5)


def test_channels_last_are_chosen_for_a_one_channel_model_too(make_widget, qtbot, messages):
    """(Y, X, 2) with the nuclei model: 'none' stayed chosen, and Segment refused until the axis was picked."""
    viewer, widget = make_widget()
    viewer.add_image(np.random.default_rng(4).random((48, 64, 2), dtype=np.float32), name="last", rgb=False)
    assert widget.settings.channel_axis.currentData() == 2 and widget.settings.planes_hint.isHidden()
    offered = [widget.settings.channel.itemData(i) for i in range(widget.settings.channel.count())]
    assert offered == [None, 0, 1]  # all mixed (as a colour image's), or the nuclear channel alone
    viewer.add_image(np.random.default_rng(4).random((3, 48, 64), dtype=np.float32), name="stack")
    assert widget.settings.channel_axis.currentData() is None  # 3 planes of 48 x 64: perhaps a stack, asked
    segment_and_wait(qtbot, widget)
    assert not messages["error"]


def test_labels_of_a_z_stack_with_channels_second_lie_over_its_slices_once_the_channels_come_first(
        make_widget, qtbot, messages):
    # napari opens an ImageJ ZCYX file as one (Z, C, Y, X) layer; its (Z, Y, X) labels were drawn over (C, Y, X):
    # moving the C slider changed the labels' slice, and slice 20 showed beside no image at all (newcomer trial)
    from helpers import synthetic_nuclei

    viewer, widget = make_widget("full", everywhere=True)
    planes = [synthetic_nuclei((40, 48), n=3, seed=seed)[0] for seed in range(5)]
    stack = np.stack([np.stack([plane, plane[::-1]]) for plane in planes])  # (5, 2, 40, 48): nuclei, another stain
    zcyx = viewer.add_image(stack, name="zcyx", scale=(2.0, 1.0, 0.5, 0.5), translate=(10.0, 0.0, 1.0, -3.0))
    settings = widget.settings
    settings.channel_axis.setCurrentIndex(settings.channel_axis.findData(1))
    settings.channel.setCurrentIndex(settings.channel.findData(0))
    assert not settings.channels_row.isHidden() and "its channels on axis 1 of 4" in settings.channels_hint.text()
    widget.run()
    assert widget.worker is None and "Put channels first" in messages["error"][-1]
    settings.channels_first.click()
    first = viewer.layers["zcyx (channels first)"]
    assert first.data.shape == (2, 5, 40, 48) and settings.channel.currentData() == 0  # the nuclear channel kept
    segment_and_wait(qtbot, widget)
    labels = viewer.layers["zcyx (channels first) labels"]
    assert labels.data.shape == (5, 40, 48)
    for z in (0, 3):  # voxel (z, 1, 7, 9) lies where it lay, its axes in the new order, over the labels' (z, 7, 9)
        world = first.data_to_world((1, z, 7, 9))
        np.testing.assert_allclose(world, np.asarray(zcyx.data_to_world((z, 1, 7, 9)))[[1, 0, 2, 3]], atol=1e-9)
        np.testing.assert_allclose(labels.world_to_data(world[1:]), (z, 7, 9), atol=1e-9)


def test_a_few_planes_are_said_to_be_maybe_channels_before_and_after_the_run(make_widget, qtbot, messages):
    viewer, widget = make_widget()
    hint = widget.settings.planes_hint
    viewer.add_image(np.random.default_rng(4).random((9, 48, 64), dtype=np.float32), name="stack")
    assert hint.isHidden()  # nine planes: a stack
    viewer.add_image(np.random.default_rng(4).random((2, 48, 64), dtype=np.float32), name="DAPI and GFP")
    assert widget.settings.image_picker.layer().name == "DAPI and GFP"
    assert not hint.isHidden() and hint.text().startswith("2 planes along axis 0, each segmented on its own")
    assert "choose axis 0 as the channel axis and the nuclear channel" in hint.text()
    segment_and_wait(qtbot, widget)
    assert viewer.layers["DAPI and GFP labels"].data.shape == (2, 48, 64)
    assert any("2 planes along its first axis were segmented one by one" in text for text in messages["info"])
    viewer.add_image(np.random.default_rng(4).random((48, 64), dtype=np.float32), name="one plane")
    assert hint.isHidden()
    # four frames of a movie, said to be frames (linked): no "if they are channels", before or after the run
    movie = viewer.add_image(np.random.default_rng(5).random((4, 48, 64), dtype=np.float32), name="movie")
    assert not hint.isHidden()
    widget.settings.link_frames.setChecked(True)
    assert hint.isHidden()
    said = len(messages["info"])
    segment_and_wait(qtbot, widget, movie)
    assert not any("planes along" in text for text in messages["info"][said:])
    widget.settings.link_frames.setChecked(False)
    assert not hint.isHidden()


def test_a_movie_whose_file_names_its_frames_gets_no_maybe_channels_hint(make_widget, tmp_path):
    import tifffile
    from napari.layers._source import layer_source

    viewer, widget = make_widget()
    frames = np.random.default_rng(4).integers(0, 255, (4, 48, 64), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "movie.tif", frames, imagej=True, metadata={"axes": "TYX"})
    tifffile.imwrite(tmp_path / "plain.tif", frames)
    with layer_source(path=str(tmp_path / "movie.tif")):
        viewer.add_image(tifffile.imread(tmp_path / "movie.tif"), name="movie")
    assert widget.settings.planes_hint.isHidden()  # the file says time: no "if they are channels"
    with layer_source(path=str(tmp_path / "plain.tif")):
        viewer.add_image(tifffile.imread(tmp_path / "plain.tif"), name="plain")
    assert not widget.settings.planes_hint.isHidden()  # a file that says nothing: maybe channels


def test_a_hyperstack_whose_file_names_its_channels_opens_with_them_chosen(make_widget, tmp_path):
    # napari opens an ImageJ TCYX file as a 4D stack; the dock segmented its 2 channels as 6 frames (219 objects,
    # a cytoplasm stain among them) where unet-seg refused it until a channel was chosen
    import tifffile
    from napari.layers._source import layer_source

    viewer, widget = make_widget()
    movie = np.random.default_rng(4).integers(0, 255, (3, 2, 48, 64), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "hyper.tif", movie, imagej=True, metadata={"axes": "TCYX"})
    viewer.add_image(movie, name="unnamed")  # a file that says nothing: the dock's own guess, none
    assert widget.settings.channel_axis.currentData() is None
    with layer_source(path=str(tmp_path / "hyper.tif")):
        viewer.add_image(tifffile.imread(tmp_path / "hyper.tif"), name="hyper")
    assert widget.settings.channel_axis.currentData() == 1 and widget.settings.channel.isEnabled()


def test_the_channels_of_a_movie_are_said_before_the_run_and_choosing_them_lets_frames_link(make_widget, qtbot):
    """A (T, C, Y, X) movie was segmented channel by channel, frame links greyed out, without a word."""
    viewer, widget = make_widget()
    settings = widget.settings
    viewer.add_image(np.random.default_rng(4).random((6, 2, 48, 64), dtype=np.float32), name="movie")
    assert not settings.planes_hint.isHidden()
    assert settings.planes_hint.text().startswith("2 planes along axis 1, each segmented on its own")
    assert "choose axis 1 as the channel axis" in settings.planes_hint.text()
    assert "same id across slices can link the frames" in settings.planes_hint.text()
    assert not settings.link_frames.isEnabled()
    settings.channel_axis.setCurrentIndex(settings.channel_axis.findData(1))
    assert settings.planes_hint.isHidden() and settings.link_frames.isEnabled()


def test_a_files_pixel_size_that_napari_ignored_is_offered_and_results_follow_it(make_widget, qtbot, messages,
                                                                                tmp_path):
    """napari's TIFF reader opens an ImageJ file of 0.5 µm pixels at scale 1: tables and exports had no µm."""
    import tifffile
    from helpers import synthetic_nuclei
    from napari.layers._source import layer_source

    viewer, widget = make_widget()
    settings = widget.settings
    image = synthetic_nuclei((48, 64), n=4, seed=2)[0]
    calibrated, plain = tmp_path / "calibrated.tif", tmp_path / "plain.tif"
    tifffile.imwrite(calibrated, image, imagej=True, resolution=(2.0, 2.0), metadata={"unit": "um"})
    tifffile.imwrite(plain, image)
    with layer_source(path=str(plain)):
        viewer.add_image(tifffile.imread(plain), name="plain")
    assert settings.scale_row.isHidden()  # the file states nothing
    with layer_source(path=str(calibrated)):
        layer = viewer.add_image(tifffile.imread(calibrated), name="calibrated")
    assert not settings.scale_row.isHidden()
    assert settings.scale_hint.text().startswith("calibrated.tif states 0.5 x 0.5 µm pixels")
    viewer.layers.remove("plain")
    viewer.reset_view()
    zoom = viewer.camera.zoom
    settings.use_file_scale.click()
    assert tuple(layer.scale) == (0.5, 0.5) and settings.scale_row.isHidden()
    assert viewer.camera.zoom > 1.5 * zoom  # the image, half the size now, still fills the view
    segment_and_wait(qtbot, widget)
    assert tuple(viewer.layers["calibrated labels"].scale) == (0.5, 0.5)  # overlays, and measures in µm
    with layer_source(path=str(plain)):
        viewer.add_image(tifffile.imread(plain), name="plain")
    settings.image_picker.select(viewer.layers["plain"])
    assert settings.scale_row.isHidden()


def test_use_it_after_segment_moves_the_results_with_the_image_and_dates_their_table(make_widget, qtbot, tmp_path):
    """The image took the file's pixel size and its labels stayed at scale 1: they no longer overlaid it, and
    Measurements quietly left out the image's intensities and the µm columns."""
    import tifffile
    from helpers import synthetic_nuclei
    from napari.layers._source import layer_source

    viewer, widget = make_widget()
    image, truth = synthetic_nuclei((48, 64), n=4, seed=2)
    tifffile.imwrite(tmp_path / "calibrated.tif", image, imagej=True, resolution=(2.0, 2.0), metadata={"unit": "um"})
    with layer_source(path=str(tmp_path / "calibrated.tif")):
        layer = viewer.add_image(tifffile.imread(tmp_path / "calibrated.tif"), name="calibrated")
    viewer.add_labels(np.zeros((48, 64), np.uint8), name="my own notes")  # not made by Segment: left alone
    segment_and_wait(qtbot, widget)
    labels = viewer.layers["calibrated labels"]
    labels.data = truth.astype(labels.data.dtype)  # as corrected: objects to measure (the tiny model finds none)
    _, measure = viewer.window.add_plugin_dock_widget("napari-unet-seg", "Measurements")
    measure.labels_picker.setCurrentText("calibrated labels")
    assert measure.run() is not None
    qtbot.waitUntil(lambda: measure.worker is None, timeout=TIMEOUT)
    assert measure.save_button.isEnabled() and "area_um2" not in labels.features
    widget.settings.use_file_scale.click()
    assert tuple(layer.scale) == tuple(labels.scale) == (0.5, 0.5)  # the result overlays the image still
    assert tuple(viewer.layers["my own notes"].scale) == (1, 1)
    assert not measure.save_button.isEnabled()
    assert measure.status.text().startswith("calibrated labels's pixel size changed since it was measured")
    assert measure.run() is not None
    qtbot.waitUntil(lambda: measure.worker is None, timeout=TIMEOUT)
    assert "area_um2" in labels.features and "calibrated_mean" in labels.features


def test_dask_and_multiscale_inputs(make_widget, qtbot):
    viewer, widget = make_widget()
    rng = np.random.default_rng(5)
    lazy = da.from_array(rng.integers(0, 255, (2, 96, 128), dtype=np.uint8), chunks=(1, 48, 64))
    viewer.add_image(lazy, name="lazy")
    segment_and_wait(qtbot, widget)
    assert viewer.layers["lazy labels"].data.shape == (2, 96, 128)
    full = rng.integers(0, 255, (256, 192), dtype=np.uint8)
    viewer.add_image([full, full[::2, ::2], full[::4, ::4]], name="pyramid", multiscale=True)
    segment_and_wait(qtbot, widget)
    assert viewer.layers["pyramid labels"].data.shape == (256, 192)


def test_large_results_go_to_zarr(make_widget, qtbot, tmp_path, messages):
    viewer, widget = make_widget()
    viewer.add_image(np.random.default_rng(6).integers(0, 255, (96, 128), dtype=np.uint8), name="img")
    widget.settings.storage.setCurrentText("zarr on disk")
    widget.settings.folder.setText(str(tmp_path))
    segment_and_wait(qtbot, widget)
    labels = viewer.layers["img labels"]
    assert labels.data.shape == (96, 128) and not isinstance(labels.data, np.ndarray)
    assert (tmp_path / "img_labels.zarr").exists()
    labels.data[5, 6] = 77  # a correction painted on the layer lands in the store's labels (NGFF level 0)
    assert open_labels_zarr(tmp_path / "img_labels.zarr")[5, 6] == 77
    assert not messages["error"]


def test_a_layer_with_a_very_long_name_still_goes_to_zarr(make_widget, qtbot, tmp_path, messages):
    viewer, widget = make_widget()
    name = "20240115_HeLa_H2B-GFP_é" * 14  # 322 characters, some of two bytes: past a file name's 255 bytes
    viewer.add_image(np.random.default_rng(6).integers(0, 255, (40, 48), dtype=np.uint8), name=name)
    widget.settings.storage.setCurrentText("zarr on disk")
    widget.settings.folder.setText(str(tmp_path))
    segment_and_wait(qtbot, widget)
    assert not messages["error"], messages["error"]
    (store,) = tmp_path.glob("*_labels.zarr")
    assert len(store.name.encode()) <= 255 and name.startswith(store.name.removesuffix("_labels.zarr"))
    assert viewer.layers[f"{name} labels"].data.shape == (40, 48)
    # the status names the layer whole, yet wraps: a name without spaces does not widen the dock past the screen
    assert name in widget.status.text()
    assert widget.status.minimumSizeHint().width() < 300


def test_a_layer_name_holding_markup_is_shown_not_obeyed(qtbot):
    from napari_unet_seg._widgets._common import StatusLabel

    label = StatusLabel("Added '<b>bold</b> labels' (3 objects).")
    assert label.textFormat() == Qt.TextFormat.PlainText
    assert label.text() == "Added '<b>bold</b> labels' (3 objects)."


def test_rerun_updates_but_never_overwrites_user_edits(make_widget, qtbot, messages):
    viewer, widget = make_widget("full", everywhere=True)
    viewer.add_image(np.random.default_rng(7).integers(0, 255, (40, 48), dtype=np.uint8), name="cells")
    segment_and_wait(qtbot, widget)
    first = viewer.layers["cells labels"]
    segment_and_wait(qtbot, widget)
    assert result_layers(viewer) == [first]  # updated in place, no duplicate

    first.paint((5, 5), 7)  # the user corrects the result
    segment_and_wait(qtbot, widget)
    assert [layer.name for layer in result_layers(viewer)] == ["cells labels", "cells labels (2)"]
    assert first.data[5, 5] == 7
    assert any("your edits" in text for text in messages["info"])

    # edits made without paint events are noticed too
    second = viewer.layers["cells labels (2)"]
    second.data[0, 0] = 42
    segment_and_wait(qtbot, widget)
    assert len(result_layers(viewer)) == 3 and second.data[0, 0] == 42

    # a name the user gave a result says "keep this one": the next result goes to a new layer
    third = result_layers(viewer)[-1]
    third.name = "keep me"
    kept = np.array(third.data, copy=True)
    segment_and_wait(qtbot, widget)
    assert [layer.name for layer in result_layers(viewer)][-1] == "cells labels (3)"  # the new result
    assert viewer.layers["keep me"].data is third.data
    np.testing.assert_array_equal(third.data, kept)
    assert messages["info"][-1].startswith("The earlier result has your edits or a name you gave it")


def test_wrong_layer_type_and_no_image(make_widget, messages):
    viewer, widget = make_widget()
    widget.run()
    points = viewer.add_points([[1, 1]], name="spots")
    widget.run(points)
    assert widget.worker is None
    assert "no image layer" in messages["error"][0]
    assert "Points layer" in messages["error"][1]
    assert widget.status.text().startswith("Not started: 'spots' is a Points layer")  # not an earlier run's line


def test_channel_mismatch_is_a_notification(make_widget, messages):
    viewer, widget = make_widget("two", in_channels=2)
    viewer.add_image(np.zeros((32, 32), np.uint8), name="gray")
    widget.run()
    assert widget.worker is None
    assert "expects 2 channels" in messages["error"][0]


def test_no_model_is_a_notification(make_napari_viewer, qtbot, messages, monkeypatch):
    from napari_unet_seg._widgets import segment_pickers

    monkeypatch.setattr(segment_pickers, "available_models", dict)  # as if no built-in model were installed
    viewer = make_napari_viewer()
    widget = SegmentWidget(viewer)
    qtbot.addWidget(widget)
    viewer.add_image(np.zeros((32, 32), np.uint8), name="gray")
    widget.run()
    assert widget.worker is None and "No model" in messages["error"][0]


def test_load_from_file_and_refresh(make_widget, tmp_path, messages):
    viewer, widget = make_widget()
    torch.manual_seed(1)
    path = save_model(new_model("instances", depth=2, base_channels=4), tmp_path / "elsewhere")
    assert widget.model_picker.add_file(path)
    assert widget.model_picker.path() == path
    save_tiny("trained later")
    widget.refresh_models()
    names = [widget.model_picker.combo.itemText(i) for i in range(widget.model_picker.combo.count())]
    assert "trained later" in names and widget.model_picker.path() == path
    combo = widget.model_picker.combo  # a narrow dock cuts long names: the tooltips say them whole, with the file
    assert combo.toolTip().startswith(f"{combo.currentText()}\n{path}\n")
    later = names.index("trained later")
    assert combo.itemData(later, Qt.ItemDataRole.ToolTipRole).startswith("trained later\n")
    assert combo.itemData(later, Qt.ItemDataRole.ToolTipRole).endswith("trained later.safetensors")
    bad = tmp_path / "weights.pth"
    bad.write_bytes(b"not a model")
    assert not widget.model_picker.add_file(bad)
    # a file whose weights do not fit its metadata is refused when loaded, not when Segment is pressed
    from safetensors.torch import load_file, save_file

    from napari_unet_seg.core.model.modelfile import read_metadata

    meta = read_metadata(path)
    meta["architecture"]["depth"] = 3
    save_file(load_file(str(path)), str(tmp_path / "deeper.safetensors"),
              metadata={"napari_unet_seg": json.dumps(meta)})
    assert not widget.model_picker.add_file(tmp_path / "deeper.safetensors")
    assert "deeper.safetensors" in messages["error"][-1] and widget.model_picker.path() == path


def test_a_model_cut_short_in_the_folder_is_marked_and_its_reason_given(make_widget, messages):
    viewer, widget = make_widget()
    viewer.add_image(np.zeros((32, 32), np.uint8), name="gray")
    whole = (user_model_dir() / "tiny.safetensors").read_bytes()
    (user_model_dir() / "cut.safetensors").write_bytes(whole[: len(whole) // 2])
    widget.refresh_models()
    combo = widget.model_picker.combo
    index = combo.findText("cut [unreadable]")
    assert index >= 0 and "incomplete" in combo.itemData(index, Qt.ItemDataRole.ToolTipRole)
    combo.setCurrentIndex(index)
    widget.run()
    assert widget.worker is None and "incomplete" in messages["error"][-1]  # why, not only "cannot be read"


def test_worker_errors_become_notifications(make_widget, qtbot, messages, monkeypatch):
    viewer, widget = make_widget()
    viewer.add_image(np.zeros((32, 32), np.uint8), name="gray")

    def out_of_memory(*args, **kwargs):
        raise MemoryError("cuda ran out of memory even with 64px windows one at a time; choose the CPU")

    monkeypatch.setattr(segment_form, "segment_image", out_of_memory)
    segment_and_wait(qtbot, widget)
    assert "ran out of memory" in messages["error"][0]
    assert result_layers(viewer) == []


def test_device_and_memory_settings_start_folded_away(make_widget):
    _, widget = make_widget()
    widget.show()
    advanced = widget.settings.advanced
    assert advanced.isVisible() and not widget.settings.device.isVisible()
    advanced.toggle.click()
    assert widget.settings.device.isVisible() and widget.settings.tile_size.isVisible()
    advanced.toggle.click()
    assert not widget.settings.storage.isVisible()


def test_a_costly_window_is_raised_and_said(make_widget, qtbot, messages):
    """A 64-px window keeps 8 px of each for this net: larger windows run instead, and a notification says so."""
    viewer, widget = make_widget()
    viewer.add_image(np.random.default_rng(2).random((300, 260)).astype(np.float32), name="cells")
    widget.settings.tile_size.setValue(64)
    segment_and_wait(qtbot, widget)
    assert result_layers(viewer) and not messages["error"]
    assert any(text.startswith("A 64-px window would have cost") for text in messages["info"])


def test_a_blank_image_is_said_to_be_blank_not_blamed_on_the_model(make_widget, qtbot, messages):
    from napari_unet_seg.core.inference.prediction import BLANK_NOTE

    viewer, widget = make_widget()
    viewer.add_image(np.zeros((64, 64), np.uint8), name="blank")
    segment_and_wait(qtbot, widget)
    assert BLANK_NOTE[0].upper() + BLANK_NOTE[1:] in messages["info"]
    assert not any(text.startswith("No objects were found") for text in messages["info"])


def test_broken_files_in_the_model_folder_leave_the_good_models_usable(make_napari_viewer, qtbot, messages):
    save_tiny("good")
    folder = user_model_dir()
    (folder / "garbage.safetensors").write_bytes(b"not a model at all")
    good = folder / "good.safetensors"
    (folder / "cut.safetensors").write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    viewer = make_napari_viewer()
    viewer.add_image(np.random.default_rng(0).integers(0, 255, (48, 48), dtype=np.uint8), name="cells")
    _, widget = viewer.window.add_plugin_dock_widget("napari-unet-seg", "Segment")
    picker = widget.model_picker
    names = [picker.combo.itemText(i) for i in range(picker.combo.count())]
    assert {"nuclei", "good", "garbage [unreadable]", "cut [unreadable]"} <= set(names)
    for broken, why in (("garbage", "is not a napari-unet-seg model file"), ("cut", "incomplete")):
        picker.combo.setCurrentIndex(picker.combo.findData(str(folder / f"{broken}.safetensors")))
        widget.run()  # chosen by mistake: said, with the file's own reason, and nothing runs
        assert widget.worker is None and f"{broken}.safetensors" in messages["error"][-1]
        assert why in messages["error"][-1]
    assert len(messages["error"]) == 2
    picker.combo.setCurrentText("good")
    segment_and_wait(qtbot, widget)
    assert not messages["error"][2:] and [layer.name for layer in result_layers(viewer)] == ["cells labels"]


def test_the_dock_shows_every_stage_with_its_own_progress_bar(make_napari_viewer, qtbot, monkeypatch):
    """Reading, the network's windows, post-processing: the dock names each, with a bar of its own (busy
    where the core gives no count), never a frozen line."""
    import threading

    save_tiny()
    viewer = make_napari_viewer()
    viewer.add_image(np.random.default_rng(0).integers(0, 255, (40, 48), dtype=np.uint8), name="cells")
    _, widget = viewer.window.add_plugin_dock_widget("napari-unet-seg", "Segment")
    widget.model_picker.combo.setCurrentText("tiny")
    go = [threading.Event() for _ in range(3)]
    real = segment_form.segment_image

    def staged(image, options, *, progress, cancel, **kwargs):
        go[0].wait(10)
        progress(1, 4)  # a quarter of the network's windows
        go[1].wait(10)
        progress(4, 4)  # the network is done: the labels are being made
        go[2].wait(10)
        return real(image, options, progress=None, cancel=cancel, **kwargs)

    monkeypatch.setattr(segment_form, "segment_image", staged)
    bar = widget.progress_bar
    assert widget.isAncestorOf(bar)  # in the dock itself: napari's activity panel starts folded away
    widget.run()
    assert widget.status.text().startswith("Preparing 'cells' (reading the image, measuring its objects)…")
    assert bar.maximum() == 0  # busy: reading and sizing report no count
    go[0].set()
    qtbot.waitUntil(lambda: widget.status.text().startswith("Network: 25 % of 'cells'"), timeout=TIMEOUT)
    assert (bar.maximum(), bar.value()) == (100, 25)
    go[1].set()
    qtbot.waitUntil(lambda: widget.status.text().startswith("Post-processing 'cells'"), timeout=TIMEOUT)
    assert bar.maximum() == 0
    qtbot.wait(1100)  # the line keeps counting the seconds while the core says nothing
    assert "so far" in widget.status.text() and widget.worker is not None
    go[2].set()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=TIMEOUT)
    assert widget.status.text().startswith("Added 'cells labels'") and (bar.maximum(), bar.value()) == (100, 100)


def test_one_channel_of_a_multichannel_or_colour_layer_is_segmented_alone(make_widget, qtbot, messages):
    """DAPI beside a bright GFP: the nuclear channel chosen, the result is DAPI's own, and the run records it."""
    from dataclasses import replace

    from helpers import synthetic_nuclei

    from napari_unet_seg.core.inference.pipeline import segment_image

    viewer, widget = make_widget()
    settings = widget.settings
    dapi, _ = synthetic_nuclei((48, 64), n=5, seed=6)
    gfp = np.full_like(dapi, dapi.max())
    viewer.add_image(np.stack([gfp, dapi]), name="DAPI and GFP")
    assert not settings.channel.isEnabled()  # no channel axis chosen yet: planes
    settings.channel_axis.setCurrentIndex(settings.channel_axis.findData(0))
    assert [settings.channel.itemText(i) for i in range(settings.channel.count())] == ["all, mixed", "0", "1"]
    settings.channel.setCurrentIndex(settings.channel.findData(1))
    segment_and_wait(qtbot, widget)
    labels = viewer.layers["DAPI and GFP labels"]
    options = widget.settings.job(viewer.layers["DAPI and GFP"]).options
    expected = segment_image(dapi, replace(options, channel=None, store=None))
    np.testing.assert_array_equal(labels.data, expected.labels)
    assert labels.metadata["provenance"]["settings"]["channel"] == 1 and not messages["error"]
    viewer.add_image(np.stack([gfp, dapi]), name="next field")  # the next image of the experiment: choice kept
    assert settings.channel_axis.currentData() == 0 and settings.channel.currentData() == 1
    viewer.add_image(np.stack([gfp, gfp, dapi], axis=-1).astype(np.uint8), name="colour", rgb=True)
    assert settings.channel.itemText(3) == "2 (blue)" and settings.channel.currentIndex() == 0


def test_a_slice_of_a_linked_movie_segmented_again_is_linked_to_its_neighbours(make_widget, qtbot, messages):
    """"Current slice only" on a layer whose frames were linked put fresh, unlinked ids in that frame."""
    from helpers import drifting_disks, threshold_model

    save_model(threshold_model(), user_model_dir() / "disks.safetensors")
    viewer, widget = make_widget("disks")
    movie = viewer.add_image(drifting_disks(), name="movie")
    widget.settings.link_frames.setChecked(True)
    segment_and_wait(qtbot, widget, movie)
    layer = viewer.layers["movie labels"]
    linked = np.array(layer.data, copy=True)
    track = {int(linked[t, 20 + 2 * t, 20 + 2 * t]) for t in range(5)}
    assert len(track) == 1 and 0 not in track  # one disk, one id through the movie
    viewer.dims.set_current_step(0, 3)
    widget.settings.slices.setCurrentIndex(1)  # current slice only: frame 3 anew
    segment_and_wait(qtbot, widget, movie)
    assert viewer.layers["movie labels"] is layer or len(result_layers(viewer)) == 1
    np.testing.assert_array_equal(layer.data, linked)  # frame 3 linked again: the same ids as the linked run
    assert layer.metadata["provenance"]["settings"]["link_frames"]
    assert any("linked again" in text for text in messages["info"])


def test_settings_the_run_would_refuse_are_refused_before_it_and_failures_keep_their_reason(
        make_widget, messages, tmp_path, monkeypatch, qtbot):
    """fp16 on the CPU, a diameter beyond the model's range, a file as the zarr folder: "Not started" with the
    reason, before any work; a diameter that makes the run many times longer is said first; a run that fails
    says why in the status line (the notification is cut short and fades), not a bare "Failed."."""
    torch.manual_seed(0)
    model = new_model("instances", depth=2, base_channels=4)
    model.metadata["object_diameter"] = 20.0
    save_model(model, user_model_dir() / "sized")
    viewer, widget = make_widget("sized")
    viewer.add_image(np.zeros((32, 32), np.uint8), name="cells")
    segment_and_wait(qtbot, widget)
    assert not widget.ran_on.isHidden()  # "Ran on CPU in fp32 · ..."
    widget.settings.device.setCurrentText("cpu")
    widget.settings.precision.setCurrentText("fp16")
    widget.run()
    assert widget.worker is None and widget.ran_on.isHidden()  # not read as this press's run
    assert widget.status.text() == "Not started: fp16 is not supported on the CPU; use bf16 or fp32"
    widget.settings.precision.setCurrentText("auto")
    widget.settings.diameter.setValue(0.5)
    widget.run()
    assert widget.worker is None and widget.status.text().startswith(
        "Not started: an object diameter of 0.5 px would enlarge the image 40x; give at least 2.5 px")
    widget.settings.diameter.setValue(5)
    widget.settings.storage.setCurrentText("zarr on disk")
    (tmp_path / "a file.tif").write_bytes(b"mine")
    widget.settings.folder.setText(str(tmp_path / "a file.tif"))
    widget.run()
    assert widget.worker is None and widget.status.text() == (
        f"Not started: the zarr folder {tmp_path / 'a file.tif'} is a file: choose a folder for the labels store")
    assert (tmp_path / "a file.tif").read_bytes() == b"mine"
    assert not messages["warning"]  # nothing ran: no warning of a long run yet
    widget.settings.storage.setCurrentText("in memory")

    def failing(*args, **kwargs):
        raise ValueError("the image is unreadable\nsecond line")

    monkeypatch.setattr(segment_form, "segment_image", failing)
    segment_and_wait(qtbot, widget)
    assert messages["warning"] == ["An object diameter of 5 px enlarges the image 4.0x for the network (this model's "
                                   "objects are 20 px across): this run takes about 16x as long as at the image's "
                                   "own size."]
    assert widget.status.text() == "Failed: the image is unreadable"


def test_a_bioimage_io_package_loaded_from_file_is_imported_into_the_model_folder(make_widget, qtbot, tmp_path,
                                                                                   monkeypatch):
    """Loading a package answered only "turn it into one with `unet-seg import-model ...`": a biologist had to
    leave napari for it."""
    pytest.importorskip("bioimageio.spec")
    from napari_unet_seg._widgets import segment_pickers
    from napari_unet_seg.cli.main import main
    from napari_unet_seg.core.model.modelfile import load_model_file

    said = []
    monkeypatch.setattr(segment_pickers, "show_info", said.append)
    viewer, widget = make_widget()
    source = user_model_dir() / "tiny.safetensors"
    assert main(["export-model", str(source), "-o", str(tmp_path / "cells-bioimageio.zip")]) == 0
    assert widget.model_picker.add_file(tmp_path / "cells-bioimageio.zip")
    chosen = widget.model_picker.path()
    assert chosen == user_model_dir() / "cells-bioimageio.safetensors" and chosen.is_file()
    assert said[0].startswith("Imported 'cells-bioimageio' from cells-bioimageio.zip into your model folder")
    assert load_model_file(chosen).in_channels == load_model_file(source).in_channels
    assert widget.model_picker.add_file(tmp_path / "cells-bioimageio.zip")  # again: under a name of its own
    assert widget.model_picker.path() == user_model_dir() / "cells-bioimageio-2.safetensors"


def test_after_segment_the_brush_paints_a_new_object_not_object_one(make_widget, qtbot, messages):
    # the default selected label 1 made a missed nucleus painted after Segment part of object 1
    viewer, widget = make_widget("full", everywhere=True)
    viewer.add_image(np.random.default_rng(0).random((2, 64, 64)).astype(np.float32), name="cells")
    segment_and_wait(qtbot, widget)
    (labels,) = result_layers(viewer)
    assert labels.data.max() >= 1 and labels.selected_label == labels.data.max() + 1
    # what was found, in the figure the object size setting takes: a start when "auto" gets it wrong
    assert widget.ran_on.text().endswith("objects about 72 px across (object size: auto)")
    labels.selected_label = 1
    segment_and_wait(qtbot, widget)  # the same layer updated: a new id again
    assert result_layers(viewer) == [labels] and labels.selected_label == labels.data.max() + 1


def test_an_image_napari_opened_as_labels_is_named_when_nothing_else_can_be_segmented(make_widget, messages):
    # napari opens 32-bit integer TIFFs as Labels: "There is no image layer" left the user wondering where it went
    viewer, widget = make_widget()
    viewer.add_labels(np.zeros((40, 50), np.int32), name="painted")  # labels: not named
    counts = np.random.default_rng(0).integers(0, 4000, (40, 50), dtype=np.int32)
    viewer.add_labels(counts, name="a_i32")
    widget.run()
    assert widget.worker is None
    assert "'a_i32' is an image napari opened as a Labels layer" in messages["error"][-1]
    assert "Convert to Image" in widget.status.text()


def test_an_ome_zarr_napari_opened_at_scale_1_has_its_pixel_size_offered(make_widget, tmp_path):
    # viewer.open(path) on an OME-Zarr uses napari's own reader, at scale 1: the dock said nothing, and the
    # result and its measurements were in pixels while unet-seg predict gave micrometres
    from helpers import synthetic_nuclei
    from napari.layers._source import layer_source

    from napari_unet_seg.core.export import write_ome_zarr

    viewer, widget = make_widget()
    image, labels = synthetic_nuclei((48, 64), n=4, seed=2)
    store = write_ome_zarr(tmp_path / "scan.ome.zarr", labels, image, pixel_size=(0.33, 0.33))
    with layer_source(path=str(store)):
        viewer.add_image(image, name="scan.ome")
    assert not widget.settings.scale_row.isHidden()
    assert widget.settings.scale_hint.text().startswith("scan.ome.zarr states 0.33 x 0.33 µm pixels")


def test_channels_put_first_stay_unread_for_dask_and_pyramid_layers(make_napari_viewer):
    from napari_unet_seg._widgets.segment_layers import add_channels_first

    viewer = make_napari_viewer()
    lazy = viewer.add_image(da.zeros((3, 2, 64, 80), dtype=np.uint16, chunks=(1, 1, 32, 32)), name="lazy")
    moved = add_channels_first(viewer, lazy, 1)
    assert isinstance(moved.data, da.Array) and moved.data.shape == (2, 3, 64, 80)
    levels = [np.arange(4 * 2 * 64 * 64, dtype=np.uint16).reshape(4, 2, 64, 64), np.zeros((4, 2, 32, 32), np.uint16)]
    pyramid = viewer.add_image(levels, name="pyramid", multiscale=True)
    moved = add_channels_first(viewer, pyramid, -3)
    assert moved.multiscale and [level.shape for level in moved.data] == [(2, 4, 64, 64), (2, 4, 32, 32)]
    np.testing.assert_array_equal(moved.data[0][1, 3], levels[0][3, 1])


def test_a_result_of_another_model_goes_to_a_new_layer_and_the_earlier_one_is_kept(make_widget, qtbot, messages):
    # a Segment dock reopened on the model in use replaced the untouched result of the model picked before, in
    # place: two models' results were mixed up in one analysis without a word (newcomer trial)
    viewer, widget = make_widget()
    save_tiny("other", everywhere=True)
    viewer.add_image(np.random.default_rng(0).random((64, 64)).astype(np.float32), name="cells")
    segment_and_wait(qtbot, widget)
    (first,) = result_layers(viewer)
    kept = np.asarray(first.data).copy()
    segment_and_wait(qtbot, widget)  # the same model again: the same layer, updated
    assert result_layers(viewer) == [first]
    widget.refresh_models()
    widget.model_picker.combo.setCurrentText("other")
    segment_and_wait(qtbot, widget)
    assert [layer.name for layer in result_layers(viewer)] == ["cells labels", "cells labels (2)"]
    np.testing.assert_array_equal(first.data, kept)
    assert any("made by another model, so this one, by 'other', went to a new layer 'cells labels (2)'" in text
               for text in messages["info"])


def test_a_zarr_folder_that_cannot_be_written_is_said_before_the_run(make_widget, qtbot, monkeypatch, tmp_path,
                                                                      messages):
    # a read-only or full zarr folder failed after the whole run, as "[Errno 30] ... .b15_labels.zarr.13563.partial"
    viewer, widget = make_widget()
    viewer.add_image(da.zeros((64, 64), dtype=np.uint8, chunks=32), name="huge")
    monkeypatch.setattr(segment_form, "needs_disk", lambda *args, **kwargs: True)
    (tmp_path / "a file").write_text("")
    widget.settings.folder.setText(str(tmp_path / "a file" / "labels"))  # no folder can be made there
    widget.run()
    assert widget.worker is None
    assert messages["error"][-1].startswith(f"the zarr folder: cannot write to {tmp_path / 'a file' / 'labels'}: ")
    assert messages["error"][-1].endswith("; choose another folder") and "Errno" not in messages["error"][-1]


def test_a_z_stacks_step_between_slices_is_offered_with_its_pixel_size(make_widget, qtbot, tmp_path, messages):
    # "Use it" set the 0.2 µm pixels of a z-stack and left its slices 1 apart: 3D views were squashed 2.5x
    import tifffile
    from helpers import synthetic_nuclei
    from napari.layers._source import layer_source

    viewer, widget = make_widget()
    planes = np.stack([synthetic_nuclei((48, 64), n=4, seed=s)[0] for s in range(6)])
    tifffile.imwrite(tmp_path / "z.tif", planes, imagej=True, resolution=(5.0, 5.0),
                     metadata={"axes": "ZYX", "spacing": 0.5, "unit": "um"})
    with layer_source(path=str(tmp_path / "z.tif")):
        layer = viewer.add_image(tifffile.imread(tmp_path / "z.tif"), name="z")
    assert widget.settings.scale_hint.text().startswith("z.tif states 0.2 x 0.2 µm pixels, in slices 0.5 µm apart")
    widget.settings.use_file_scale.click()
    np.testing.assert_allclose(layer.scale, (0.5, 0.2, 0.2))
    assert any("pixel size 0.2 x 0.2 µm, slices 0.5 µm apart, from its file" in text for text in messages["info"])


def test_a_z_stack_of_channels_keeps_its_calibration_offered_once_its_channels_come_first(make_widget, tmp_path,
                                                                                         messages):
    """ZCYX: 'Use it' offered no z step (only 3D layers had one), and the layer with its channels put first lost
    the offer altogether (napari records no file for a layer added by code)."""
    import tifffile
    from helpers import synthetic_nuclei
    from napari.layers._source import layer_source

    viewer, widget = make_widget()
    planes = np.stack([synthetic_nuclei((48, 64), n=4, seed=s)[0] for s in range(5)])
    hyperstack = np.stack([planes, planes[::-1]], axis=1)  # (Z 5, C 2, Y, X)
    tifffile.imwrite(tmp_path / "zc.tif", hyperstack, imagej=True, resolution=(5.0, 5.0),
                     metadata={"axes": "ZCYX", "spacing": 0.5, "unit": "um"})
    with layer_source(path=str(tmp_path / "zc.tif")):
        original = viewer.add_image(tifffile.imread(tmp_path / "zc.tif"), name="zc")
    assert widget.settings.channel_axis.currentData() == 1  # the file names it C
    assert widget.settings.scale_hint.text().startswith("zc.tif states 0.2 x 0.2 µm pixels, in slices 0.5 µm apart")
    widget.settings.channels_first.click()
    moved = viewer.layers["zc (channels first)"]
    assert widget.settings.image_picker.layer() is moved and moved.data.shape == (2, 5, 48, 64)
    assert not widget.settings.scale_row.isHidden()  # still offered for the layer the dock now segments
    assert widget.settings.scale_hint.text().startswith("zc.tif states 0.2 x 0.2 µm pixels, in slices 0.5 µm apart")
    assert widget.settings.channel_axis.currentData() == 0  # its file's C, now first
    # the hidden original's 5 slices still set the first slider's steps: said, with what to do
    assert any("the first slider runs past this layer's 2 channels (empty there): remove 'zc'" in text
               for text in messages["info"])
    widget.settings.use_file_scale.click()
    np.testing.assert_allclose(moved.scale, (1.0, 0.5, 0.2, 0.2))  # Z is its second axis now, C stays 1
    np.testing.assert_allclose(original.scale, (1.0, 1.0, 1.0, 1.0))  # the hidden original is left as it was
