"""Layers > Segment > "Segment with U-Net" and the batch command, through the manifest."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from napari.layers import Labels
from app_model import Application
from npe2 import PluginManifest

from napari_unet_seg import new_model, save_model
from napari_unet_seg._commands import open_batch_widget, segment_with_unet
from napari_unet_seg._sample_data import nuclei_sample
from napari_unet_seg._widgets import segment as segment_module
from napari_unet_seg._widgets.batch import BatchWidget
from napari_unet_seg._widgets.segment import SegmentWidget
from napari_unet_seg._widgets.train import TrainWidget
from napari_unet_seg.core.model.registry import user_model_dir

pytestmark = pytest.mark.gui


@pytest.fixture
def tiny_in_user_folder() -> None:
    torch.manual_seed(0)
    save_model(new_model("instances", depth=2, base_channels=4), user_model_dir() / "tiny")


COMMAND = "napari-unet-seg.segment_with_unet"


def docked(viewer, kind):
    """The one dock widget of ``kind`` (the commands open theirs as the Plugins menu names it)."""
    (widget,) = [w for w in viewer.window.dock_widgets.values() if isinstance(w, kind)]
    return widget


def test_menu_entry_is_declared():
    manifest = PluginManifest.from_distribution("napari-unet-seg")
    menu = manifest.contributions.menus["napari/layers/segment"]
    assert [item.command for item in menu] == [COMMAND]
    titles = {c.id: c.title for c in manifest.contributions.commands}
    assert titles[COMMAND] == "Segment with U-Net"


def test_layers_segment_menu_runs_the_command(make_napari_viewer, qtbot, tiny_in_user_folder):
    viewer = make_napari_viewer()
    # make_napari_viewer runs napari on a fresh app-model application called "test_app"
    app = Application.get_app("test_app") or Application.get_app("napari")
    items = app.menus.get_menu("napari/layers/segment")
    assert COMMAND in [item.command.id for item in items if hasattr(item, "command")]
    viewer.add_image(np.random.default_rng(0).integers(0, 255, (64, 80), dtype=np.uint8), name="cells")
    app.commands.execute_command(COMMAND).result()  # what clicking the menu item does
    widget = docked(viewer, SegmentWidget)
    qtbot.waitUntil(lambda: widget.worker is None, timeout=60_000)
    assert viewer.layers["cells labels"].data.shape == (64, 80)


def test_the_reader_and_writers_are_no_command_palette_entries_and_still_read_and_write(make_napari_viewer,
                                                                                        tmp_path):
    """Offered in the command palette (Ctrl+Shift+P), they ran with no path nor layers: a TypeError traceback."""
    from napari.components.viewer_model import ViewerModel

    viewer = make_napari_viewer()
    app = Application.get_app("test_app") or Application.get_app("napari")
    palette = {item.command.id: item.command for item in app.menus.get_menu(app.menus.COMMAND_PALETTE_ID)}
    assert palette[COMMAND].enablement is None  # the plugin's real commands stay
    for name in ("get_reader", "write_labels_rois", "write_labels_geojson", "write_labels_ome_zarr"):
        rule = palette[f"napari-unet-seg.{name}"]
        assert rule.enablement is not None and not rule.enablement.eval({}), name  # greyed out: Enter does nothing
    labels = np.zeros((40, 40), np.uint16)
    labels[5:15, 5:15], labels[20:30, 22:35] = 1, 2
    viewer.add_labels(labels, name="nuclei labels")
    [written] = viewer.layers.save(str(tmp_path / "n.ome.zarr"), plugin="napari-unet-seg")
    again = ViewerModel()
    again.open(written, plugin="napari-unet-seg")
    np.testing.assert_array_equal(np.asarray(again.layers[-1].data), labels)


def test_command_segments_selected_image(make_napari_viewer, qtbot, tiny_in_user_folder):
    viewer = make_napari_viewer()
    for data, kwargs, kind in nuclei_sample():
        getattr(viewer, f"add_{kind}")(data, **kwargs)
    viewer.layers.selection.active = viewer.layers["nuclei"]
    segment_with_unet(viewer)
    widget = docked(viewer, SegmentWidget)
    assert isinstance(widget, SegmentWidget)
    qtbot.waitUntil(lambda: widget.worker is None, timeout=60_000)
    labels = viewer.layers["nuclei labels"]
    assert isinstance(labels, Labels) and labels.data.shape == viewer.layers["nuclei"].data.shape

    segment_with_unet(viewer)  # the same dock is reused, and the result layer updated
    qtbot.waitUntil(lambda: widget.worker is None, timeout=60_000)
    assert [layer.name for layer in viewer.layers if layer.name.startswith("nuclei labels")] == ["nuclei labels"]


def test_command_on_points_layer_is_a_clear_error(make_napari_viewer, monkeypatch, tiny_in_user_folder):
    errors: list[str] = []
    monkeypatch.setattr(segment_module, "show_error", errors.append)
    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((16, 16), np.uint8), name="img")
    viewer.add_points([[2, 2]], name="spots")
    viewer.layers.selection.active = viewer.layers["spots"]
    segment_with_unet(viewer)
    assert errors and "'spots' is a Points layer" in errors[0]
    assert not any(isinstance(layer, Labels) for layer in viewer.layers)


def test_menu_with_a_labels_layer_selected_names_the_layers_kind(make_napari_viewer, monkeypatch,
                                                                 tiny_in_user_folder):
    """napari hands plugins their layers in a PublicOnlyProxy: the message names the layer's kind, not the proxy."""
    from napari.utils._proxies import PublicOnlyProxy

    errors: list[str] = []
    monkeypatch.setattr(segment_module, "show_error", errors.append)
    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((16, 16), np.uint8), name="img")
    labels = viewer.add_labels(np.zeros((16, 16), np.uint8), name="my labels")
    viewer.layers.selection.active = labels
    app = Application.get_app("test_app") or Application.get_app("napari")
    app.commands.execute_command(COMMAND).result()  # Layers > Segment > Segment with U-Net
    widget = docked(viewer, SegmentWidget)
    widget.run(PublicOnlyProxy(labels))  # as a plugin is handed it, whatever napari's version
    expected = "'my labels' is a Labels layer; select an image layer to segment."
    assert errors == [expected, expected]
    assert widget.worker is None


