"""The "Measurements" dock: one row per object of a Labels layer, as its features, a table and a CSV.

A thin shell over :func:`napari_unet_seg.core.measure.measurements.measure_objects`:
it reads the chosen layers, measures in a worker thread, and on the main thread
sets the layer's ``features``, fills a sortable table (click a row to go to
its object), colours labels by a column, and saves the table as CSV.
"""

from __future__ import annotations

import threading
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from napari.layers import Image, Labels
from napari.utils.notifications import show_error, show_info, show_warning
from napari.viewer import Viewer
from qtpy.QtCore import QModelIndex, Qt
from qtpy.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from .._layer_marks import features_stamp, layer_provenance
from ..core.common.atomic import check_writable_folder
from ..core.common.errors import first_line
from ..core.inference.layout import MAX_CHANNELS
from ..core.inference.provenance import class_map_comments, csv_comments
from ..core.measure.classes import check_class_names, class_counts, class_names_note, looks_like_objects
from ..core.measure.measurements import ObjectTable, colour_without_alpha, measure_objects
from ..core.measure.table_csv import write_objects_csv
from ._common import LookAgainAfterAdding, compact, progress_relay, refill, run_controls, start_worker
from ._layers import (
    current_plane, layer_id, layer_named, on_layers_changed, on_layers_moved, pixel_events, same_layer, same_place,
    source_array,
)
from ._scroll import fill_dock, scrolling
from .measure_classes import (
    NO_CLASSES,
    class_names_of,
    colours_by_class,
    colours_of_classes,
    holds_objects,
    is_class_output,
    may_hold_classes,
    name_classes,
)
from .measure_table import ObjectTableModel, colours_by, colours_need_numba, numeric_columns, sortable

LABEL_COLOURS = "(label colours)"


def physical_size(layer: Labels) -> tuple[tuple[float, float] | None, str]:
    """The layer's pixel size (y, x) and unit, or None when it has none (a scale of 1)."""
    scale = tuple(float(s) for s in layer.scale[-2:])
    if scale == (1.0, 1.0):
        return None, "um"
    unit = format(layer.units[-1], "~") if getattr(layer, "units", None) else "pixel"
    unit = "um" if unit in ("pixel", "px") else unit.replace("µ", "u").replace(" ", "")  # our readers scale in µm
    return scale, unit


def _channels_first(layer: Image, shape: tuple[int, ...]) -> bool:
    """A multichannel layer (2-4 channels first) over labels of ``shape``: measured channel by channel."""
    data_shape = tuple(source_array(layer).shape)
    return bool(shape) and not layer.rgb and data_shape[1:] == shape and 2 <= data_shape[0] <= MAX_CHANNELS


def _channels_after(layer: Image, shape: tuple[int, ...]) -> bool:
    """A multichannel layer with 2-4 channels last (not colour) over labels of ``shape``: measured as it is."""
    data_shape = tuple(source_array(layer).shape)
    return bool(shape) and not layer.rgb and data_shape[:-1] == shape and 2 <= data_shape[-1] <= MAX_CHANNELS


def _channels_last(data: Any) -> Any:
    if isinstance(data, np.ndarray):
        return np.moveaxis(data, 0, -1)
    import dask.array as da

    return da.moveaxis(da.asarray(data), 0, -1)


def _top_class(classes: Labels, measured: Any) -> int:
    """The highest class of the class layer (of the objects, when reading the whole layer would cost much)."""
    data = source_array(classes)
    if isinstance(data, np.ndarray):
        return int(data.max(initial=0))
    return int(np.max(measured, initial=0))


