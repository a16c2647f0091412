"""The Measurements dock: features on the layer, a sortable table, go to an object, colour by, save as CSV."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import synthetic_nuclei
from napari.utils.colormaps import DirectLabelColormap
from qtpy.QtCore import Qt
from qtpy.QtWidgets import QApplication

from napari_unet_seg._widgets.measure import LABEL_COLOURS
from napari_unet_seg._widgets.measure_classes import NO_CLASSES
from napari_unet_seg.core.measure.measurements import measure_objects
from napari_unet_seg.core.measure.table_csv import read_objects_csv

pytestmark = pytest.mark.gui
PLUGIN = "napari-unet-seg"


def measure_and_wait(widget, qtbot):
    assert widget.run() is not None
    # not waitSignal(worker.finished): a quick run can finish before the wait connects, and the signal is lost
    qtbot.waitUntil(lambda: widget.worker is None, timeout=30_000)
    assert widget.measure_button.isEnabled()


@pytest.fixture
def docked(make_napari_viewer, qtbot):
    image, labels = synthetic_nuclei((80, 100), n=8, seed=2)
    viewer = make_napari_viewer()
    viewer.add_image(image, name="nuclei", scale=(0.5, 0.5))
    viewer.add_image(np.stack([image] * 3, axis=-1), name="colour", rgb=True, scale=(0.5, 0.5))
    viewer.add_image(image[:40], name="other size")
    layer = viewer.add_labels(labels, name="nuclei labels", scale=(0.5, 0.5))
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Measurements")
    return viewer, widget, layer, image, labels


def test_measure_sets_features_fills_a_sortable_table_and_goes_to_objects(docked, qtbot):
    viewer, widget, layer, image, labels = docked
    assert widget.labels_picker.currentText() == "nuclei labels"
    assert sorted(widget.images.item(i).text() for i in range(widget.images.count())) == ["colour", "nuclei"]
    widget.images.findItems("colour", Qt.MatchFlag.MatchExactly)[0].setCheckState(Qt.CheckState.Unchecked)
    measure_and_wait(widget, qtbot)
    expected = measure_objects(labels, {"nuclei": image}, pixel_size=(0.5, 0.5))
    features = layer.features
    assert features["label"].tolist() == features["index"].tolist() == expected["label"].tolist()
    np.testing.assert_allclose(features["nuclei_mean"], expected["nuclei_mean"])
    assert "colour_ch0_mean" not in features and "area_um2" in features
    assert widget.model.rowCount() == 8 and "8 objects" in widget.status.text()

    area = widget.model.columns.index("area")
    widget.view.sortByColumn(area, Qt.SortOrder.DescendingOrder)
    proxy = widget.view.model()
    shown = [float(proxy.index(r, area).data(Qt.ItemDataRole.UserRole)) for r in range(proxy.rowCount())]
    assert shown == sorted(expected["area"].astype(float), reverse=True)  # numerically, not as text
    widget.go_to_row(proxy.index(0, 0))
    biggest = int(np.argmax(expected["area"]))
    assert layer.selected_label == expected["label"][biggest]
    centre = np.array([expected["centroid_y"][biggest], expected["centroid_x"][biggest]]) * 0.5
    np.testing.assert_allclose(viewer.camera.center[-2:], centre)


def test_an_image_moved_after_the_list_was_filled_is_ticked_by_where_it_lies_now(docked):
    viewer, widget, layer, image, labels = docked

    def ticked(name):
        return widget.images.findItems(name, Qt.MatchFlag.MatchExactly)[0].checkState() == Qt.CheckState.Checked

    assert ticked("nuclei")
    viewer.layers["nuclei"].translate = (40, 0)  # dragged away from its labels
    assert not ticked("nuclei") and ticked("colour")
    viewer.layers["nuclei"].translate = (0, 0)  # and back
    assert ticked("nuclei")
    viewer.layers["colour"].rotate = 30
    assert not ticked("colour")


def test_an_rgba_layers_alpha_is_not_measured(docked, qtbot):
    viewer, widget, layer, image, labels = docked
    viewer.add_image(np.stack([image, image, image, np.full_like(image, 255)], axis=-1), name="rgba", rgb=True,
                     scale=(0.5, 0.5))
    widget._refresh_images()
    for i in range(widget.images.count()):
        if widget.images.item(i).text() != "rgba":
            widget.images.item(i).setCheckState(Qt.CheckState.Unchecked)
    measure_and_wait(widget, qtbot)
    assert [f"rgba_ch{k}_mean" in layer.features for k in range(4)] == [True, True, True, False]
    np.testing.assert_allclose(layer.features["rgba_ch0_mean"], measure_objects(labels, {"n": image})["n_mean"])


def test_an_image_of_the_same_size_lying_elsewhere_is_offered_but_not_ticked(docked):
    viewer, widget, layer, image, labels = docked
    viewer.add_image(image, name="moved", scale=(0.5, 0.5), translate=(100, -30))
    viewer.add_image(image, name="unscaled")
    widget._refresh_images()
    ticked = {widget.images.item(i).text(): widget.images.item(i).checkState() == Qt.CheckState.Checked
              for i in range(widget.images.count())}
    assert ticked == {"nuclei": True, "colour": True, "moved": False, "unscaled": False}
    # the labels of the unscaled image: it is ticked now (it was unticked for lying elsewhere, not by the user)
    viewer.add_labels(labels, name="unscaled labels")
    widget.labels_picker.setCurrentText("unscaled labels")
    widget._refresh_images()
    ticked = {widget.images.item(i).text(): widget.images.item(i).checkState() == Qt.CheckState.Checked
              for i in range(widget.images.count())}
    assert ticked["unscaled"] and not ticked["nuclei"]
    widget.images.findItems("unscaled", Qt.MatchFlag.MatchExactly)[0].setCheckState(Qt.CheckState.Unchecked)
    widget._refresh_images()  # what the user unticked stays unticked
    assert widget.images.findItems("unscaled", Qt.MatchFlag.MatchExactly)[0].checkState() == Qt.CheckState.Unchecked


def test_colour_by_a_feature_then_back(docked, qtbot):
    _, widget, layer, _, _ = docked
    original = layer.colormap
    measure_and_wait(widget, qtbot)
    widget.colour_by.setCurrentText("area")
    assert isinstance(layer.colormap, DirectLabelColormap)
    smallest = int(layer.features["label"][np.argmin(layer.features["area"])])
    largest = int(layer.features["label"][np.argmax(layer.features["area"])])
    assert not np.allclose(layer.colormap.map(smallest), layer.colormap.map(largest))
    widget.colour_by.setCurrentText(LABEL_COLOURS)
    assert layer.colormap is original


def test_an_image_left_out_because_it_lies_elsewhere_is_named_after_measuring(docked, qtbot):
    viewer, widget, layer, image, _ = docked
    viewer.add_image(image, name="unscaled copy")  # the labels' size, at scale 1: not over the labels on screen
    measure_and_wait(widget, qtbot)
    assert "unscaled copy_mean" not in layer.features
    assert widget.status.text().endswith("Not measured: 'unscaled copy', which lies elsewhere on screen than the "
                                         "labels (another pixel size, position or rotation); tick it to measure it "
                                         "all the same.")
    widget.images.findItems("unscaled copy", Qt.MatchFlag.MatchExactly)[0].setCheckState(Qt.CheckState.Checked)
    measure_and_wait(widget, qtbot)
    assert "unscaled copy_mean" in layer.features and "Not measured" not in widget.status.text()


def test_colour_by_with_ids_napari_cannot_colour_says_what_to_install_and_leaves_the_colours(make_napari_viewer,
                                                                                             qtbot, monkeypatch):
    """napari colours ids above 65,536 one by one only with numba: without it, drawing failed (a grey canvas and
    a RuntimeError) after the colours were set."""
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "numba" else real(name, *a))
    labels = np.zeros((40, 50), np.uint32)
    labels[3:12, 4:14], labels[20:30, 25:40] = 7, 70_000
    viewer = make_napari_viewer()
    layer = viewer.add_labels(labels, name="linked")
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Measurements")
    measure_and_wait(widget, qtbot)
    original = layer.colormap
    widget.colour_by.setCurrentText("area")
    assert layer.colormap is original and widget.colour_by.currentText() == LABEL_COLOURS
    assert widget.status.text().startswith("2 objects in linked. Colouring by a measurement needs numba for label "
                                           "ids above 65,536 (this layer's go up to 70,000): `pip install numba`")
    viewer.window._qt_viewer.canvas.native.grab()  # drawn without an error


def test_stacks_and_save_as_csv(make_napari_viewer, qtbot, tmp_path):
    _, a = synthetic_nuclei((40, 50), n=4, seed=0)
    _, b = synthetic_nuclei((40, 50), n=2, seed=1)
    viewer = make_napari_viewer()
    layer = viewer.add_labels(np.stack([a, b]), name="stack")
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Measurements")
    measure_and_wait(widget, qtbot)
    assert "6 objects in 2 slices" in widget.status.text()
    proxy = widget.view.model()
    row = next(r for r in range(proxy.rowCount()) if proxy.index(r, widget.model.columns.index("slice")).data() == "1")
    widget.go_to_row(proxy.index(row, 0))
    assert viewer.dims.current_step[0] == 1
    widget.colour_by.setCurrentText("area")  # the slice on screen
    assert set(layer.colormap.color_dict) - {None, 0} == set(np.unique(b)[1:].tolist())
    path = widget.save_csv(str(tmp_path / "stack_objects.csv"))
    table, comments = read_objects_csv(path)
    assert table["slice"].tolist() == [0, 0, 0, 0, 1, 1] and comments["labels"] == "stack"
    assert widget.save_csv(str(tmp_path / "bare")) == tmp_path / "bare.csv"  # a name typed without .csv gets it
    assert widget.save_csv(str(tmp_path / "a file" / "x.csv").replace("a file", "stack_objects.csv")) is None


def test_without_labels_nothing_runs_and_the_dock_fits_a_laptop(make_napari_viewer, qtbot):
    viewer = make_napari_viewer(show=True)
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Measurements")
    assert widget.run() is None
    assert widget.status.text().startswith("Not measured: choose a Labels layer first")  # said where one looks
    viewer.window.resize(1366, 740)
    QApplication.processEvents()
    assert widget.minimumSizeHint().height() <= 400
    assert widget.measure_button.isVisible() and not widget.save_button.visibleRegion().isEmpty()


def test_painting_after_measuring_makes_the_table_out_of_date_and_no_old_number_travels_on(docked, qtbot, tmp_path):
    viewer, widget, layer, _, labels = docked
    other = viewer.add_labels(labels.copy(), name="other labels")
    widget.labels_picker.setCurrentText("nuclei labels")
    measure_and_wait(widget, qtbot)
    assert widget.save_button.isEnabled() and len(layer.features) == 8
    other.paint((5, 5), 99)  # another layer's edits change nothing here
    assert widget.save_button.isEnabled() and "8 objects" in widget.status.text()
    layer.paint((5, 5), 99)  # a new object, as the brush makes it
    assert not widget.save_button.isEnabled()  # a CSV would list the objects as they were
    assert widget.status.text().startswith("nuclei labels changed since it was measured: press Measure again")
    assert len(layer.features) == 0  # a GeoJSON saved now carries no stale areas
    measure_and_wait(widget, qtbot)
    assert widget.save_button.isEnabled() and 99 in layer.features["label"].tolist()
    layer.data = np.zeros_like(labels)  # replaced whole (e.g. a new Segment run into the layer)
    assert not widget.save_button.isEnabled() and len(layer.features) == 0


@pytest.mark.parametrize("change", ["replaced", "painted"])
def test_labels_changed_during_a_measurement_get_no_table(docked, qtbot, monkeypatch, change):
    """A table of pixels no longer there must not become the layer's features (they go on into exports)."""
    import threading

    import napari_unet_seg._widgets.measure as measure

    viewer, widget, layer, _, labels = docked
    release, real = threading.Event(), measure.measure_objects

    def held(*args, **kwargs):  # the run is still measuring when the layer changes
        release.wait(30)
        return real(*args, **kwargs)

    monkeypatch.setattr(measure, "measure_objects", held)
    assert widget.run() is not None
    if change == "replaced":
        replaced = np.zeros_like(labels)
        replaced[10:20, 10:20] = 1
        layer.data = replaced  # e.g. a new Segment run into the layer
    else:
        layer.paint((5, 5), 99)
    release.set()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=30_000)
    assert len(layer.features) == 0 and widget.model.rowCount() == 0 and not widget.save_button.isEnabled()
    assert widget.status.text().startswith("'nuclei labels' changed while it was being measured: nothing shown")
    layer.paint((6, 6), 98)  # the run's watch is gone: no late message
    measure_and_wait(widget, qtbot)  # measured again: shown
    assert len(layer.features) > 0 and widget.save_button.isEnabled()


