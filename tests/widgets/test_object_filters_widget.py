"""Object filters in the Segment and Batch docks, opened as napari opens them: the core's labels, said in the title."""

import numpy as np
import pytest
import tifffile
from napari.layers import Labels

from helpers import synthetic_nuclei, threshold_model
from napari_unet_seg import save_model
from napari_unet_seg._widgets import _common, batch, segment, segment_form
from napari_unet_seg.core.inference.options import RunOptions
from napari_unet_seg.core.inference.pipeline import segment_image
from napari_unet_seg.core.model.registry import load_model

pytestmark = pytest.mark.gui
PLUGIN = "napari-unet-seg"
FILTERS = {"min_area": 100, "max_area": 0, "exclude_border": True}


@pytest.fixture
def errors(monkeypatch) -> list[str]:
    seen: list[str] = []
    for module in (segment, segment_form, batch, _common):
        if hasattr(module, "show_error"):
            monkeypatch.setattr(module, "show_error", seen.append)
    return seen


@pytest.fixture
def disks(private_model_dir):
    return save_model(threshold_model(), private_model_dir / "disks.safetensors")


def set_filters(section, min_area=0, max_area=0, exclude_border=False) -> None:
    section.toggle.click()  # unfolded, as a user does
    section.min_area.setValue(min_area)
    section.max_area.setValue(max_area)
    section.exclude_border.setChecked(exclude_border)


def test_segment_keeps_only_the_objects_the_filters_allow_as_the_core_does(make_napari_viewer, qtbot, disks):
    viewer = make_napari_viewer()
    image = synthetic_nuclei((120, 140), n=30, radius=(4, 9), seed=5)[0]
    viewer.add_image(image, name="cells")
    _, dock = viewer.window.add_plugin_dock_widget(PLUGIN, "Segment")
    dock.model_picker.combo.setCurrentText("disks")
    section = dock.settings.object_filters
    assert section.toggle.text() == "Object filters"  # nothing on by default
    set_filters(section, **FILTERS)
    assert section.toggle.text() == "Object filters: objects of 100 px or more, not touching the border"
    dock.run()
    qtbot.waitUntil(lambda: dock.worker is None, timeout=60_000)
    labels = next(layer for layer in viewer.layers if isinstance(layer, Labels)).data
    expected = segment_image(image, RunOptions(device="cpu", **FILTERS), model=load_model(disks)).labels
    np.testing.assert_array_equal(labels, expected)
    unfiltered = segment_image(image, RunOptions(device="cpu"), model=load_model(disks)).labels
    assert 0 < len(np.unique(labels)) < len(np.unique(unfiltered))
    assert f"({len(np.unique(labels)) - 1} objects)" in dock.status.text()


def test_filters_are_off_for_class_outputs_and_an_impossible_range_is_refused(make_napari_viewer, qtbot, disks,
                                                                               errors):
    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((40, 40), np.float32), name="blank")
    _, dock = viewer.window.add_plugin_dock_widget(PLUGIN, "Segment")
    dock.model_picker.combo.setCurrentText("disks")
    section = dock.settings.object_filters
    set_filters(section, min_area=500, max_area=100)
    dock.run()
    assert dock.worker is None and errors == ["the largest area (100 px) is below the smallest (500 px): no object "
                                              "could be kept"]
    assert dock.status.text().startswith("Not started: the largest area")  # not an earlier run's result
    assert section.toggle.text() == "Object filters: largest below smallest"
    dock.settings.output.setCurrentIndex(dock.settings.output.findData("semantic"))
    assert not section.for_objects and not section.section.isEnabled()  # open to see, not to change
    assert section.toggle.text() == "Object filters: only for objects (instances output)"
    dock.run()  # a foreground mask: the filters are left out, not refused
    qtbot.waitUntil(lambda: dock.worker is None, timeout=60_000)
    assert len(errors) == 1 and any(isinstance(layer, Labels) for layer in viewer.layers)
    from napari_unet_seg import new_model

    save_model(new_model("semantic", num_classes=3, depth=2, base_channels=4), disks.parent / "classes")
    dock.refresh_models()
    dock.model_picker.combo.setCurrentText("classes")
    assert dock.settings.output.currentData() == "semantic" and not section.for_objects
    dock.model_picker.combo.setCurrentText("disks")  # back on objects: instances again, the filters with them
    assert dock.settings.output.currentData() == "instances" and section.for_objects


