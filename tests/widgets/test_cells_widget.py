"""The "Cells from nuclei" dock, opened through napari's plugin menu: the core's cells, in a layer of their own."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import tissue

from napari_unet_seg._widgets.cells import CELLS_KEY, NO_STAIN
from napari_unet_seg.core.inference.cells import CellOptions, grow_cells

pytestmark = pytest.mark.gui
PLUGIN = "napari-unet-seg"


def grow_and_wait(widget, qtbot):
    assert widget.run() is not None
    qtbot.waitUntil(lambda: widget.worker is None, timeout=30_000)
    assert widget.run_button.isEnabled()


@pytest.fixture
def docked(make_napari_viewer):
    truth, nuclei, cytoplasm, membrane = tissue()
    viewer = make_napari_viewer()
    viewer.add_image(cytoplasm, name="cytoplasm", scale=(0.5, 0.5))
    viewer.add_image(membrane[:50], name="other size")
    nuclei_layer = viewer.add_labels(nuclei, name="nuclei", scale=(0.5, 0.5))
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Cells from nuclei")
    return viewer, widget, nuclei_layer, cytoplasm


def test_cells_are_grown_into_a_new_layer_and_regrown_in_place_until_painted(docked, qtbot):
    viewer, widget, nuclei_layer, cytoplasm = docked
    assert widget.nuclei_picker.currentText() == "nuclei"
    stains = [widget.stain_picker.itemText(i) for i in range(widget.stain_picker.count())]
    assert stains == ["cytoplasm", NO_STAIN]  # not the image of another size
    grow_and_wait(widget, qtbot)
    cells = viewer.layers["nuclei cells"]
    np.testing.assert_array_equal(cells.data, grow_cells(nuclei_layer.data, cytoplasm))
    assert tuple(cells.scale) == (0.5, 0.5) and "9 cells around 9 nuclei" in widget.status.text()
    assert widget.nuclei_picker.findText("nuclei cells") == -1  # cells are not offered as nuclei

    widget.max_distance.setValue(3)
    grow_and_wait(widget, qtbot)
    assert len(viewer.layers) == 4  # the same layer, regrown
    np.testing.assert_array_equal(cells.data, grow_cells(nuclei_layer.data, cytoplasm,
                                                         options=CellOptions(max_distance=3)))
    cells.paint((10, 10), 5)  # the user corrects a cell: theirs now
    painted = cells.data.copy()
    widget.max_distance.setValue(0)
    grow_and_wait(widget, qtbot)
    np.testing.assert_array_equal(cells.data, painted)
    assert len(viewer.layers) == 5 and "nuclei cells (2)" in viewer.layers


def test_without_a_stain_a_reach_is_needed_and_then_cells_are_nearest_pixels(docked, qtbot):
    viewer, widget, nuclei_layer, _ = docked
    widget.stain_picker.setCurrentText(NO_STAIN)
    assert not widget.boundary.isEnabled() and not widget.threshold.isEnabled()
    assert widget.max_distance.value() == 15  # offered; set back to "no limit" by the user, it is refused:
    widget.max_distance.setValue(0)
    assert widget.run() is None
    assert "give the largest distance from a nucleus" in widget.status.text()
    assert "nuclei cells" not in viewer.layers
    widget.max_distance.setValue(4)
    grow_and_wait(widget, qtbot)
    expected = grow_cells(nuclei_layer.data, options=CellOptions(boundary="distance", max_distance=4))
    np.testing.assert_array_equal(viewer.layers["nuclei cells"].data, expected)


def test_nuclei_without_any_object_are_refused_rather_than_grown_into_an_empty_layer(docked):
    viewer, widget, nuclei_layer, _ = docked
    viewer.add_labels(np.zeros_like(nuclei_layer.data), name="empty nuclei", scale=(0.5, 0.5))
    widget.nuclei_picker.setCurrentText("empty nuclei")
    assert widget.run() is None
    assert widget.status.text() == ("Not started: 'empty nuclei' holds no nuclei (every pixel is 0): segment them "
                                    "first, or choose the layer that holds them")
    assert "empty nuclei cells" not in viewer.layers


def test_a_labels_layer_as_the_cell_area_turns_the_threshold_off(docked, qtbot):
    viewer, widget, nuclei_layer, cytoplasm = docked
    mask = np.zeros(nuclei_layer.data.shape, np.uint8)
    mask[:, :80] = 2
    viewer.add_labels(mask, name="cell class", scale=(0.5, 0.5))
    widget.area_picker.setCurrentText("cell class")
    assert not widget.threshold.isEnabled()
    grow_and_wait(widget, qtbot)
    cells = viewer.layers["nuclei cells"]
    np.testing.assert_array_equal(cells.data, grow_cells(nuclei_layer.data, cytoplasm, mask=mask))
    assert isinstance(cells.metadata[CELLS_KEY], dict) and "napari_unet_seg" not in cells.metadata


def test_a_channel_of_a_multichannel_layer_is_offered_as_the_stain(docked, qtbot):
    """A (C, H, W) layer segmented with its nuclear channel: its cytoplasm channel is a stain, no splitting needed."""
    viewer, widget, nuclei_layer, cytoplasm = docked
    viewer.add_image(np.stack([cytoplasm, np.zeros_like(cytoplasm)]), name="two channels")
    assert widget.stain_picker.findText("two channels · channel 0") >= 0
    widget.stain_picker.setCurrentText("two channels · channel 0")
    grow_and_wait(widget, qtbot)
    np.testing.assert_array_equal(viewer.layers["nuclei cells"].data, grow_cells(nuclei_layer.data, cytoplasm))


def test_a_stain_that_appears_later_is_offered_and_the_nuclei_own_image_last(make_napari_viewer, qtbot):
    """The dock opened first (no image yet): the stain added later is chosen and the boundary comes back; the image
    Segment found the nuclei in is offered last, never chosen by default, and growing over it is said; the nuclei
    are never a cell mask."""
    truth, nuclei, cytoplasm, _ = tissue()
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Cells from nuclei")
    dapi = viewer.add_image((nuclei > 0).astype(np.float32), name="dapi")
    layer = viewer.add_labels(nuclei, name="dapi labels",
                              metadata={"napari_unet_seg": {"source": "dapi"}, "provenance": {"settings": {}}})
    assert widget.nuclei_picker.currentText() == "dapi labels"
    assert widget.area_picker.findText("dapi labels") == -1
    assert widget.stain_picker.currentText() == NO_STAIN  # the only image is the nuclei's own: not chosen for them
    assert widget.boundary.currentText() == "nearest nucleus"
    assert widget.max_distance.value() == 15  # a reach offered: without one, Grow would be refused
    widget.stain_picker.setCurrentText("dapi")  # offered, and chosen by hand: said after the run
    assert widget.boundary.currentText() != "nearest nucleus"
    grow_and_wait(widget, qtbot)
    assert "the image the nuclei were segmented from" in widget.status.text()
    assert "dapi cells" in viewer.layers  # Segment's "<image> labels" gives "<image> cells"
    viewer.add_image(cytoplasm, name="cytoplasm")
    assert [widget.stain_picker.itemText(i) for i in range(3)] == ["cytoplasm", "dapi", NO_STAIN]
    assert widget.stain_picker.currentText() == "cytoplasm" and dapi.name == "dapi"
    widget.stain_picker.setCurrentText(NO_STAIN)
    assert widget.boundary.currentText() == "nearest nucleus"
    widget.stain_picker.setCurrentText("cytoplasm")
    assert widget.boundary.currentText() == "cytoplasm: bright cells, dim seams"
    grow_and_wait(widget, qtbot)
    assert "segmented from" not in widget.status.text() and layer.name == "dapi labels"


def test_the_cells_layer_records_what_it_was_grown_from_and_its_table_says_so(docked, qtbot, tmp_path):
    """Its provenance names the layers and the command; the Measurements CSV carries it until painted on."""
    from napari_unet_seg.core.measure.table_csv import read_objects_csv

    viewer, widget, _, _ = docked
    grow_and_wait(widget, qtbot)
    cells = viewer.layers["nuclei cells"]
    record = cells.metadata["provenance"]
    assert record["kind"] == "cells" and record["layers"] == {"nuclei": "nuclei", "stain": "cytoplasm",
                                                               "mask": None}
    assert record["command"] == "unet-seg cells '<nuclei labels>' --image '<image>' --boundary cytoplasm"
    from napari_unet_seg.cli.provenance import summary

    said = dict(summary(record))
    assert said["cells of"] == "layer 'nuclei'" and said["stain"] == "layer 'cytoplasm'"
    _, measure = viewer.window.add_plugin_dock_widget(PLUGIN, "Measurements")
    measure.labels_picker.setCurrentText("nuclei cells")
    assert measure.run() is not None
    qtbot.waitUntil(lambda: measure.worker is None, timeout=30_000)
    _, comments = read_objects_csv(measure.save_csv(str(tmp_path / "cells.csv")))
    assert comments["command"] == record["command"] and "edited" not in comments
    cells.paint((40, 40), 3)
    assert measure.run() is not None
    qtbot.waitUntil(lambda: measure.worker is None, timeout=30_000)
    _, comments = read_objects_csv(measure.save_csv(str(tmp_path / "painted.csv")))
    assert "changed after they were made" in comments["edited"]


def test_opened_before_segment_the_stain_is_the_other_channel_once_segment_names_its_own(make_napari_viewer, qtbot,
                                                                                          private_model_dir):
    """The natural order: Cells dock open, then Segment on channel 0 of a two-channel layer. Segment says which
    channel it used right after adding its layer; the stain offered is then channel 1, not the nuclear one."""
    from helpers import threshold_model

    from napari_unet_seg import save_model

    _, nuclei, cytoplasm, _ = tissue()
    save_model(threshold_model(), private_model_dir / "disks.safetensors")
    viewer = make_napari_viewer()
    _, cells = viewer.window.add_plugin_dock_widget(PLUGIN, "Cells from nuclei")
    image = viewer.add_image(np.stack([(nuclei > 0) * 1000.0, cytoplasm]).astype(np.float32), name="exp")
    _, segment = viewer.window.add_plugin_dock_widget(PLUGIN, "Segment")
    segment.refresh_models()
    segment.model_picker.combo.setCurrentText("disks")
    segment.settings.channel_axis.setCurrentIndex(segment.settings.channel_axis.findData(0))
    segment.settings.channel.setCurrentIndex(segment.settings.channel.findData(0))
    segment.run(image)
    qtbot.waitUntil(lambda: segment.worker is None, timeout=30_000)
    qtbot.waitUntil(lambda: cells.nuclei_picker.currentText() == "exp labels", timeout=5000)
    qtbot.waitUntil(lambda: cells.stain_picker.currentText() == "exp · channel 1", timeout=5000)
    assert cells.stain_picker.itemText(1) == "exp · channel 0"  # the nuclear channel: offered, after the other
    from napari_unet_seg._widgets import cells as cells_module

    warned = []
    cells_module.show_warning, shown = warned.append, cells_module.show_warning
    try:
        cells.stain_picker.setCurrentIndex(1)  # chosen anyway: said in a notification too, not only the status
        grow_and_wait(cells, qtbot)
    finally:
        cells_module.show_warning = shown
    assert warned == ["Cells: The stain is the image the nuclei were segmented from: choose the cytoplasm or "
                      "membrane stain."]


def test_a_stain_of_the_same_size_lying_elsewhere_is_not_the_default(docked):
    viewer, widget, _, cytoplasm = docked
    viewer.add_image(np.zeros_like(cytoplasm), name="another image")  # newest, of the same size, but at scale 1
    widget._refresh_choices()
    texts = [widget.stain_picker.itemText(i) for i in range(widget.stain_picker.count())]
    assert widget.stain_picker.currentText() == "cytoplasm" and "another image" in texts
