"""The "Cells from nuclei" dock: each nucleus of a Labels layer grown into its whole cell, with the same id.

A thin shell over :func:`napari_unet_seg.core.inference.cells.grow_cells`: it
reads the chosen layers, grows the cells in a worker thread, and on the main
thread puts them into a Labels layer beside the nuclei. A cells layer this
dock made is replaced by the next run only while nobody has painted on it.
"""

from __future__ import annotations

import threading
from functools import partial
from typing import Any

import numpy as np
from napari.layers import Image, Labels
from napari.utils.notifications import show_error, show_info, show_warning
from napari.viewer import Viewer
from qtpy.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QVBoxLayout,
    QWidget,
)

from ..core.common.errors import first_line
from ..core.inference.cells import CellOptions, cells_note, check_cell_options, grow_cells_noted
from ..core.inference.layout import MAX_CHANNELS
from ..core.inference.provenance import describe_cells
from ._common import (
    LookAgainAfterAdding,
    compact,
    progress_relay,
    refill,
    run_controls,
    start_worker,
    value_or_none,
)
from ._layers import layer_id, layer_named, on_layers_changed, same_place, source_array
from ._scroll import fill_dock, scrolling
from .._layer_marks import CELLS_KEY, SEGMENT_KEY, fingerprint, untouched
from .segment_layers import spatial_kwargs, unique_name

NO_STAIN = "(none: nearest nucleus)"
FROM_STAIN = "(the stain's bright area)"
BOUNDARY_CHOICES = {
    "cytoplasm: bright cells, dim seams": "cytoplasm",
    "membrane: bright outlines": "membrane",
    "nearest nucleus": "distance",
}


