"""The Train dock widget, driven like a user would: pick layers, press Train, watch, get a model."""

from __future__ import annotations

import numpy as np
import pytest

from helpers import synthetic_nuclei
from napari_unet_seg._widgets import _common
from napari_unet_seg._widgets import train as train_module
from napari_unet_seg._widgets.train import SCRATCH, TrainWidget
from napari_unet_seg.core.model.modelfile import read_metadata
from napari_unet_seg.core.model.registry import available_models
from napari_unet_seg.core.training.project import Project

pytestmark = pytest.mark.gui
TIMEOUT = 60_000
FAST = {"crop_size": 48, "batch_size": 2, "eval_every": 2, "preview_every": 2}


@pytest.fixture
def messages(monkeypatch) -> dict[str, list[str]]:
    seen: dict[str, list[str]] = {"error": [], "warning": [], "info": []}
    for kind, shown in seen.items():
        monkeypatch.setattr(train_module, f"show_{kind}", shown.append)
    monkeypatch.setattr(_common, "show_error", seen["error"].append)  # failures in the worker
    return seen


def _widget(viewer, tmp_path, steps: int = 4) -> TrainWidget:
    widget = TrainWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Train")
    widget.model_box.setCurrentText(SCRATCH)
    widget.depth.setValue(2)
    widget.width.setValue(4)
    widget.max_steps.setValue(steps)
    widget.project_dir.setText(str(tmp_path / "project"))
    widget.overrides = dict(FAST)
    return widget


def _wait(qtbot, widget) -> None:
    qtbot.waitUntil(lambda: widget.worker is None, timeout=TIMEOUT)


def test_train_a_few_steps_plot_preview_and_model_list(make_napari_viewer, qtbot, tmp_path, messages):
    viewer = make_napari_viewer()
    image, labels = synthetic_nuclei((96, 128))
    viewer.add_image(image, name="cells")
    user_labels = viewer.add_labels(labels.copy(), name="cells labels")
    segment = None
    try:
        from napari_unet_seg._widgets.segment import SegmentWidget

        segment = SegmentWidget(viewer)
        viewer.window.add_dock_widget(segment, name="Segment")
    except ImportError:
        pass
    widget = _widget(viewer, tmp_path)
    widget.start()
    _wait(qtbot, widget)
    assert not messages["error"], messages["error"]
    assert widget.outcome is not None and widget.outcome.result.train.steps == 4
    assert widget.plot.steps == [1, 2, 3, 4] and widget.plot.scores == []  # too small to hold out
    assert not widget.plot.parent_line.get_visible()  # no parent score to draw
    # the live preview went into a layer of its own; the user's labels are untouched
    assert widget.preview_layer is not None and widget.preview_layer in viewer.layers
    assert widget.preview_layer.name == "training preview"
    np.testing.assert_array_equal(user_labels.data, labels)
    name = widget.outcome.path.stem
    assert name == "model-finetuned" and name in available_models()
    assert read_metadata(widget.outcome.path)["lineage"][-1]["data"][0]["name"] == "cells"
    assert "Saved model 'model-finetuned'" in widget.result.text()
    if segment is not None:
        names = [segment.model_picker.combo.itemText(i) for i in range(segment.model_picker.combo.count())]
        assert name in names
    assert name in [widget.model_box.itemText(i) for i in range(widget.model_box.count())]
    # the project remembers the pair for the next round
    assert len(Project(tmp_path / "project")) == 1


def test_continue_training_uses_saved_corrections_and_never_overwrites(make_napari_viewer, qtbot, tmp_path, messages):
    viewer = make_napari_viewer()
    for seed in range(2):
        image, labels = synthetic_nuclei((96, 96), seed=seed)
        viewer.add_image(image, name=f"img{seed}")
        viewer.add_labels(labels, name=f"lab{seed}")
    widget = _widget(viewer, tmp_path, steps=2)
    widget.preview.setChecked(False)
    widget.image_box.setCurrentText("img0")
    widget.labels_box.setCurrentText("lab0")
    widget.start()
    _wait(qtbot, widget)
    first = widget.outcome.path
    widget.refresh_models()
    widget.model_box.setCurrentText(first.stem)  # continue from the fine-tuned model
    widget.image_box.setCurrentText("img1")
    widget.labels_box.setCurrentText("lab1")
    widget.start()
    _wait(qtbot, widget)
    assert not messages["error"], messages["error"]
    second = widget.outcome
    assert second.path != first and second.path.stem == "model-finetuned-2"
    assert second.n_pairs == 2  # both corrections, not only the latest
    assert [run["base"] for run in read_metadata(second.path)["lineage"]] == ["scratch", first.stem]


