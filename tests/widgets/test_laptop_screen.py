"""All docks fit a 1366x768 laptop screen in any combination, tabbed or stacked: each button shown, nothing cut off."""

from __future__ import annotations

import itertools

import pytest
from helpers import quick_training, synthetic_nuclei
from qtpy.QtCore import Qt
from qtpy.QtWidgets import QAbstractButton, QApplication, QDockWidget, QLabel, QLineEdit, QScrollArea

from napari_unet_seg._widgets import _common
from napari_unet_seg._widgets import _dock_tabs as dock_tabs
from napari_unet_seg._widgets._dock_tabs import enclosing_dock
from napari_unet_seg._widgets import train as train_module

PLUGIN = "napari-unet-seg"
DOCKS = ("Segment", "Train", "Batch segment", "Measurements")
ALL_DOCKS = (*DOCKS, "Cells from nuclei")  # the combinations above: the four docks of the daily loop
SCREEN = (1366, 768)
pytestmark = pytest.mark.gui


def settle() -> None:
    for _ in range(10):
        QApplication.processEvents()


def open_dock(viewer, name):
    """The dock as a user opens it from the Plugins menu: the window lays it out before the next click."""
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, name)
    settle()
    return widget


def window_height(viewer) -> int:
    return viewer.screenshot(canvas_only=False).shape[0]  # the whole window, as drawn


def action_button(widget) -> QAbstractButton:
    return next(getattr(widget, name) for name in ("segment_button", "train_button", "run_button", "measure_button")
                if hasattr(widget, name))


def shown_whole(widget) -> bool:
    """Visible and not cut by a scroll area or the dock's edge."""
    region = widget.visibleRegion().boundingRect()
    return widget.isVisible() and region.width() == widget.width() and region.height() == widget.height()


def dock_of(widget) -> QDockWidget:
    return enclosing_dock(widget)


def show_tab(widget) -> None:
    """Click the dock's tab, as a user does."""
    dock_of(widget).raise_()
    settle()


def tabbed_together(viewer, widget, other) -> bool:
    return dock_of(other) in viewer.window._qt_window.tabifiedDockWidgets(dock_of(widget))


def stack(viewer, widgets) -> None:
    """Drag each dock out of the tabs, as a user who wants them stacked does: one under the other, in order."""
    window = viewer.window._qt_window
    for widget in widgets:
        window.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, dock_of(widget))
    settle()


def test_on_a_laptop_screen_segment_train_and_batch_open_as_tabs_each_whole(make_napari_viewer, monkeypatch):
    """Stacked on 768 px, Segment showed only its Image row beside Train: each now has the whole height."""
    said: list[str] = []
    monkeypatch.setattr(dock_tabs, "show_info", said.append)
    viewer = make_napari_viewer(show=True)
    viewer.window.resize(1366, 740)  # 768 less a task bar; then the docks, as a user opens them
    segment = open_dock(viewer, "Segment")
    assert not said
    train = open_dock(viewer, "Train")
    assert tabbed_together(viewer, train, segment)
    assert said == ["Train opened as a tab beside Segment (this window is too short to stack them): switch with the "
                    "tabs under the docks, or drag a tab out to stack them."]  # where Segment went
    assert window_height(viewer) <= 768
    for control in (train.settings.image_box, train.settings.name, train.train_button, train.cancel_button, train.plot):
        assert shown_whole(control), control  # the new dock is the one in front
    show_tab(segment)
    assert train.visibleRegion().isEmpty()  # behind Segment's tab
    for control in (segment.settings, segment.segment_button, segment.cancel_button):
        assert shown_whole(control), control
    batch = open_dock(viewer, "Batch segment")
    assert tabbed_together(viewer, batch, segment) and tabbed_together(viewer, batch, train)
    for control in (batch.input_dir, batch.output_dir, batch.cells_channel, batch.run_button):
        assert shown_whole(control), control
    assert window_height(viewer) <= 768