class CellsWidget(QWidget):
    """Grow whole cells around the nuclei of a Labels layer over a cell stain (or by distance)."""

    def __init__(self, napari_viewer: Viewer, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = napari_viewer
        self.worker: Any = None
        self._cancel = threading.Event()
        self._stains: dict[str, tuple[str, int | None]] = {}  # picker text -> (layer name, channel or None)
        self._channels_last: set[str] = set()  # picker texts of a channel of a (H, W, C) layer (not channels first)
        self._chosen_stain: str | None = None  # what the user picked; otherwise the first likely stain is offered
        self._boundary_before: str | None = None  # the boundary "no stain" replaced, given back with a stain
        self._build()
        on_layers_changed(self.viewer, self._refresh_layers)
        self._look_again = LookAgainAfterAdding(self, self.viewer, self._refresh_layers)  # its source is named so
        self._refresh_layers()

    def _build(self) -> None:
        self.nuclei_picker = compact(QComboBox(), 8)
        self.nuclei_picker.setPlaceholderText("no labels layer")
        self.nuclei_picker.setToolTip("The nuclei, e.g. Segment's result: each becomes a cell with its id.")
        self.nuclei_picker.currentTextChanged.connect(self._refresh_choices)
        self.stain_picker = compact(QComboBox(), 8)
        self.stain_picker.setToolTip("The cytoplasm or membrane stain, of the nuclei's size: a layer, or one channel "
                                     "of a multichannel layer (a colour image: the mean of its channels). None: each "
                                     "nucleus takes what is nearest to it.")
        self.stain_picker.currentTextChanged.connect(self._stain_changed)
        self.stain_picker.activated.connect(lambda _: setattr(self, "_chosen_stain", self.stain_picker.currentText()))
        self.boundary = compact(QComboBox(), 8)
        self.boundary.addItems(list(BOUNDARY_CHOICES))
        self.boundary.setToolTip("Where one cell ends and the next begins: a dim seam in a cytoplasm stain, a "
                                 "bright outline in a membrane stain, or halfway between two nuclei.")
        self.area_picker = compact(QComboBox(), 8)
        self.area_picker.setToolTip("Where cells are: the stain above the threshold, or a Labels layer of the "
                                    "same size (any nonzero value = cell; e.g. a class model's output).")
        self.area_picker.currentTextChanged.connect(self._area_changed)
        self.threshold = QDoubleSpinBox()
        self.threshold.setRange(0.0, 0.99)
        self.threshold.setSingleStep(0.05)
        self.threshold.setSpecialValueText("auto (Otsu)")
        self.threshold.setToolTip("Stain level where cells start, as a fraction of its range (1st to 99.8th "
                                  "percentile). Lower it if cells come out too small.")
        self.max_distance = QDoubleSpinBox()
        self.max_distance.setRange(0.0, 10000.0)
        self.max_distance.setDecimals(0)
        self.max_distance.setSuffix(" px")
        self.max_distance.setSpecialValueText("no limit")
        self.max_distance.setToolTip("How far a cell reaches from its nucleus at most, in pixels.")
        settings = QWidget()
        form = QFormLayout(settings)
        form.setContentsMargins(0, 0, 0, 0)
        form.addRow("Nuclei", self.nuclei_picker)
        form.addRow("Cell stain", self.stain_picker)
        form.addRow("Boundary", self.boundary)
        form.addRow("Cells where", self.area_picker)
        form.addRow("Threshold", self.threshold)
        form.addRow("Reach", self.max_distance)
        controls = run_controls("Grow cells", self.run, self._cancel.set, status=(
            "Each cell takes its nucleus's id: the Measurements tables of both join on 'label'."),
            tooltip="Grow each nucleus of the chosen labels into its cell over the chosen stain, as a new layer.")
        self.run_button, self.cancel_button = controls.run_button, controls.cancel_button
        self.progress_bar, self.status = controls.progress_bar, controls.status
        body = QWidget()
        layout = QVBoxLayout(body)
        layout.addWidget(scrolling(settings, 50, at_most_content=True), 1)  # the settings scroll; the button stays
        layout.addLayout(controls.buttons)
        layout.addWidget(self.progress_bar)
        layout.addWidget(self.status)
        layout.addStretch(0)
        fill_dock(self, body)

    # layers -------------------------------------------------------------------------------------------------
    def nuclei_layer(self) -> Labels | None:
        return layer_named(self.viewer, self.nuclei_picker.currentText(), Labels)

    def stain_layer(self) -> Image | None:
        name, _ = self._stains.get(self.stain_picker.currentText(), (None, None))
        return layer_named(self.viewer, name, Image) if name is not None else None

    def stain_data(self) -> Any:
        """The chosen stain's pixels: the layer's, or one channel of a (C, H, W) or (H, W, C) layer."""
        layer = self.stain_layer()
        if layer is None:
            return None
        text = self.stain_picker.currentText()
        _, channel = self._stains[text]
        if channel is None:
            return source_array(layer)
        return source_array(layer)[..., channel] if text in self._channels_last else source_array(layer)[channel]

    def area_layer(self) -> Labels | None:
        return layer_named(self.viewer, self.area_picker.currentText(), Labels)

    def _refresh_layers(self, event: Any = None) -> None:
        names = [layer.name for layer in reversed(self.viewer.layers)
                 if isinstance(layer, Labels) and CELLS_KEY not in layer.metadata]
        refill(self.nuclei_picker, names, self.nuclei_picker.currentText())
        self._refresh_choices()

    def _refresh_choices(self, *_: Any) -> None:
        """The stains and cell masks that match the nuclei pixel for pixel; the nuclei's own stain offered last."""
        nuclei = self.nuclei_layer()
        shape = None if nuclei is None else tuple(source_array(nuclei).shape)
        stains, masks, last = [], [], []
        for layer in reversed(self.viewer.layers):
            if not isinstance(layer, (Image, Labels)) or (nuclei is not None and layer.name == nuclei.name):
                continue  # by name: napari hands plugins wrapped layers, never the same object twice
            data_shape = tuple(source_array(layer).shape)
            if isinstance(layer, Image) and (data_shape == shape or (layer.rgb and data_shape[:-1] == shape)):
                stains.append((layer.name, layer.name, None))
            elif isinstance(layer, Image) and shape and not layer.rgb and data_shape[1:] == shape \
                    and 2 <= data_shape[0] <= MAX_CHANNELS:  # a multichannel layer, channels first: each channel
                stains += [(f"{layer.name} · channel {k}", layer.name, k) for k in range(data_shape[0])]
            elif isinstance(layer, Image) and shape and not layer.rgb and data_shape[:-1] == shape \
                    and 2 <= data_shape[-1] <= MAX_CHANNELS:  # channels last, as Segment's channel axis reads them
                last += [f"{layer.name} · channel {k}" for k in range(data_shape[-1])]
                stains += [(f"{layer.name} · channel {k}", layer.name, k) for k in range(data_shape[-1])]
            elif isinstance(layer, Labels) and data_shape == shape and CELLS_KEY not in layer.metadata:
                masks.append(layer.name)
        nuclear = _segmented_from(nuclei)
        elsewhere = {name for _, name, _ in stains if nuclei is not None
                     and not same_place(self.viewer.layers[name], nuclei, shape[-2:])}
        # first the stains lying where the nuclei lie (not another image's of the same size), the nuclei's own last
        stains.sort(key=lambda stain: (stain[1] in elsewhere, stain[1:] == nuclear))
        self._stains = {text: (name, channel) for text, name, channel in stains}
        self._channels_last = set(last)
        texts = [text for text, _, _ in stains]
        chosen = self._chosen_stain if self._chosen_stain in (*texts, NO_STAIN) else None
        # none (or only the nuclei's own stain, which would grow no cell): no stain, unless the user chose it
        here = [text for text, name, channel in stains if name not in elsewhere and (name, channel) != nuclear]
        refill(self.stain_picker, [*texts, NO_STAIN], chosen or (here[0] if here else NO_STAIN))
        refill(self.area_picker, [FROM_STAIN, *masks], self.area_picker.currentText() or FROM_STAIN)
        self._stain_changed()

    def nuclear_stain_chosen(self) -> bool:
        """Whether the chosen stain is the image (and channel) Segment found the nuclei in."""
        chosen = self._stains.get(self.stain_picker.currentText())
        return chosen is not None and chosen == _segmented_from(self.nuclei_layer())

    def _stain_changed(self, *_: Any) -> None:
        has_stain = self.stain_layer() is not None
        if not has_stain and self.boundary.currentText() != "nearest nucleus":
            self._boundary_before = self.boundary.currentText()
            self.boundary.setCurrentText("nearest nucleus")
        elif has_stain and self._boundary_before is not None:  # the boundary the user had, back with a stain
            self.boundary.setCurrentText(self._boundary_before)
            self._boundary_before = None
        for widget in (self.boundary, self.threshold):
            widget.setEnabled(has_stain)
        if not has_stain and self.area_layer() is None and value_or_none(self.max_distance) is None:
            self.max_distance.setValue(DEFAULT_REACH)  # with nothing to say where cells end, a reach must: offered
        self._area_changed()

    def _area_changed(self, *_: Any) -> None:
        self.threshold.setEnabled(self.stain_layer() is not None and self.area_layer() is None)

    def options(self) -> CellOptions:
        boundary = BOUNDARY_CHOICES[self.boundary.currentText()] if self.stain_layer() is not None else "distance"
        return CellOptions(boundary=boundary, threshold=value_or_none(self.threshold),
                           max_distance=value_or_none(self.max_distance))

    # running ------------------------------------------------------------------------------------------------
    def run(self) -> Any:
        """Grow the cells in a worker thread; returns the worker (None when refused, with the reason said)."""
        if self.worker is not None:
            return None
        nuclei, stain, area = self.nuclei_layer(), self.stain_data(), self.area_layer()
        if nuclei is None:
            return self._refuse("choose the nuclei (a Labels layer) first")
        data = source_array(nuclei)
        if isinstance(data, np.ndarray) and not data.any():
            return self._refuse(f"'{nuclei.name}' holds no nuclei (every pixel is 0): segment them first, or choose "
                                "the layer that holds them")
        options = self.options()
        try:
            check_cell_options(options, stain is not None, area is not None)
        except ValueError as exc:
            return self._refuse(str(exc))
        self._cancel.clear()
        work = partial(grow_cells_noted, source_array(nuclei), stain,
                       mask=None if area is None else source_array(area), options=options,
                       progress=progress_relay(self._progress, parent=self), cancel=self._cancel.is_set)
        self.run_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.progress_bar.setRange(0, 0)
        self.status.setText(f"Growing the cells of {nuclei.name}…")
        self.worker = start_worker(self, work, failure="Growing cells failed", cancel_on_close=self._cancel,
                                   discard_if=self._cancel,
                                   stopped_on_close="Growing cells stopped: its panel was closed; nothing was added.",
                                   on_returned=partial(self._show, nuclei, self.nuclear_stain_chosen(),
                                                       self._provenance(nuclei, options, area)),
                                   on_cancelled=lambda: self.status.setText("Cancelled: nothing was added."),
                                   on_failed=lambda exc: self.status.setText(f"Failed: {first_line(exc)}"),
                                   on_finished=self._finished)
        return self.worker

    def _refuse(self, reason: str) -> None:
        show_error(f"Cells: {reason}")
        self.status.setText(f"Not started: {reason}")

    def _progress(self, done: int, total: int) -> None:
        self.progress_bar.setRange(0, max(total, 1))
        self.progress_bar.setValue(done)

    def _finished(self) -> None:
        self.worker = None
        self.progress_bar.setRange(0, 1)
        self.progress_bar.setValue(0)
        self.run_button.setEnabled(True)
        self.cancel_button.setEnabled(False)

    def _provenance(self, nuclei: Labels, options: CellOptions, area: Labels | None) -> dict[str, Any]:
        """What the cells are grown from and how, as ``unet-seg cells`` records it (layers for files)."""
        chosen = self._stains.get(self.stain_picker.currentText())
        stain, channel = chosen if chosen is not None else (None, None)
        return describe_cells(options, nuclei_path=None, image_path=None, channel=channel, mask_path=None,
                              nuclei_record=nuclei.metadata.get("provenance"),
                              layers={"nuclei": nuclei.name, "stain": stain, "mask": area.name if area else None})

    def _show(self, nuclei: Labels, over_nuclear_stain: bool, provenance: dict[str, Any],
              grown: tuple[np.ndarray, list[str]]) -> None:
        """On the main thread: the cells into the layer this dock made last for these nuclei, if untouched."""
        cells, notes = grown
        if nuclei not in self.viewer.layers:
            self.status.setText("The nuclei layer was removed meanwhile: nothing added.")
            return
        target = next((layer for layer in self.viewer.layers
                       if isinstance(layer, Labels) and _made_from(layer, nuclei) and is_pristine_cells(layer)
                       and layer.data.shape == cells.shape), None)
        if target is None:  # marked from the start: the pickers, refreshed as it is added, leave it out
            base = nuclei.name.removesuffix(" labels")  # Segment's "<image> labels" -> "<image> cells"
            target = add_cells_layer(self.viewer, cells, nuclei, provenance, name=unique_name(self.viewer,
                                                                                              f"{base} cells"))
        else:
            target.data = cells
            target.metadata[CELLS_KEY] = _cells_record(nuclei, cells)
            target.metadata["provenance"] = provenance
        self.progress_bar.setRange(0, 1)
        self.progress_bar.setValue(1)
        own = (" The stain is the image the nuclei were segmented from: choose the cytoplasm or membrane stain."
               if over_nuclear_stain else "")
        said = "".join(f" Note: {note}." for note in notes)
        self.status.setText(f"{cells_note(source_array(nuclei), cells)} -> '{target.name}'.{own}{said}")
        if own:
            show_warning(f"Cells: {own.strip()}")
        for note in notes:
            show_info(f"Cells: {note}.")


def add_cells_layer(viewer: Viewer, cells: Any, nuclei: Labels, provenance: dict[str, Any] | None, *,
                    name: str) -> Labels:
    """Cells beside their nuclei as this dock shows them: outlines (the nuclei stay visible under them), marked
    as cells (never offered as nuclei), their painting noted (painted cells are the user's, kept)."""
    metadata = {CELLS_KEY: _cells_record(nuclei, cells), **({"provenance": provenance} if provenance else {})}
    layer = viewer.add_labels(cells, name=name, metadata=metadata, **spatial_kwargs(nuclei, None))
    layer.events.paint.connect(_mark_painted)
    layer.opacity, layer.contour = 0.7, 2
    return layer


def _cells_record(nuclei: Labels, cells: Any) -> dict[str, Any]:
    return {"nuclei_id": layer_id(nuclei), "painted": False, "fingerprint": fingerprint(cells)}


DEFAULT_REACH = 15.0  # px: the reach offered when no stain or mask says where cells end (README's example)


def _segmented_from(nuclei: Labels | None) -> tuple[str, int | None] | None:
    """(image layer name, channel or None) a Segment result was made from; None for other labels."""
    info = nuclei.metadata.get(SEGMENT_KEY) if nuclei is not None else None
    if not isinstance(info, dict) or not info.get("source"):
        return None
    settings = (nuclei.metadata.get("provenance") or {}).get("settings") or {}
    return str(info["source"]), settings.get("channel")


def _made_from(layer: Labels, nuclei: Labels) -> bool:
    info = layer.metadata.get(CELLS_KEY)
    return isinstance(info, dict) and info.get("nuclei_id") == layer_id(nuclei)


def is_pristine_cells(layer: Labels) -> bool:
    """True while the layer holds exactly the cells this dock wrote: painted cells are the user's, kept."""
    return untouched(layer.metadata, layer.data, CELLS_KEY)


def _mark_painted(event: Any) -> None:
    info = event.source.metadata.get(CELLS_KEY)
    if isinstance(info, dict):
        info["painted"] = True