def test_a_failed_measure_shows_no_other_layers_table(docked, qtbot):
    viewer, widget, layer, image, labels = docked
    measure_and_wait(widget, qtbot)
    assert widget.model.rowCount() == 8
    broken = viewer.add_labels(np.zeros_like(labels), name="broken")
    broken.data = np.where(labels > 0, -3, 0).astype(np.int32)  # negative ids: cannot be measured
    widget.labels_picker.setCurrentText("broken")
    measure_and_wait(widget, qtbot)
    assert widget.status.text().startswith("Failed: ") and "non-negative" in widget.status.text()
    assert widget.model.rowCount() == 0 and not widget.save_button.isEnabled()  # not the 8 rows of another layer
    layer.paint((5, 5), 99)  # the earlier layer is no longer listened to: the status keeps saying why it failed
    assert widget.status.text().startswith("Failed: ")


def test_a_multichannel_layer_is_measured_channel_by_channel(docked, qtbot):
    viewer, widget, layer, image, labels = docked
    viewer.add_image(np.stack([image, image // 2]), name="two", scale=(1, 0.5, 0.5))
    names = [widget.images.item(i).text() for i in range(widget.images.count())]
    assert "two" in names
    measure_and_wait(widget, qtbot)
    expected = measure_objects(labels, {"two": np.stack([image, image // 2], axis=-1)})
    np.testing.assert_allclose(layer.features["two_ch1_mean"], expected["two_ch1_mean"])
    assert "two_ch0_integrated" in layer.features
    # channels last, as Segment's channel axis reads them: measured channel by channel too
    viewer.add_image(np.stack([image, image // 2], axis=-1), name="last", scale=(0.5, 0.5))
    assert "last" in [widget.images.item(i).text() for i in range(widget.images.count())]
    measure_and_wait(widget, qtbot)
    np.testing.assert_allclose(layer.features["last_ch1_mean"], expected["two_ch1_mean"])


def test_objects_get_the_class_of_a_class_model_s_output_and_are_coloured_as_it(docked, qtbot, tmp_path):
    """Through the real dock: the class output is chosen by default, named, counted, coloured and saved."""
    from napari_unet_seg._widgets.measure_classes import NO_CLASSES
    from napari_unet_seg._widgets.segment_layers import show_classes

    viewer, widget, layer, _, labels = docked
    classes = np.where(labels % 2 == 1, 1, 2) * (labels > 0)  # odd nuclei "tumour", even ones "stroma"
    classes[:, :3] = 0
    regions = viewer.add_labels(np.zeros_like(labels), name="painted regions", scale=(0.5, 0.5))
    output = viewer.add_labels(classes.astype(np.uint8), name="nuclei classes", scale=(0.5, 0.5))
    show_classes(output, ["background", "tumour", "stroma"])
    output.metadata["provenance"] = {"model": {"task": "semantic", "name": "tissue classes", "sha256": "ab12",
                                               "class_names": ["background", "tumour", "stroma"]},
                                     "command": "unet-seg predict '<image>' -o out --model tissue.safetensors"}
    viewer.layers.selection.active = layer
    items = [widget.classes_picker.itemText(i) for i in range(widget.classes_picker.count())]
    assert items == [NO_CLASSES, "nuclei classes", "painted regions"] and regions.name in items
    # a class model's output, not painted regions, once Segment has named its task (just after adding its layer)
    qtbot.waitUntil(lambda: widget.classes_picker.currentText() == "nuclei classes", timeout=5000)
    measure_and_wait(widget, qtbot)
    table = widget.table
    want = ["tumour" if k % 2 else "stroma" for k in table["label"]]
    assert table["class_name"].tolist() == want and layer.features["class_name"].tolist() == want
    assert f"(tumour: {want.count('tumour')}, stroma: {want.count('stroma')})." in widget.status.text()
    assert widget.colour_by.currentText() == "class"
    for label, cls in zip(table["label"], table["class"]):
        np.testing.assert_allclose(layer.colormap.map(np.array([label]))[0], output.get_color(int(cls)), atol=1e-6)
    # drawn over the objects in the same colours, the class output would hide them: it is hidden, and that is said
    assert not output.visible and "'nuclei classes' is hidden so that the objects show" in widget.status.text()
    output.visible = True
    viewer.layers.move(viewer.layers.index(output), 0)  # below the objects: nothing to uncover
    measure_and_wait(widget, qtbot)
    assert output.visible and "hidden" not in widget.status.text() and widget.colour_by.currentText() == "class"
    name_column = widget.model.columns.index("class_name")
    widget.view.sortByColumn(name_column, Qt.SortOrder.AscendingOrder)  # text sorts as text, no error
    proxy = widget.view.model()
    shown = [proxy.index(r, name_column).data() for r in range(proxy.rowCount())]
    assert shown == sorted(want)
    saved, comments = read_objects_csv(widget.save_csv(str(tmp_path / "t.csv")))
    assert saved["class_name"].tolist() == want and comments["classes"] == "nuclei classes"
    assert comments["classes_model"] == "tissue classes (sha256 ab12)"  # the model that sorted them
    assert comments["classes_command"] == "unet-seg predict '<image>' -o out --model tissue.safetensors"
    output.paint((5, 5), 2, refresh=True)  # the classes changed: the table is out of date too
    assert widget.status.text().startswith("nuclei classes changed since nuclei labels was measured")
    assert not widget.save_button.isEnabled()

    widget.classes_picker.setCurrentText(NO_CLASSES)  # a user's choice of none is kept as layers come and go
    widget.classes_picker.activated.emit(0)
    viewer.add_labels(classes.astype(np.uint8), name="more classes", scale=(0.5, 0.5)).metadata["provenance"] = {
        "model": {"task": "semantic"}}
    measure_and_wait(widget, qtbot)
    assert widget.classes_picker.currentText() == NO_CLASSES and "class" not in widget.table


def test_objects_are_measured_by_default_and_class_maps_offered_only_as_classes(docked, qtbot):
    """A class output or Train's preview on top is not what is measured; the selection is followed; objects the
    plugin made are not offered as classes; a class map measured as objects, or objects as classes, is said."""
    from napari_unet_seg._widgets.measure_classes import NO_CLASSES
    from napari_unet_seg._widgets.train_form import PREVIEW_KEY

    viewer, widget, layer, _, labels = docked
    layer.metadata["provenance"] = {"model": {"task": "instances"}}  # Segment's objects
    second = viewer.add_labels(labels.copy(), name="nuclei copy", scale=(0.5, 0.5))
    second.metadata["provenance"] = {"model": {"task": "instances"}}
    viewer.add_labels((labels > 0).astype(np.uint8), name="nuclei classes", scale=(0.5, 0.5)).metadata[
        "provenance"] = {"model": {"task": "semantic"}}
    viewer.add_labels(np.zeros_like(labels), name="training preview", scale=(0.5, 0.5),
                      metadata={PREVIEW_KEY: True})
    # the newest objects, not the maps on top (once Segment has named the class output's task, just after adding it)
    qtbot.waitUntil(lambda: widget.labels_picker.currentText() == "nuclei copy", timeout=5000)
    viewer.layers.selection.active = layer
    assert widget.labels_picker.currentText() == "nuclei labels"
    viewer.layers.selection.active = viewer.layers["nuclei classes"]  # a class map is not measured for that
    assert widget.labels_picker.currentText() == "nuclei labels"
    offered = [widget.classes_picker.itemText(i) for i in range(widget.classes_picker.count())]
    assert offered == [NO_CLASSES, "nuclei classes"]  # no objects, no preview
    widget.labels_picker.setCurrentText("nuclei classes")
    measure_and_wait(widget, qtbot)
    assert "is a class model's output, so each class was measured as one object" in widget.status.text()

    regions = viewer.add_labels(labels.copy(), name="painted by hand", scale=(0.5, 0.5))  # objects, unmarked
    widget.labels_picker.setCurrentText("nuclei labels")
    widget.classes_picker.setCurrentText(regions.name)
    measure_and_wait(widget, qtbot)
    assert "is it a layer of objects rather than classes?" in widget.status.text()  # a class per object
    regions.data = np.where(np.arange(labels.shape[1]) < labels.shape[1] // 2, 1, 2) * np.ones_like(labels)
    measure_and_wait(widget, qtbot)
    assert "is it a layer" not in widget.status.text() and "(class 1: " in widget.status.text()


def test_painted_regions_are_named_in_the_dock_and_keep_their_names(docked, qtbot):
    """Regions a user painted have no names: typed once, they name the table's classes and the layer keeps them."""
    viewer, widget, layer, _, labels = docked
    regions = viewer.add_labels(np.where(np.arange(labels.shape[1]) < 50, 1, 2) * np.ones_like(labels),
                                name="regions", scale=(0.5, 0.5))
    viewer.layers.selection.active = layer
    widget.classes_picker.setCurrentText("regions")
    assert widget.class_names.isEnabled() and widget.class_names.text() == ""
    widget.class_names.setText("tumour, tumour")  # one name for two classes: the table could not tell them apart
    assert widget.run() is None and "Not measured: class names must differ: 'tumour' is given twice" in \
        widget.status.text()
    assert "class" not in regions.features  # the layer is not named either
    widget.class_names.setText("tumour, stroma")
    measure_and_wait(widget, qtbot)
    assert set(widget.table["class_name"]) <= {"tumour", "stroma"} and "tumour: " in widget.status.text()
    assert "Note" not in widget.status.text()  # names that fit: nothing to say
    assert list(regions.features["class"]) == ["background", "tumour", "stroma"]  # named on hover from now on
    widget.classes_picker.setCurrentText(NO_CLASSES)
    assert not widget.class_names.isEnabled()
    widget.classes_picker.setCurrentText("regions")
    assert widget.class_names.text() == "tumour, stroma"  # kept with the layer
    widget.class_names.setText("")  # no names typed: the layer's own
    measure_and_wait(widget, qtbot)
    assert set(widget.table["class_name"]) <= {"tumour", "stroma"}
    regions.name = "tissue regions"  # renamed: still the classes
    assert widget.classes_picker.currentText() == "tissue regions"
    widget.class_names.setText("tumour")  # one name too few: the class left unnamed is said
    measure_and_wait(widget, qtbot)
    assert "Note: no name was typed for class 2, so the table calls it so." in widget.status.text()
    widget.class_names.setText("tumour, stroma, necrosis")  # one too many: said, not dropped in silence
    measure_and_wait(widget, qtbot)
    assert "Note: 'necrosis' named no class (the class layer's classes go up to 2)." in widget.status.text()
