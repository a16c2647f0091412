"""Train reads an image as Segment read it, and shows its preview where the image lies.

A (C, Y, X) or channels-last layer segmented on one channel must be trained on
that channel, not on the plane on screen (the other stain); a colour image
segmented on one colour, on that colour. Results and previews overlay images
that are scaled, moved, rotated or sheared.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import quick_training, synthetic_nuclei, watch_previews
from napari_unet_seg._widgets import segment as segment_module
from napari_unet_seg.core.model.modelfile import new_model, save_model
from napari_unet_seg.core.model.registry import user_model_dir

pytestmark = pytest.mark.gui
TIMEOUT = 60_000


@pytest.fixture
def viewer(make_napari_viewer, monkeypatch):
    torch.manual_seed(0)
    if not (user_model_dir() / "tiny.safetensors").exists():
        save_model(new_model("instances", depth=2, base_channels=4), user_model_dir() / "tiny")
    return make_napari_viewer()


def _segment(viewer, qtbot, layer, *, channel_axis=None, channel=None):
    _, widget = viewer.window.add_plugin_dock_widget("napari-unet-seg", "Segment")
    widget.refresh_models()
    widget.model_picker.combo.setCurrentText("tiny")
    widget.image_picker.select(layer)
    settings = widget.settings
    if channel_axis is not None:
        settings.channel_axis.setCurrentIndex(settings.channel_axis.findData(channel_axis))
    if channel is not None:
        settings.channel.setCurrentIndex(settings.channel.findData(channel))
    widget.run(layer)
    qtbot.waitUntil(lambda: widget.worker is None, timeout=TIMEOUT)
    labels = viewer.layers[f"{layer.name} labels"]
    labels.paint((3, 3), 1, refresh=True)  # a correction: Train refuses the result as it came out
    return labels


def _train_dock(viewer, tmp_path, image, labels, steps=2):
    _, widget = viewer.window.add_plugin_dock_widget("napari-unet-seg", "Train")
    quick_training(widget, tmp_path / "project", steps, {"crop_size": 32, "batch_size": 1, "preview_every": 1})
    widget.settings.image_box.setCurrentText(image.name)
    widget.settings.labels_box.setCurrentText(labels.name)
    return widget


def _job(widget):
    return widget.settings.job({}, preview_box=lambda: (0, 1, 0, 1))


@pytest.mark.parametrize("layout", ["channels first", "channels last"])
def test_a_channel_segmented_alone_is_the_channel_trained_on(viewer, qtbot, tmp_path, layout):
    dapi, _ = synthetic_nuclei((48, 64), n=5, seed=6)
    cyto = np.full_like(dapi, dapi.max()) - dapi  # another stain, brightest where the nuclei are not
    axis = 0 if layout == "channels first" else 2
    image = viewer.add_image(np.stack([cyto, dapi], axis=axis), name="two stains")
    labels = _segment(viewer, qtbot, image, channel_axis=axis, channel=1)
    widget = _train_dock(viewer, tmp_path, image, labels)
    assert widget.status.text() == "ready" or "overlay" not in widget.status.text()  # they do overlay
    (pair,) = _job(widget).pairs
    np.testing.assert_array_equal(pair.image, dapi)  # the nuclear stain Segment read, not plane 0 (cytoplasm)
    assert not pair.rgb and pair.name == "two stains (channel 1)"
    np.testing.assert_array_equal(pair.labels, labels.data)


def test_a_colour_segmented_alone_is_the_colour_trained_on(viewer, qtbot, tmp_path):
    dapi, _ = synthetic_nuclei((48, 64), n=5, seed=6)
    blue = (255 * dapi / dapi.max()).astype(np.uint8)
    image = viewer.add_image(np.stack([255 - blue, 255 - blue, blue], axis=-1), name="colour", rgb=True)
    labels = _segment(viewer, qtbot, image, channel=2)
    (pair,) = _job(_train_dock(viewer, tmp_path, image, labels)).pairs
    np.testing.assert_array_equal(pair.image, blue)
    assert not pair.rgb


def test_labels_painted_by_hand_over_a_stack_still_train_on_the_plane_on_screen(viewer, tmp_path):
    planes = [synthetic_nuclei((48, 64), seed=seed) for seed in range(2)]
    image = viewer.add_image(np.stack([p for p, _ in planes]), name="z")
    labels = viewer.add_labels(np.stack([lab for _, lab in planes]), name="z labels")
    viewer.dims.set_point(0, 1)
    (pair,) = _job(_train_dock(viewer, tmp_path, image, labels)).pairs
    np.testing.assert_array_equal(pair.image, planes[1][0])
    assert pair.name == "z [1]"


@pytest.mark.parametrize("geometry", [
    {"rotate": 30},
    {"shear": [0.3]},
    {"affine": [[0.9, 0.2, 50.0], [-0.2, 0.9, 10.0], [0.0, 0.0, 1.0]], "scale": (0.5, 0.5), "translate": (4, -3)},
])
def test_the_result_and_the_training_preview_overlay_a_moved_image(viewer, qtbot, tmp_path, geometry):
    image_data, _ = synthetic_nuclei((64, 64), n=6, seed=1)
    image = viewer.add_image(image_data, name="moved", **geometry)
    labels = _segment(viewer, qtbot, image)
    for point in ((150.0, 50.0), (-20.0, 33.0)):
        np.testing.assert_allclose(labels.world_to_data(point), image.world_to_data(point), atol=1e-9)
    widget = _train_dock(viewer, tmp_path, image, labels)
    previews = watch_previews(viewer)
    widget.start()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=TIMEOUT)
    (preview,) = previews
    assert preview.data.shape == (64, 64)
    for point in ((150.0, 50.0), (-20.0, 33.0)):
        np.testing.assert_allclose(preview.world_to_data(point), image.world_to_data(point), atol=1e-9)


def test_the_training_preview_lies_on_the_slice_trained_on(viewer, qtbot, tmp_path):
    planes = [synthetic_nuclei((48, 64), seed=seed) for seed in range(3)]
    geometry = {"scale": (2.0, 0.5, 0.5), "translate": (5.0, 1.0, -2.0)}
    image = viewer.add_image(np.stack([p for p, _ in planes]), name="stack", **geometry)
    labels = viewer.add_labels(np.stack([lab for _, lab in planes]), name="stack labels", **geometry)
    viewer.dims.set_point(0, 5.0 + 2.0 * 2)  # slice 2 on screen
    widget = _train_dock(viewer, tmp_path, image, labels)
    previews = watch_previews(viewer)
    widget.start()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=TIMEOUT)
    (preview,) = previews
    assert preview.data.shape == (1, 48, 64)  # shown on that slice only
    world = image.data_to_world((2, 10, 20))
    np.testing.assert_allclose(preview.world_to_data(world), (0, 10, 20), atol=1e-9)


def test_a_result_of_another_shape_goes_to_a_new_layer_and_says_why(viewer, qtbot, monkeypatch):
    said = []
    monkeypatch.setattr(segment_module, "show_info", said.append)
    dapi, _ = synthetic_nuclei((48, 64), n=5, seed=6)
    image = viewer.add_image(np.stack([dapi, dapi]), name="two")
    _, widget = viewer.window.add_plugin_dock_widget("napari-unet-seg", "Segment")
    widget.refresh_models()
    widget.model_picker.combo.setCurrentText("tiny")
    settings = widget.settings
    settings.channel_axis.setCurrentIndex(settings.channel_axis.findData(None))  # first as a stack of planes
    widget.run(image)
    qtbot.waitUntil(lambda: widget.worker is None, timeout=TIMEOUT)
    settings.channel_axis.setCurrentIndex(settings.channel_axis.findData(0))
    settings.channel.setCurrentIndex(settings.channel.findData(0))
    widget.run(image)
    qtbot.waitUntil(lambda: widget.worker is None, timeout=TIMEOUT)
    assert viewer.layers["two labels"].data.shape == (2, 48, 64)  # kept
    assert viewer.layers["two labels (2)"].data.shape == (48, 64)
    assert ("This result's shape (48 × 64) differs from the earlier result's, so it went to a new layer "
            "'two labels (2)'; the earlier one is kept.") in said
    assert not any("your edits" in text for text in said)


def test_a_slice_of_a_stack_left_as_segment_made_it_is_refused_and_the_corrected_one_named(viewer, qtbot, tmp_path):
    planes = [synthetic_nuclei((48, 64), seed=seed)[0] for seed in range(3)]
    image = viewer.add_image(np.stack(planes), name="zs")
    _, segment = viewer.window.add_plugin_dock_widget("napari-unet-seg", "Segment")
    segment.refresh_models()
    segment.model_picker.combo.setCurrentText("tiny")
    segment.run(image)
    qtbot.waitUntil(lambda: segment.worker is None, timeout=TIMEOUT)
    labels = viewer.layers["zs labels"]
    viewer.dims.set_point(0, 2)
    labels.paint((2, 10, 10), 5, refresh=True)  # a correction on slice 2 only
    viewer.dims.set_point(0, 0)  # slice 0 on screen: as Segment made it
    widget = _train_dock(viewer, tmp_path, image, labels)
    with pytest.raises(ValueError, match=r"^slice 0 of 'zs labels' is Segment's result exactly as it came out; you "
                                         r"corrected slice 2: type it in 'stack slices'$"):
        _job(widget)
    widget.settings.slices.setText("2")
    (pair,) = _job(widget).pairs
    assert pair.plane == (2,) and pair.labels[10, 10] == 5


def test_a_second_runs_preview_moves_to_the_image_and_slice_it_trains_on(viewer, qtbot, tmp_path):
    """Each run's preview lies over the image it trains on, of its size (not "training preview 2" beside the last)."""
    planes = [synthetic_nuclei((48, 64), seed=0), synthetic_nuclei((56, 72), seed=1)]
    first = viewer.add_image(planes[0][0], name="first")
    first_labels = viewer.add_labels(planes[0][1], name="first labels")
    moved = viewer.add_image(planes[1][0], name="moved", scale=(0.5, 0.5), translate=(300, 300), rotate=10)
    moved_labels = viewer.add_labels(planes[1][1], name="moved labels", scale=(0.5, 0.5), translate=(300, 300),
                                     rotate=10)
    widget = _train_dock(viewer, tmp_path, first, first_labels)
    previews = watch_previews(viewer)
    widget.start()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=TIMEOUT)
    widget.settings.image_box.setCurrentText(moved.name)
    widget.settings.labels_box.setCurrentText(moved_labels.name)
    widget.start()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=TIMEOUT)
    assert [layer.name for layer in previews] == ["training preview"] * 2  # the last run's was removed
    preview = previews[1]
    assert preview.data.shape == (56, 72)
    assert not any(layer.name.startswith("training preview") for layer in viewer.layers)
    for point in ((310.0, 305.0), (290.0, 330.0)):
        np.testing.assert_allclose(preview.world_to_data(point), moved.world_to_data(point), atol=1e-9)