def test_region_mode_from_shapes_and_cancel(make_napari_viewer, qtbot, tmp_path, messages):
    viewer = make_napari_viewer()
    image, labels = synthetic_nuclei((96, 96))
    viewer.add_image(image, name="cells")
    viewer.add_labels(labels, name="partly painted")
    viewer.add_shapes([np.array([[0, 0], [0, 60], [60, 60], [60, 0]])], shape_type="rectangle", name="done here")
    widget = _widget(viewer, tmp_path, steps=0)
    widget.max_seconds.setValue(0)  # no limit: only Cancel stops it
    widget.mode_box.setCurrentIndex(1)
    widget.region_box.setCurrentText("done here")
    widget.start()
    qtbot.waitUntil(lambda: len(widget.plot.steps) >= 2, timeout=TIMEOUT)
    widget.cancel()
    _wait(qtbot, widget)
    assert not messages["error"], messages["error"]
    result = widget.outcome.result
    assert result.train.cancelled and "(cancelled)" in widget.result.text()
    lineage = read_metadata(widget.outcome.path)["lineage"][-1]
    assert lineage["mode"] == "region" and lineage["data"][0]["annotated_pixels"] == 61 * 61


def test_trains_on_the_slice_on_screen_of_a_scaled_translated_stack(make_napari_viewer, qtbot, tmp_path, messages):
    viewer = make_napari_viewer()
    planes = [synthetic_nuclei((64, 64), seed=seed) for seed in range(3)]
    geometry = {"scale": (2.0, 0.5, 0.5), "translate": (5.0, 1.0, -2.0)}
    viewer.add_image(np.zeros((12, 32, 32), np.float32), name="overview")  # 1 world unit per slice
    stack = viewer.add_image(np.stack([image for image, _ in planes]), name="stack", **geometry)
    viewer.add_labels(np.stack([labels for _, labels in planes]), name="stack labels", **geometry)
    viewer.dims.set_point(0, 5.0 + 2.0 * 1)  # the stack's slice 1 is on screen
    assert stack.world_to_data(viewer.dims.point)[0] == pytest.approx(1.0)
    assert viewer.dims.current_step[0] != 1  # world steps are not the stack's slices
    widget = _widget(viewer, tmp_path, steps=2)
    widget.image_box.setCurrentText("stack")
    widget.labels_box.setCurrentText("stack labels")
    widget.start()
    _wait(qtbot, widget)
    assert not messages["error"], messages["error"]
    (pair,) = widget.job.pairs
    assert pair.name == "stack [1]"
    np.testing.assert_array_equal(pair.image, planes[1][0])
    np.testing.assert_array_equal(pair.labels, planes[1][1])
    assert read_metadata(widget.outcome.path)["lineage"][-1]["data"][0]["name"] == "stack [1]"


def test_clear_message_without_layers(make_napari_viewer, tmp_path, messages):
    viewer = make_napari_viewer()
    widget = _widget(viewer, tmp_path)
    widget.start()
    assert widget.worker is None and "needs an Image layer" in messages["error"][0]