def test_opening_the_history_on_a_laptop_screen_brings_it_into_view(make_napari_viewer, tmp_path):
    """In a laptop's window not maximised, the History opened below the settings' scrolled view: a 20-px strip of
    one row showed."""
    from napari_unet_seg.core.training.project import Project

    project = Project(tmp_path / "project")
    for k in range(4):
        project.record_model(tmp_path / f"round-{k}.safetensors", {"parent": "nuclei", "improved": True,
                                                                   "ap50_90": 0.5, "ap50": 0.8})
    viewer = make_napari_viewer(show=True)
    viewer.window.resize(1089, 630)
    open_dock(viewer, "Segment")
    train = open_dock(viewer, "Train")
    train.settings.project_dir.setText(str(tmp_path / "project"))
    train.settings.project_dir.editingFinished.emit()
    train.settings.history_section.toggle.click()
    settle()
    models = train.settings.history.models
    assert models.count() >= 4
    assert shown_whole(models)  # rows to read, not a strip


def test_on_a_tall_window_docks_stay_stacked_and_other_plugins_docks_are_never_tabbed(make_napari_viewer):
    viewer = make_napari_viewer(show=True)
    viewer.window.resize(1366, 1500)
    segment = open_dock(viewer, "Segment")
    train = open_dock(viewer, "Train")
    assert not viewer.window._qt_window.tabifiedDockWidgets(dock_of(train))
    assert shown_whole(segment.segment_button) and shown_whole(train.train_button)
    viewer.close()

    viewer = make_napari_viewer(show=True)
    viewer.window.resize(1366, 740)
    theirs = QLabel("another plugin")
    viewer.window.add_dock_widget(theirs, area="right", name="theirs")
    settle()
    segment = open_dock(viewer, "Segment")
    assert not viewer.window._qt_window.tabifiedDockWidgets(dock_of(segment))  # beside theirs: stacked, as napari does
    train = open_dock(viewer, "Train")
    assert tabbed_together(viewer, train, segment)
    assert dock_of(theirs) not in viewer.window._qt_window.tabifiedDockWidgets(dock_of(train))
    assert theirs.isVisible()


@pytest.mark.parametrize("count", [2, 3, 4])
def test_any_docks_together_keep_the_window_within_768_px_and_show_their_buttons(make_napari_viewer, count):
    """Tabbed or stacked by hand, the window never grows past the screen and each dock's button is in view.

    napari stacks docks and sums their minimum heights: dragged out of the
    tabs, the docks must still fit, each above the last at its minimum height.
    """
    for names in itertools.combinations(DOCKS, count):
        viewer = make_napari_viewer(show=True)
        viewer.window.resize(*SCREEN)
        widgets = [open_dock(viewer, name) for name in names]
        assert window_height(viewer) <= 768, names
        for name, widget in zip(names, widgets):
            show_tab(widget)
            assert shown_whole(action_button(widget)), f"{name}'s button is out of view in its tab with {names}"
        assert sum(widget.minimumSizeHint().height() for widget in widgets) < 768 - 48 - 30 * count
        stack(viewer, widgets)
        assert window_height(viewer) <= 768, names
        for name, widget in zip(names, widgets):
            assert shown_whole(action_button(widget)), f"{name}'s button is out of view with {names} stacked"
        viewer.close()


@pytest.mark.parametrize("name", ALL_DOCKS)
def test_a_dock_at_its_smallest_still_shows_its_button(make_napari_viewer, name):
    """Stacked by hand with another below it dragged as high as it goes, a dock still shows its button."""
    viewer = make_napari_viewer(show=True)
    viewer.window.resize(*SCREEN)
    widget = open_dock(viewer, name)
    below = open_dock(viewer, "Train" if name != "Train" else "Segment")
    stack(viewer, [widget, below])
    viewer.window._qt_window.resizeDocks([dock_of(widget), dock_of(below)], [1, 2000], Qt.Orientation.Vertical)
    settle()
    assert widget.height() <= widget.minimumSizeHint().height() + 5, "the splitter left it more than its minimum"
    assert shown_whole(action_button(widget)) and shown_whole(action_button(below))
    assert window_height(viewer) <= 768