def test_a_train_dock_opened_before_segment_finds_the_channels_last_labels_overlay(viewer, qtbot, tmp_path):
    dapi, _ = synthetic_nuclei((48, 64), n=5, seed=6)
    image = viewer.add_image(np.stack([np.full_like(dapi, dapi.max()) - dapi, dapi], axis=-1), name="yxc")
    _, train = viewer.window.add_plugin_dock_widget("napari-unet-seg", "Train")
    labels = _segment(viewer, qtbot, image, channel_axis=2, channel=1)
    viewer.layers.selection.active = labels
    assert "do not overlay" not in train.status.text()
    train.settings.image_box.setCurrentText(image.name)
    train.settings.labels_box.setCurrentText(labels.name)
    assert "do not overlay" not in train.status.text()


def test_cells_offer_the_channels_of_a_channels_last_layer_the_nuclear_one_last(viewer, qtbot):
    dapi, _ = synthetic_nuclei((48, 64), n=5, seed=6)
    cyto = np.full_like(dapi, dapi.max()) - dapi
    image = viewer.add_image(np.stack([cyto, dapi], axis=-1), name="yxc")
    viewer.add_image(np.zeros_like(dapi), name="elsewhere", translate=(500, 0))  # same size, another place
    labels = _segment(viewer, qtbot, image, channel_axis=2, channel=1)
    _, cells = viewer.window.add_plugin_dock_widget("napari-unet-seg", "Cells from nuclei")
    cells.nuclei_picker.setCurrentText(labels.name)
    texts = [cells.stain_picker.itemText(i) for i in range(cells.stain_picker.count())]
    assert texts.index("yxc · channel 0") < texts.index("yxc · channel 1")  # the nuclei's own channel after
    assert cells.stain_picker.currentText() == "yxc · channel 0"
    np.testing.assert_array_equal(cells.stain_data(), cyto)
    from napari_unet_seg._widgets.cells import NO_STAIN

    viewer.layers.remove(image)  # only a stain lying elsewhere left: offered, not chosen
    texts = [cells.stain_picker.itemText(i) for i in range(cells.stain_picker.count())]
    assert "elsewhere" in texts and cells.stain_picker.currentText() == NO_STAIN


@pytest.mark.parametrize("layout", ["channels first", "channels last"])
def test_hand_painted_labels_over_a_multichannel_layer_train_a_model_of_that_many_channels(viewer, qtbot, tmp_path,
                                                                                          layout):
    dapi, labels_data = synthetic_nuclei((48, 64), n=5, seed=6)
    cyto = np.full_like(dapi, dapi.max()) - dapi
    axis = 0 if layout == "channels first" else -1
    image = viewer.add_image(np.stack([cyto, dapi], axis=axis), name="two")
    labels = viewer.add_labels(labels_data, name="painted")
    two = save_model(new_model("instances", in_channels=2, depth=2, base_channels=4), tmp_path / "two.safetensors")
    widget = _train_dock(viewer, tmp_path, image, labels)
    assert widget.settings.add_model_file(two)
    assert "overlay" not in widget.status.text()
    (pair,) = _job(widget).pairs
    np.testing.assert_array_equal(pair.image, np.stack([cyto, dapi]))  # both channels, not the plane on screen
    widget.start()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=TIMEOUT)
    assert widget.outcome is not None and widget.outcome.path.stem.startswith("two-finetuned")
    assert "Segment's model is unchanged" in widget.status.text() or "Segment uses it" in widget.status.text()
