"""Pickers for the Segment widget: an image layer that follows the selection, and a model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from napari.layers import Image
from napari.utils.notifications import show_error, show_info, show_warning
from napari.viewer import Viewer
from qtpy.QtCore import Qt, Signal
from qtpy.QtWidgets import QComboBox, QFileDialog, QHBoxLayout, QPushButton, QWidget

from ..core.model.modelfile import ModelFileError, ModelInfo, is_bioimageio_package
from ..core.model.registry import DEFAULT_MODEL, available_models, cached_model

LOAD_FROM_FILE = "Load from file…"
MODEL_TIP = "Built-in models, your trained models, or a .safetensors model file."


class ImagePicker(QComboBox):
    """Image layers of the viewer by name; jumps to whichever image layer becomes active."""

    def __init__(self, viewer: Viewer, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = viewer
        self.setToolTip("The image to segment. Follows the layer you select in the layer list.")
        self.setPlaceholderText("no image layer")
        for event in (viewer.layers.events.inserted, viewer.layers.events.removed, viewer.layers.events.moved):
            event.connect(self._refresh)
        viewer.layers.events.inserted.connect(self._watch_name)
        viewer.layers.selection.events.active.connect(self._follow_active)
        for layer in viewer.layers:
            self._watch_name(layer)
        self._chosen: Image | None = None  # followed through renames
        self.currentTextChanged.connect(self._remember)
        self._refresh()
        self._follow_active()

    def layer(self) -> Image | None:
        name = self.currentText()
        return self.viewer.layers[name] if name in self.viewer.layers else None

    def select(self, layer: Image) -> None:
        self._refresh()
        self.setCurrentText(layer.name)

    def _watch_name(self, event_or_layer: Any = None) -> None:
        layer = getattr(event_or_layer, "value", event_or_layer)
        if isinstance(layer, Image):
            layer.events.name.connect(self._refresh)

    def _remember(self, name: str) -> None:
        if name in self.viewer.layers:
            self._chosen = self.viewer.layers[name]

    def _refresh(self, event: Any = None) -> None:
        chosen = self._chosen if self._chosen in self.viewer.layers else None
        current = chosen.name if chosen is not None else self.currentText()
        names = [layer.name for layer in reversed(self.viewer.layers) if isinstance(layer, Image)]
        if names == [self.itemText(i) for i in range(self.count())]:
            return
        self.clear()
        self.addItems(names)
        active = self.viewer.layers.selection.active
        if current in names:
            self.setCurrentText(current)
        elif isinstance(active, Image):
            self.setCurrentText(active.name)
        elif names:
            self.setCurrentIndex(0)

    def _follow_active(self, event: Any = None) -> None:
        active = self.viewer.layers.selection.active
        if isinstance(active, Image) and active.name != self.currentText():
            self.setCurrentText(active.name)


def unreadable_reason(path: Path) -> str | None:
    """Why a model file of the folders cannot be used (read from its header, cheaply), or None."""
    try:
        ModelInfo.of(path)
    except ModelFileError as exc:
        return str(exc)
    return None


class ModelPicker(QWidget):
    """Built-in and user models, files loaded by hand, and a refresh for newly trained ones."""

    changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.combo = QComboBox()
        self.combo.setToolTip(MODEL_TIP)
        refresh = QPushButton("↻")
        refresh.setFixedWidth(32)
        refresh.setToolTip("Refresh the list (shows models trained since the widget opened)")
        refresh.clicked.connect(self.refresh)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.combo, 1)
        layout.addWidget(refresh)
        self._files: dict[str, Path] = {}
        self._previous = 0
        self.combo.activated.connect(self._on_activated)
        self.combo.currentIndexChanged.connect(lambda _: self.changed.emit())
        self.changed.connect(self._say_whole_name)
        self.refresh()

    def path(self) -> Path | None:
        """The chosen model file, or None when there is no model to choose."""
        data = self.combo.currentData()
        return Path(data) if data and data != LOAD_FROM_FILE else None

    def info(self) -> ModelInfo | None:
        """What the chosen model is, or None (no model, or an unreadable file)."""
        path = self.path()
        try:
            return ModelInfo.of(path) if path else None
        except ModelFileError:
            return None

    def choose(self, path: str | Path) -> bool:
        """Select the model file at ``path`` (after a refresh, if it is new; offered as a file loaded by hand when it
        lies outside the model folders, e.g. one ``unet-seg train -o`` wrote); False if it cannot be used."""
        self.refresh()
        index = self.combo.findData(str(path))
        if index < 0 and Path(path).is_file():
            return self.add_file(path)
        if index < 0:
            return False
        self.combo.setCurrentIndex(index)
        self._previous = index
        return True

    def refresh(self) -> None:
        """Re-read the model folders, keeping the current choice when it still exists."""
        current = self.combo.currentData()
        models = available_models()
        names = sorted(models, key=lambda n: (n != DEFAULT_MODEL, n.lower()))
        self.combo.blockSignals(True)
        self.combo.clear()
        problems = {name: unreadable_reason(models[name]) for name in names}  # headers only: cheap
        for name in names:
            self.combo.addItem(name if problems[name] is None else f"{name} [unreadable]", str(models[name]))
        for label, path in self._files.items():
            self.combo.addItem(label, str(path))
        for index in range(self.combo.count()):  # a narrow dock cuts long names short: the list says them whole
            why = problems.get(names[index]) if index < len(names) else None
            self.combo.setItemData(index, f"{self.combo.itemText(index)}\n{self.combo.itemData(index)}"
                                   + (f"\n{why}" if why else ""), Qt.ItemDataRole.ToolTipRole)
        if not names and not self._files:
            self.combo.addItem("no model yet — train one or load a file", None)
        self.combo.insertSeparator(self.combo.count())
        self.combo.addItem(LOAD_FROM_FILE, LOAD_FROM_FILE)
        index = self.combo.findData(current) if current not in (None, LOAD_FROM_FILE) else -1
        self.combo.setCurrentIndex(max(index, 0))
        if index < 0 and current not in (None, LOAD_FROM_FILE) and self.combo.currentData() is not None:
            # the chosen model's file was deleted, renamed or moved: the dock must not switch models in silence
            show_warning(f"The model '{Path(str(current)).stem}' is gone ({current} no longer exists): "
                         f"'{self.combo.currentText()}' is chosen instead.")
        self._previous = self.combo.currentIndex()
        self.combo.blockSignals(False)
        self.changed.emit()

    def add_file(self, path: str | Path) -> bool:
        """Offer a model file (checked first) and select it; False with a notification if unusable. A bioimage.io
        package of a napari-unet-seg U-Net is imported into the model folder first (as `unet-seg import-model`)."""
        path = Path(path)
        if is_bioimageio_package(path):
            imported = import_package(path)
            if imported is None:
                return False
            path = imported
        try:
            info = ModelInfo.of(path)
            cached_model(path)  # the weights too, now: a file whose weights do not fit fails here, not at Segment
        except ModelFileError as exc:
            show_error(str(exc))
            return False
        listed = next((known for known in available_models().values() if known.resolve() == path.resolve()), None)
        if listed is None:  # a model of the folders is chosen where it is listed, not offered twice
            self._files[f"{info.name} ({path.name})"] = path
        self.refresh()
        self.combo.setCurrentIndex(self.combo.findData(str(listed or path)))
        self._previous = self.combo.currentIndex()
        return True

    def _say_whole_name(self) -> None:
        """The chosen model's whole name and file in the tooltip: the box may show only its start."""
        path = self.path()
        self.combo.setToolTip(f"{self.combo.currentText()}\n{path}\n\n{MODEL_TIP}" if path else MODEL_TIP)

    def _on_activated(self, index: int) -> None:
        if self.combo.itemData(index) != LOAD_FROM_FILE:
            self._previous = index
            return
        path, _ = QFileDialog.getOpenFileName(self, "Load a model", "", "Models (*.safetensors *.zip);;napari-unet-seg "
                                              "models (*.safetensors);;bioimage.io model packages (*.zip)")
        if not (path and self.add_file(path)):
            self.combo.setCurrentIndex(self._previous)


def import_package(path: Path) -> Path | None:
    """Import the bioimage.io package ``path`` into the user model folder under a name of its own (its file's,
    made unique); the model file written, or None with the refusal said (another network, no bioimage.io extra)."""
    from qtpy.QtWidgets import QApplication

    from ..core.model.registry import user_model_dir
    from ..core.model_export.package import ImportRefused
    from ..core.training.naming import fresh_model_name

    stem = path.parent.name if path.name in ("rdf.yaml", "bioimageio.yaml") else path.stem
    name = fresh_model_name(stem or "imported", user_model_dir(), new=True)
    QApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)  # reproducing its test output takes seconds
    try:
        from ..core.model_export.importing import import_bioimageio

        imported = import_bioimageio(path, name=name)
    except ImportRefused as exc:
        show_error(f"Not imported: {exc}")
        return None
    finally:
        QApplication.restoreOverrideCursor()
    notes = "".join(f" Note: {note}." for note in imported.notes)
    show_info(f"Imported '{name}' from {path.name} into your model folder ({imported.path}); it reproduces the "
              f"package's test output within {imported.difference:.1e}.{notes}")
    return imported.path