@pytest.mark.parametrize("name", ALL_DOCKS)
def test_at_its_default_width_a_dock_cuts_nothing_off_at_the_side(make_napari_viewer, name):
    viewer = make_napari_viewer(show=True)
    viewer.window.resize(*SCREEN)
    widget = open_dock(viewer, name)
    for area in widget.findChildren(QScrollArea):
        if area.widget() is not None and area.isVisible() and area.horizontalScrollBar().isHidden():
            assert area.widget().width() <= area.viewport().width(), f"{name}: a scroll area cuts its content"
    for control in widget.findChildren((QAbstractButton, QLineEdit)):
        if control.isVisibleTo(widget):
            region = control.visibleRegion().boundingRect()
            if not region.isEmpty():  # scrolled out of view vertically is fine; cut at the side is not
                assert region.width() == control.width(), f"{name}: {control.text()!r} is cut off at the side"
            if isinstance(control, QAbstractButton):
                assert control.width() >= control.sizeHint().width(), f"{name}: {control.text()!r} is cut short"


def test_the_verdict_wraps_inside_a_scroll_area_and_the_window_never_grows(make_napari_viewer, qtbot, tmp_path,
                                                                           monkeypatch):
    errors: list[str] = []
    monkeypatch.setattr(train_module, "show_error", errors.append)
    monkeypatch.setattr(_common, "show_error", errors.append)
    viewer = make_napari_viewer(show=True)
    viewer.window.resize(1089, 630)  # a window smaller than the screen: it grew when the verdict came
    image, labels = synthetic_nuclei((96, 128))
    viewer.add_image(image, name="cells")
    viewer.add_labels(labels, name="cells labels")
    open_dock(viewer, "Segment")
    train = open_dock(viewer, "Train")
    quick_training(train, tmp_path / "project", 2)
    settle()
    before = window_height(viewer)
    train.start()
    qtbot.waitUntil(lambda: train.worker is None, timeout=60_000)
    settle()
    assert not errors, errors
    assert train.result.text().startswith("Saved model") and train.result.wordWrap()
    holder = train.result.parent()
    while holder is not None and not isinstance(holder, QScrollArea):
        holder = holder.parent()
    assert holder is not None and holder is not train.settings_area, "the verdict scrolls on its own"
    assert window_height(viewer) == before, "the verdict made the window taller"
    first_line = train.result.visibleRegion().boundingRect()
    assert first_line.top() == 0 and first_line.height() >= train.result.fontMetrics().height()  # in view, on top
    plot = train.plot.geometry()
    assert plot.top() >= train.result.geometry().bottom(), "the plot covers the verdict"
    assert isinstance(train.status, QLabel) and train.status.wordWrap()


def test_the_batch_dock_shows_every_setting_before_a_run_and_its_table_no_taller_than_its_rows(
        make_napari_viewer, qtbot, tmp_path, private_model_dir):
    """Alone on a laptop screen every setting is in view (an empty table took half the dock); after a run of two
    files the table holds two rows, not a blank band, and the settings keep the height."""
    import tifffile

    from helpers import threshold_model
    from napari_unet_seg import save_model

    viewer = make_napari_viewer(show=True)
    viewer.window.resize(1366, 740)
    batch = open_dock(viewer, "Batch segment")
    assert not batch.table.isVisible()  # no rows yet
    for control in (batch.cells_channel, batch.scheduler, batch.run_button):
        assert shown_whole(control), control
    save_model(threshold_model(), private_model_dir / "disks.safetensors")
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(2):
        tifffile.imwrite(folder / f"img {i}.tif", synthetic_nuclei((40, 48), n=5, seed=i)[0])
    batch.model_picker.refresh()
    batch.model_picker.combo.setCurrentText("disks")
    batch.input_dir.setText(str(folder))
    batch.output_dir.setText(str(tmp_path / "out"))
    assert batch.run() is not None
    qtbot.waitUntil(lambda: batch.worker is None, timeout=60_000)
    settle()
    assert batch.table.isVisible() and batch.table.rowCount() == 2
    rows = batch.table.rowHeight(0) + batch.table.rowHeight(1)
    assert batch.table.height() <= rows + 80  # header and scroll bar, no blank band
    assert shown_whole(batch.cells_channel) and shown_whole(batch.run_button)


def test_the_measurements_dock_alone_shows_every_setting(make_napari_viewer):
    """A scroll area asks for less height than its content: given no share of the dock, the Class names row was cut
    while the empty table below took 450 px."""
    viewer = make_napari_viewer(show=True)
    viewer.window.resize(1366, 740)
    measure = open_dock(viewer, "Measurements")
    for control in (measure.labels_picker, measure.images, measure.classes_picker, measure.class_names,
                    measure.measure_button, measure.save_button):
        assert shown_whole(control), control