def test_stack_slices_and_mask_layers_become_pairs():
    from napari.layers import Image, Labels

    from napari_unet_seg._widgets.train_layers import pairs_from_layers, parse_slices

    image, labels = synthetic_nuclei((64, 64))
    stack = Image(np.stack([image] * 4), name="stack")
    painted = Labels(np.stack([labels] * 4), name="painted")
    region = np.zeros((4, 64, 64), np.uint8)
    region[:, :32] = 1
    mask = Labels(region, name="done")
    pairs = pairs_from_layers(stack, painted, mode="region", region_layer=mask, slices="0, 2-3")
    assert [p.name for p in pairs] == ["stack [0]", "stack [2]", "stack [3]"]
    assert pairs[0].valid.sum() == 32 * 64 and pairs[0].image.shape == (64, 64)
    assert [p.name for p in pairs_from_layers(stack, painted, on_screen=(1,))] == ["stack [1]"]
    assert parse_slices("all", 3, 0) == [0, 1, 2]
    with pytest.raises(ValueError, match="slice 7 does not exist"):
        parse_slices("7", 4, 0)
    with pytest.raises(ValueError, match="must overlay exactly"):
        pairs_from_layers(stack, Labels(labels[:30]), slices="0")


def test_scribbles_mode_trains_a_new_semantic_model(make_napari_viewer, qtbot, tmp_path, messages):
    viewer = make_napari_viewer()
    image, labels = synthetic_nuclei((96, 96))
    scribbles = np.zeros(labels.shape, np.uint8)
    scribbles[::6] = np.where(labels[::6] > 0, 2, 1)
    viewer.add_image(image, name="cells")
    viewer.add_labels(scribbles, name="scribbles")
    widget = _widget(viewer, tmp_path, steps=3)
    widget.mode_box.setCurrentIndex(2)
    assert widget.task_box.currentText() == "semantic" and widget.classes.isEnabled()
    assert not widget.region_box.isEnabled()
    widget.classes.setValue(2)
    widget.start()
    _wait(qtbot, widget)
    assert not messages["error"], messages["error"]
    meta = read_metadata(widget.outcome.path)
    assert meta["task"] == "semantic" and meta["lineage"][-1]["mode"] == "scribbles"
    assert "mean IoU" in widget.result.text()


def test_a_given_diameter_trains_at_segments_scale(make_napari_viewer, qtbot, tmp_path, messages):
    from napari_unet_seg.core.model.modelfile import new_model, save_model
    from napari_unet_seg.core.model.registry import user_model_dir

    parent = new_model("instances", depth=2, base_channels=4)
    parent.metadata["object_diameter"] = 20.0
    save_model(parent, user_model_dir() / "small-nuclei")
    viewer = make_napari_viewer()
    image, labels = synthetic_nuclei((96, 128), radius=(17, 21), n=4)
    viewer.add_image(image, name="cells")
    viewer.add_labels(labels, name="cells labels")
    widget = _widget(viewer, tmp_path, steps=2)
    widget.refresh_models()
    widget.model_box.setCurrentText("small-nuclei")
    widget.diameter.setValue(40.0)
    widget.start()
    _wait(qtbot, widget)
    assert not messages["error"], messages["error"]
    run = read_metadata(widget.outcome.path)["lineage"][-1]
    assert run["data"][0]["object_diameter"] == 40.0 and run["data"][0]["scale"] == 0.5


def test_the_plot_and_status_name_the_held_out_score(make_napari_viewer, qtbot, tmp_path, messages):
    viewer = make_napari_viewer()
    image, labels = synthetic_nuclei((160, 160), n=20)  # big enough to hold out a strip
    viewer.add_image(image, name="cells")
    viewer.add_labels(labels, name="cells labels")
    widget = _widget(viewer, tmp_path, steps=4)
    widget.overrides["eval_initial"] = True  # the random start is scored first, as a fine-tune's parent is
    widget.preview.setChecked(False)
    widget.start()
    _wait(qtbot, widget)
    assert not messages["error"], messages["error"]
    assert widget.plot.scores, "a held-out score was plotted"
    assert widget.plot.score_axes.get_ylabel() == "held-out\nAP50-90 (dots)"
    assert "AP50-90" in widget.result.text()
    # the parent's held-out score is drawn as a line the dots must rise above
    assert widget.plot.parent_line.get_visible() and widget.plot.parent is not None
    assert widget.plot.parent_line.get_ydata()[0] == widget.plot.parent
    assert widget.plot.parent_text.get_text() == f"parent {widget.plot.parent:.2f}"
    widget.plot.clear()  # the next run starts without the last run's parent
    assert not widget.plot.parent_line.get_visible() and widget.plot.parent is None