def test_batch_command_opens_the_batch_dock(make_napari_viewer):
    viewer = make_napari_viewer()
    open_batch_widget(viewer)
    widget = docked(viewer, BatchWidget)
    assert isinstance(widget, BatchWidget)
    open_batch_widget(viewer)  # a second call reuses the dock
    assert docked(viewer, BatchWidget) is widget


@pytest.mark.parametrize("name, kind", [("Segment", SegmentWidget), ("Train", TrainWidget),
                                        ("Batch segment", BatchWidget)])
def test_every_dock_widget_opens_through_napari(make_napari_viewer, name, kind):
    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((2, 16, 16), np.uint8), name="img")
    viewer.add_labels(np.zeros((2, 16, 16), np.uint8), name="img labels")
    dock, widget = viewer.window.add_plugin_dock_widget("napari-unet-seg", name)
    assert isinstance(widget, kind) and dock.widget() is not None
    assert viewer.window.add_plugin_dock_widget("napari-unet-seg", name)[1] is widget  # reused, not doubled


def test_the_menu_command_uses_the_dock_the_plugins_menu_opened(make_napari_viewer, qtbot, tiny_in_user_folder):
    """The Plugins menu names its dock by the plugin's display name: the command must find it, not open another."""
    viewer = make_napari_viewer()
    viewer.add_image(np.random.default_rng(0).integers(0, 255, (64, 80), dtype=np.uint8), name="cells")
    app = Application.get_app("test_app") or Application.get_app("napari")
    app.commands.execute_command("napari-unet-seg.segment_widget").result()  # Plugins > U-Net Segmentation > Segment
    opened = [w for w in viewer.window.dock_widgets.values() if isinstance(w, SegmentWidget)]
    assert len(opened) == 1
    (widget,) = opened
    widget.settings.diameter.setValue(15.0)  # a setting the user made in that dock
    segment_with_unet(viewer)
    assert [w for w in viewer.window.dock_widgets.values() if isinstance(w, SegmentWidget)] == [widget]
    qtbot.waitUntil(lambda: widget.worker is None, timeout=60_000)
    assert viewer.layers["cells labels"].metadata["provenance"]["settings"]["diameter"] == 15.0
    open_batch_widget(viewer)
    app.commands.execute_command("napari-unet-seg.batch_widget").result()  # toggles the same dock, not a second
    assert len([w for w in viewer.window.dock_widgets.values() if isinstance(w, BatchWidget)]) == 1


def test_menu_on_an_image_napari_opened_as_labels_says_how_to_convert_it(make_napari_viewer, monkeypatch,
                                                                         tiny_in_user_folder):
    # napari opens 32-bit integer TIFFs as Labels: "select an image layer" left the user wondering which
    from napari.utils._proxies import PublicOnlyProxy

    errors: list[str] = []
    monkeypatch.setattr(segment_module, "show_error", errors.append)
    viewer = make_napari_viewer()
    counts = np.random.default_rng(0).integers(0, 4000, (40, 50), dtype=np.int32)
    misread = viewer.add_labels(counts, name="a_i32")
    viewer.layers.selection.active = misread
    segment_with_unet(viewer)
    docked(viewer, SegmentWidget).run(PublicOnlyProxy(misread))
    expected = ("'a_i32' is an image napari opened as a Labels layer (it does so for 32-bit integer files): "
                "right-click it > Convert to Image, then Segment.")
    assert errors == [expected, expected]
    assert not any(isinstance(layer, Labels) and layer is not misread for layer in viewer.layers)