def test_batch_applies_the_filters_and_refuses_an_impossible_range(make_napari_viewer, qtbot, tmp_path, disks,
                                                                    errors):
    folder = tmp_path / "in"
    folder.mkdir()
    image = synthetic_nuclei((120, 140), n=30, radius=(4, 9), seed=6)[0]
    tifffile.imwrite(folder / "cells.tif", image)
    viewer = make_napari_viewer()
    _, dock = viewer.window.add_plugin_dock_widget(PLUGIN, "Batch segment")
    dock.model_picker.refresh()
    dock.model_picker.combo.setCurrentText("disks")
    dock.input_dir.setText(str(folder))
    dock.output_dir.setText(str(tmp_path / "out"))
    dock.device.setCurrentText("cpu")
    set_filters(dock.object_filters, min_area=500, max_area=100)
    assert dock.run() is None and errors[0].startswith("Batch not started: the largest area (100 px)")
    assert dock.status.text().startswith("Not started: the largest area")
    set_filters(dock.object_filters, **FILTERS)
    assert dock.run() is not None
    qtbot.waitUntil(lambda: dock.worker is None, timeout=60_000)
    written = tifffile.imread(tmp_path / "out" / "cells_labels.tif")
    expected = segment_image(image, RunOptions(device="cpu", **FILTERS), model=load_model(disks)).labels
    np.testing.assert_array_equal(written, expected)
    assert "objects dropped (kept: objects of 100 px or more" in dock.table.item(0, 5).text()
    set_filters(dock.object_filters, min_area=50)  # a rerun with other filters: the status says why it skipped
    assert dock.run() is not None
    qtbot.waitUntil(lambda: dock.worker is None, timeout=60_000)
    assert dock.status.text().endswith(
        "; skipped: output exists, made with other settings (object filters: objects of 100 px or more, not "
        "touching the border -> objects of 50 px or more); use 'redo finished files' to redo it")


def test_a_time_lapse_keeps_its_ids_across_frames_in_segment_and_batch(make_napari_viewer, qtbot, tmp_path, disks):
    from helpers import drifting_disks

    movie = drifting_disks()
    viewer = make_napari_viewer()
    viewer.add_image(movie, name="movie")
    _, dock = viewer.window.add_plugin_dock_widget(PLUGIN, "Segment")
    dock.model_picker.combo.setCurrentText("disks")
    link = dock.settings.link_frames
    assert link.isEnabled() and not link.isChecked()  # a stack: offered, off by default
    dock.settings.slices.setCurrentIndex(1)
    assert not link.isEnabled()  # one slice has nothing to link to
    dock.settings.slices.setCurrentIndex(0)
    link.setChecked(True)
    dock.run()
    qtbot.waitUntil(lambda: dock.worker is None, timeout=60_000)
    expected = segment_image(movie, RunOptions(device="cpu", link_frames=True), model=load_model(disks)).labels
    np.testing.assert_array_equal(viewer.layers["movie labels"].data, expected)

    folder = tmp_path / "in"
    folder.mkdir()
    tifffile.imwrite(folder / "movie.tif", movie, imagej=True, metadata={"axes": "TYX"})
    _, batch_dock = viewer.window.add_plugin_dock_widget(PLUGIN, "Batch segment")
    batch_dock.model_picker.refresh()
    batch_dock.model_picker.combo.setCurrentText("disks")
    batch_dock.input_dir.setText(str(folder))
    batch_dock.output_dir.setText(str(tmp_path / "out"))
    batch_dock.link_frames.setChecked(True)
    assert batch_dock.run() is not None
    qtbot.waitUntil(lambda: batch_dock.worker is None, timeout=60_000)
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "out" / "movie_labels.tif"), expected)