class MeasureWidget(QWidget):
    """Measure the objects of a Labels layer, with the intensities of chosen image layers."""

    def __init__(self, napari_viewer: Viewer, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = napari_viewer
        self.table: ObjectTable = {}
        self.measured: Labels | None = None
        self._measured_images: list[str] = []
        self._measured_classes: str | None = None
        self._classes_record: dict | None = None  # what made the class map measured by: its model named in the CSV
        self._class_colours: dict[int, Any] = {}
        self._classes_picked = False  # the user chose a class layer (or none): keep it, pick no default over it
        self._labels_picked = False  # the user chose what to measure, even a class map: keep it
        self._watched: list[Labels] = []  # the measured labels and classes, whose painting dates the table
        self._run_watched: list[Labels] = []  # the layers a running measurement reads
        self._changed_mid_run = False  # their pixels changed during the run: its table is of pixels gone
        self._names_for: str | None = None  # the class layer whose names the Class names box shows
        self._classes_id: str | None = None  # the chosen class layer, followed through a rename
        self.worker: Any = None
        self._cancel = threading.Event()
        self._colour_column = LABEL_COLOURS
        self._original_colormap: Any = None
        self._build()
        on_layers_changed(self.viewer, self._refresh_layers)
        on_layers_moved(self.viewer, self._refresh_images)  # an image moved onto, or off, the labels: ticked again
        self._look_again = LookAgainAfterAdding(self, self.viewer, self._refresh_layers)  # a class output is named so
        self.viewer.dims.events.current_step.connect(self._recolour_for_slice)
        self.viewer.layers.selection.events.active.connect(self._follow_selection)
        self._refresh_layers()

    def _build(self) -> None:
        self.labels_picker = compact(QComboBox(), 8)
        self.labels_picker.setPlaceholderText("no labels layer")
        self.labels_picker.currentTextChanged.connect(self._refresh_images)
        self.labels_picker.activated.connect(self._picked_labels)
        self.images = QListWidget()
        self.images.setAccessibleName("Images to measure intensities in")
        self._unticked: set[str] = set()  # images the user unticked (not those left unticked for lying elsewhere)
        self._filling = False  # the list is being refilled: its ticks are not the user's
        self.images.itemChanged.connect(self._on_image_ticked)
        self.images.setMaximumHeight(64)
        self.images.setToolTip("Image layers of the same size: mean, median and integrated intensity of each "
                               "(of each channel of a colour or multichannel layer).")
        settings = QWidget()
        form = QFormLayout(settings)
        form.setContentsMargins(0, 0, 0, 0)
        form.addRow("Labels", self.labels_picker)
        form.addRow("Intensities", self.images)
        self.classes_picker = compact(QComboBox(), 8)
        self.classes_picker.setToolTip(
            "A Labels layer of classes (a class model's output, or regions you painted: 0 = none). Each object "
            "gets the class most of its classified pixels have, its name and the share of the object it covers.")
        self.classes_picker.activated.connect(self._picked_classes)
        self.classes_picker.currentTextChanged.connect(self._show_class_names)
        form.addRow("Classes", self.classes_picker)
        self.class_names = QLineEdit()
        self.class_names.setPlaceholderText("names of classes 1, 2...: tumour, stroma")
        self.class_names.setToolTip("What the classes are called, in order (class 1, class 2...): the table, the CSV "
                                    "and QuPath use them, and the class layer shows them under the cursor.")
        form.addRow("Class names", self.class_names)
        self._show_class_names()
        controls = run_controls("Measure", self.run, self._cancel.set, tooltip=(
            "Measure every object of the chosen labels (size, shape, position, intensities) into the table below."))
        self.measure_button, self.cancel_button = controls.run_button, controls.cancel_button
        self.progress_bar, self.status = controls.progress_bar, controls.status
        self.model = ObjectTableModel(parent=self)
        self.view = QTableView()
        self.view.setAccessibleName("Objects table")
        self.view.setModel(sortable(self.model))
        self.view.setSortingEnabled(True)
        self.view.sortByColumn(-1, Qt.SortOrder.AscendingOrder)
        self.view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.view.verticalHeader().setVisible(False)
        self.view.verticalHeader().setDefaultSectionSize(20)
        self.view.setMinimumHeight(60)
        self.view.setToolTip("Click a header to sort; click a row to go to its object.")
        self.view.clicked.connect(self.go_to_row)
        self.colour_by = compact(QComboBox(), 8)
        self.colour_by.setAccessibleName("Colour by")  # its label sits beside it, not in a form row
        self.colour_by.addItem(LABEL_COLOURS)
        self.colour_by.currentTextChanged.connect(self.colour_labels)
        self.save_button = QPushButton("Save as CSV…")
        self.save_button.setToolTip("Save the table as CSV, with a header naming the layers and what made them.")
        self.save_button.setEnabled(False)
        self.save_button.clicked.connect(lambda: self.save_csv())
        bottom = QHBoxLayout()
        bottom.addWidget(QLabel("Colour by"))
        bottom.addWidget(self.colour_by, 1)
        bottom.addWidget(self.save_button)
        body = QWidget()
        layout = QVBoxLayout(body)
        # the settings as tall as they are (a scroll area alone asks for less: the Class names row was cut), the
        # table the rest; squeezed, the settings scroll first
        layout.addWidget(scrolling(settings, 50, at_most_content=True), 1)
        layout.addLayout(controls.buttons)
        layout.addWidget(self.progress_bar)
        layout.addWidget(self.status)
        layout.addWidget(self.view, 1)
        layout.addLayout(bottom)
        fill_dock(self, body)  # beside many docks, the whole dock scrolls

    # layers -------------------------------------------------------------------------------------------------
    def labels_layer(self) -> Labels | None:
        return layer_named(self.viewer, self.labels_picker.currentText(), Labels)

    def _refresh_layers(self, event: Any = None) -> None:
        """Objects first (newest on top), then class outputs and training previews: what is measured by default."""
        layers = [layer for layer in reversed(self.viewer.layers) if isinstance(layer, Labels)]
        layers.sort(key=lambda layer: not holds_objects(layer))  # stable: the viewer's order within each group
        current = layer_named(self.viewer, self.labels_picker.currentText(), Labels)
        keep = current is not None and (holds_objects(current) or self._labels_picked)
        refill(self.labels_picker, [layer.name for layer in layers], current.name if keep else "")
        self._refresh_images()

    def _picked_labels(self, *_: Any) -> None:
        self._labels_picked = True

    def _follow_selection(self, event: Any = None) -> None:
        """Measure the objects layer selected in the viewer (the one just corrected); class maps go under Classes."""
        active = self.viewer.layers.selection.active
        if self.worker is None and isinstance(active, Labels) and holds_objects(active) \
                and active.name != self.labels_picker.currentText():
            self.labels_picker.setCurrentText(active.name)
            self._labels_picked = False  # followed, not chosen

    def _refresh_images(self, *_: Any) -> None:
        """Image layers whose pixels match the labels (RGB too), ticked unless unticked before or lying elsewhere
        on screen (another scale, position or rotation: of the same size, but not the labels' image)."""
        self._filling = True
        try:
            self.images.clear()
            labels = self.labels_layer()
            if labels is None:
                return
            shape = tuple(source_array(labels).shape)
            for layer in self.viewer.layers:
                data_shape = tuple(source_array(layer).shape) if isinstance(layer, Image) else None
                if data_shape is not None and (data_shape == shape or (layer.rgb and data_shape[:-1] == shape)
                                               or _channels_first(layer, shape) or _channels_after(layer, shape)):
                    item = QListWidgetItem(layer.name)
                    ticked = layer.name not in self._unticked and same_place(layer, labels, shape[-2:])
                    item.setCheckState(Qt.CheckState.Checked if ticked else Qt.CheckState.Unchecked)
                    self.images.addItem(item)
        finally:
            self._filling = False
        self._refresh_classes()

    def _left_out_elsewhere(self, labels: Labels) -> list[str]:
        """The images of the labels' size left unticked because they lie elsewhere on screen (not by the user)."""
        shape = tuple(source_array(labels).shape)[-2:]
        names = [self.images.item(i).text() for i in range(self.images.count())
                 if self.images.item(i).checkState() != Qt.CheckState.Checked]
        return [name for name in names if name not in self._unticked and name in self.viewer.layers
                and not same_place(self.viewer.layers[name], labels, shape)]

    def _on_image_ticked(self, item: QListWidgetItem) -> None:
        """Remember what the user ticks and unticks; the list's own refills are not choices."""
        if self._filling:
            return
        if item.checkState() == Qt.CheckState.Checked:
            self._unticked.discard(item.text())
        else:
            self._unticked.add(item.text())

    def _picked_classes(self, *_: Any) -> None:
        self._classes_picked = True
        chosen = self.classes_layer()
        self._classes_id = layer_id(chosen) if chosen is not None else None

    def _refresh_classes(self) -> None:
        """Labels layers of the labels' size that can classify them; a class model's output chosen by default."""
        labels = self.labels_layer()
        shape = tuple(source_array(labels).shape) if labels is not None else None
        layers = [layer for layer in reversed(self.viewer.layers) if isinstance(layer, Labels)
                  and labels is not None and layer.name != labels.name and may_hold_classes(layer)
                  and tuple(source_array(layer).shape) == shape]
        current = self.classes_picker.currentText()
        renamed = next((layer.name for layer in layers if layer_id(layer) == self._classes_id), None)
        if current not in (NO_CLASSES, *(layer.name for layer in layers)) and renamed is not None:
            current = renamed  # the chosen class layer was renamed: still chosen
        if not self._classes_picked and current in ("", NO_CLASSES):
            current = next((layer.name for layer in layers if is_class_output(layer)), NO_CLASSES)
        refill(self.classes_picker, [NO_CLASSES, *(layer.name for layer in layers)], current)
        chosen = self.classes_layer()
        self._classes_id = layer_id(chosen) if chosen is not None else None
        if self.classes_picker.currentText() != self._names_for:  # another class layer: its names, not the last's
            self._show_class_names()

    def classes_layer(self) -> Labels | None:
        return layer_named(self.viewer, self.classes_picker.currentText(), Labels)

    def _show_class_names(self, *_: Any) -> None:
        """The chosen class layer's names (a class model's, or those typed for it before), ready to edit."""
        layer = self.classes_layer()
        names = class_names_of(layer) if layer is not None else None
        self.class_names.setEnabled(layer is not None)
        self.class_names.setText(", ".join(names[1:]) if names else "")
        self._names_for = self.classes_picker.currentText()

    def typed_class_names(self) -> list[str] | None:
        """Names indexed by class (0 = background) from the box, or None when it is empty."""
        typed = [name.strip() for name in self.class_names.text().split(",")]
        return ["background", *typed] if any(typed) else None

    def chosen_images(self) -> dict[str, Any]:
        """The ticked layers' pixels; a (C, H, W) layer with its channels last, as the core measures colour."""
        chosen = {}
        labels = self.labels_layer()
        shape = tuple(source_array(labels).shape) if labels is not None else ()
        for i in range(self.images.count()):
            name = self.images.item(i).text()
            if self.images.item(i).checkState() != Qt.CheckState.Checked or name not in self.viewer.layers:
                continue
            layer = self.viewer.layers[name]
            data = source_array(layer)
            chosen[name] = _channels_last(data) if _channels_first(layer, shape) else \
                colour_without_alpha(data) if layer.rgb else data
        return chosen

    # measuring ----------------------------------------------------------------------------------------------
    def run(self) -> Any:
        """Measure the chosen layers in a worker thread; returns the worker (None if nothing to measure)."""
        layer = self.labels_layer()
        if layer is None or self.worker is not None:
            if layer is None:
                show_error("Measure: choose a Labels layer first")
                self.status.setText("Not measured: choose a Labels layer first (Segment makes one, or open labels).")
            return None
        self._refresh_classes()  # a class output whose task was named after its layer came
        pixel_size, unit = physical_size(layer)
        images = self.chosen_images()
        classes = self.classes_layer()
        names = self.typed_class_names() if classes is not None else None
        try:
            check_class_names(names[1:] if names else ())
        except ValueError as exc:
            show_error(f"Measure: {exc}")
            self.status.setText(f"Not measured: {exc}")
            return None
        if classes is not None and names is not None:
            name_classes(classes, names)  # the layer says them under the cursor, and keeps them for next time
        elif classes is not None:
            names = class_names_of(classes)  # none typed: the layer's own (a class model's, or typed before)
        self._cancel.clear()
        self._watch_run([layer, *([classes] if classes is not None else [])])
        work = partial(measure_objects, source_array(layer), images, pixel_size=pixel_size, unit=unit,
                       classes=source_array(classes) if classes is not None else None,
                       class_names=names,
                       progress=progress_relay(self._progress, parent=self), cancel=self._cancel.is_set)
        self.measure_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.status.setText(f"Measuring {layer.name}…")
        self.worker = start_worker(self, work, failure="Measuring failed", cancel_on_close=self._cancel,
                                   discard_if=self._cancel,
                                   stopped_on_close="Measuring stopped: its panel was closed; nothing was measured.",
                                   on_returned=partial(self._show, layer, list(images), classes),
                                   on_cancelled=lambda: self.status.setText("Cancelled: nothing measured."),
                                   on_failed=partial(self._failed, layer),
                                   on_finished=self._finished)
        return self.worker

    def _progress(self, done: int, total: int) -> None:
        self.progress_bar.setMaximum(max(total, 1))
        self.progress_bar.setValue(done)

    def _watch_run(self, layers: list[Labels]) -> None:
        """Hear, while a run measures ``layers``, whether their pixels change (painted, replaced): its table is then
        of pixels no longer there, so it is not shown (features would carry it into exports)."""
        self._changed_mid_run = False
        self._run_watched = layers
        for event in pixel_events(layers):
            event.connect(self._changed_during_run)

    def _changed_during_run(self, event: Any = None) -> None:
        self._changed_mid_run = True

    def _finished(self) -> None:
        for event in pixel_events(self._run_watched):
            event.disconnect(self._changed_during_run)
        self._run_watched = []
        self.worker = None
        self.measure_button.setEnabled(True)
        self.cancel_button.setEnabled(False)

    def _failed(self, layer: Labels, exc: Exception) -> None:
        """Say why, and show no other layer's table under it as if it were this one's."""
        if not same_layer(self.measured, layer):
            self._restore_colours()
            self._unwatch()
            self.table, self.measured = {}, None
            self.model.set_table({})
            self.colour_by.clear()
            self.save_button.setEnabled(False)
        self.status.setText(f"Failed: {first_line(exc)}")

    def _show(self, layer: Labels, images: list[str], classes: Labels | None, table: ObjectTable) -> None:
        """On the main thread: the table becomes the layer's features, the view's rows and the colour choices."""
        if layer not in self.viewer.layers:
            self.status.setText("The labels layer was removed meanwhile: nothing shown.")
            return
        if self._changed_mid_run:
            self.status.setText(f"'{layer.name}' changed while it was being measured: nothing shown; press Measure "
                                "again.")
            show_info(f"'{layer.name}' changed while it was being measured, so its table was discarded.")
            return
        self._restore_colours()
        self._watch(layer, classes)
        self.table, self.measured, self._measured_images = table, layer, images
        self._measured_classes = classes.name if classes is not None else None
        self._classes_record = classes.metadata.get("provenance") if classes is not None else None
        self._class_colours = (colours_of_classes(classes, table["class"])
                               if classes is not None and classes in self.viewer.layers else {})
        layer.features = {"index": table["label"], **table}
        layer.metadata = {**layer.metadata, **features_stamp(layer.data)}  # an export drops them once painted
        self.model.set_table(table)
        self.view.resizeColumnsToContents()
        self.colour_by.blockSignals(True)
        self.colour_by.clear()
        self.colour_by.addItems([LABEL_COLOURS, *numeric_columns(table)])
        self.colour_by.blockSignals(False)
        self.save_button.setEnabled(True)
        count = len(table["label"])
        slices = f" in {len(np.unique(table['slice']))} slices" if "slice" in table and count else ""
        counts = class_counts(table)
        text = (f"{count} objects{slices} in {layer.name}{f' ({counts})' if counts else ''}." if count else
                f"{layer.name} holds no objects (every pixel is 0).")
        if "class" in table and looks_like_objects(table["class"]):
            text += (f" Note: '{classes.name if classes else ''}' gave nearly every object a class of its own: is "
                     "it a layer of objects rather than classes? Choose a class map under Classes.")
        if is_class_output(layer):
            text += (f" Note: '{layer.name}' is a class model's output, so each class was measured as one object; "
                     "for a class per object, measure the objects' labels and choose this layer under Classes.")
        if "class" in table and classes is not None and (note := class_names_note(self.typed_class_names(),
                                                                              _top_class(classes, table["class"]))):
            text += f" Note: {note}."
        if elsewhere := self._left_out_elsewhere(layer):
            text += (f" Not measured: {', '.join(repr(n) for n in elsewhere)}, which lies elsewhere on screen than "
                     "the labels (another pixel size, position or rotation); tick it to measure it all the same.")
        self.status.setText(text)
        if "class" in table:  # classes are what the user asked to see (after the text: colouring may add a note)
            self.colour_by.setCurrentText("class")

    def _watch(self, layer: Labels, classes: Labels | None = None) -> None:
        """Hear when the measured pixels change (painting, a new Segment run): the labels', and the classes'."""
        self._unwatch()
        self._watched = [layer, *([classes] if classes is not None else [])]
        for event in pixel_events(self._watched):
            event.connect(self._labels_changed)
        layer.events.scale.connect(self._scale_changed)

    def _unwatch(self) -> None:
        for event in pixel_events(self._watched):
            event.disconnect(self._labels_changed)
        if self._watched:
            self._watched[0].events.scale.disconnect(self._scale_changed)
        self._watched = []

    def _labels_changed(self, event: Any = None) -> None:
        """Painted or replaced labels make the table out of date: say so, and let no old number travel on.

        The layer's features would otherwise go on into saved files (GeoJSON
        properties), and the CSV would list erased objects and miss new ones.
        """
        layer = self.measured
        if layer is None or not self._outdated():
            return
        changed = event.source.name if event is not None and isinstance(event.source, Labels) else layer.name
        since = "it was" if changed == layer.name else f"{layer.name} was"
        self.status.setText(f"{changed} changed since {since} measured: press Measure again (the table shows the "
                            "objects as they were).")

    def _scale_changed(self, event: Any = None) -> None:
        """A pixel size set after measuring (the Segment dock's *Use it*, the console): the sizes in µm, or their
        absence, are out of date too."""
        layer = self.measured
        if layer is not None and self._outdated():
            self.status.setText(f"{layer.name}'s pixel size changed since it was measured: press Measure again "
                                "(the table's sizes are in the old units).")

    def _outdated(self) -> bool:
        """Mark the table out of date (no saving it, no features on the layer); False when it was already."""
        layer = self.measured
        if layer is None or not self.save_button.isEnabled():
            return False
        self.save_button.setEnabled(False)
        if layer in self.viewer.layers:
            layer.features = {}
        return True

    # the table and the viewer -------------------------------------------------------------------------------
    def go_to_row(self, index: QModelIndex) -> None:
        """Centre the viewer on the object of the clicked row (its slice too) and select its label."""
        layer = self.measured
        if layer is None or layer not in self.viewer.layers or not index.isValid():
            return
        row = self.view.model().mapToSource(index).row()
        lead = [int(self.table[c][row]) for c in self.table if c == "slice" or c.startswith("axis")]
        point = [*lead, float(self.table["centroid_y"][row]), float(self.table["centroid_x"][row])]
        world = list(layer.data_to_world(point))
        if lead:
            ndim = self.viewer.dims.ndim
            self.viewer.dims.set_point(range(ndim - len(world), ndim - 2), world[:-2])
        self.viewer.camera.center = world[-2:]
        layer.selected_label = int(self.table["label"][row])

    def colour_labels(self, column: str) -> None:
        """Colour each object by ``column`` (the slice on screen, for stacks); LABEL_COLOURS restores them."""
        layer = self.measured
        self._colour_column = column
        if layer is None or layer not in self.viewer.layers:
            return
        if column == LABEL_COLOURS or column not in self.table:
            self._restore_colours()
            return
        if (why := colours_need_numba(self.table["label"])) is not None:
            counts = self.status.text() if self.status.text().endswith(".") and "numba" not in self.status.text() \
                else ""  # what measuring said (the objects per class) stays said
            self.status.setText(f"{counts} {why[0].upper()}{why[1:]}.".strip())
            show_warning(why[0].upper() + why[1:] + ".")
            self.colour_by.blockSignals(True)
            self.colour_by.setCurrentText(LABEL_COLOURS)
            self.colour_by.blockSignals(False)
            self._colour_column = LABEL_COLOURS
            self._restore_colours()
            return
        if self._original_colormap is None:
            self._original_colormap = layer.colormap
        rows = np.ones(len(self.table["label"]), bool)
        if "slice" in self.table:
            (plane,) = current_plane(self.viewer, layer, 1)
            rows = self.table["slice"] == plane
        if column == "class" and self._class_colours:
            layer.colormap = colours_by_class(self.table["label"][rows], self.table["class"][rows], self._class_colours)
            self._uncover(layer)
        else:
            layer.colormap = colours_by(self.table["label"][rows], self.table[column][rows])

    def _uncover(self, layer: Labels) -> None:
        """Hide the class layer when it is drawn over the objects: in the same colours, they would vanish into it."""
        classes = layer_named(self.viewer, self._measured_classes, Labels)
        layers = self.viewer.layers
        if classes is None or same_layer(classes, layer) or not classes.visible \
                or layers.index(classes) < layers.index(layer):
            return
        classes.visible = False
        self.status.setText(f"{self.status.text()} '{classes.name}' is hidden so that the objects show in their "
                            "classes' colours (its eye in the layer list shows it again).".strip())

    def _recolour_for_slice(self, event: Any = None) -> None:
        if self._colour_column != LABEL_COLOURS and "slice" in self.table:
            self.colour_labels(self._colour_column)

    def _restore_colours(self) -> None:
        if self._original_colormap is not None and self.measured in self.viewer.layers:
            self.measured.colormap = self._original_colormap
        self._original_colormap = None

    def _provenance_comments(self) -> dict[str, str]:
        """What made the measured labels, if Segment did; and whether they were painted on since."""
        record = layer_provenance(self.measured.metadata, self.measured.data)
        if not record:
            return {}
        edited = {"edited": record.pop("edited")} if "edited" in record else {}
        return {**csv_comments(record), **edited}

    def save_csv(self, path: str | None = None) -> Path | None:
        """Write the table (with a header naming the layers and pixel size); asks where when no ``path``."""
        if not self.table or self.measured is None:
            return None
        if path is None:
            path, _ = QFileDialog.getSaveFileName(self, "Save measurements", f"{self.measured.name}_objects.csv",
                                                  "CSV (*.csv)")
            if not path:
                return None
        if not path.lower().endswith(".csv"):
            path += ".csv"  # a name typed bare ("cells"): a table every program opens, as the CLI asks for
        pixel_size, unit = physical_size(self.measured)
        comments = {"labels": self.measured.name, "images": ", ".join(self._measured_images) or "none",
                    **({"classes": self._measured_classes} if self._measured_classes else {}),
                    **class_map_comments(self._classes_record),
                    "pixel_size": f"{pixel_size[0]:g} x {pixel_size[1]:g} {unit}" if pixel_size else "unknown"}
        try:
            check_writable_folder(Path(path).parent)  # "cannot write to <folder>: ...", not a temporary file's name
            written = write_objects_csv(path, self.table, {**comments, **self._provenance_comments()})
        except OSError as exc:
            show_error(f"Could not save the measurements: {first_line(exc)}")
            return None
        show_info(f"Saved {len(self.table['label'])} objects to {written}")
        return written

