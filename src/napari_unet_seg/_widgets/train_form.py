"""The settings part of the Train widget: which layers to learn from, the model to start from, budget and project.

Kept apart from :mod:`.train` (which runs and reports) so each stays small; the
controls are public attributes so tests can drive them. The pickers follow
the layer selected in the viewer, so the labels just corrected are the ones trained on.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from napari.layers import Image, Labels, Shapes
from napari.utils.notifications import show_error
from qtpy.QtCore import Qt
from qtpy.QtWidgets import QCheckBox, QComboBox, QFileDialog, QLabel, QLineEdit, QSpinBox, QVBoxLayout, QWidget

from ..core.measure.classes import check_class_names
from ..core.model.modelfile import ModelFileError, ModelInfo, is_bioimageio_package
from ..core.model.registry import available_models, cached_model, resolve_model_path
from ..core.training.checks import annotation_warnings
from ..core.training.data import TrainingPair
from ..core.training.naming import check_model_name
from ..core.training.project import Project, current_project_dir
from ._common import Collapsible, auto_double_spinbox, compact, folder_row, form_group, value_or_none
from ._layers import current_plane
from ._remembered import recall
from .segment_layers import is_lazy, is_pristine, is_segment_result, uncorrected_planes
from .segment_pickers import LOAD_FROM_FILE, import_package, unreadable_reason
from .train_annotations import SavedAnnotations
from .train_history import ModelHistory
from .train_job import TrainJob
from .train_layers import (
    MODES,
    ChannelRead,
    channels_for_model,
    image_for,
    leading_shape,
    overlays,
    pairs_from_layers,
    plane_text,
)

SCRATCH = "new model (from scratch)"
SCRIBBLES_HINT = "Paint 1 = background, 2 = first class, 3 = second...; 0 = not annotated (the brush starts at 1)."
MODE_TIPS = {"dense": "Every pixel is annotated: 0 = background, each object its own id (or class id).",
             "region": "Only the part inside a Shapes or mask layer is annotated; outside it is ignored.",
             "scribbles": SCRIBBLES_HINT}
PREVIEW_KEY = "napari_unet_seg_training_preview"
SCRIBBLES_KEY = "napari_unet_seg_scribbles"  # a layer Train read as scribbles (classes painted): no objects
# short, so the box reads whole in a dock 330 px wide; the hint under it says the rest
MODE_TEXT = {"dense": "dense: all annotated", "region": "region-limited", "scribbles": "scribbles (classes)"}


def _combo(items: list[str] | None = None) -> QComboBox:
    box = QComboBox()
    box.addItems(items or [])
    return box


def _spin(low: int, high: int, value: int, suffix: str = "", special: str = "") -> QSpinBox:
    box = QSpinBox()
    box.setRange(low, high)
    box.setValue(value)
    box.setSuffix(suffix)
    if special:
        box.setSpecialValueText(special)
    return box


class TrainSettings(QWidget):
    """Every choice the user makes before pressing Train.

    ``on_pair_problem(text)`` hears whether the chosen labels overlay the chosen
    image (None: they do, or there is no pair yet); ``on_use(path)`` hears the
    model chosen in the history. While ``busy`` (a run in progress) the pickers
    stay on the layers being trained on.
    """

    def __init__(self, viewer: Any, on_pair_problem: Callable[[str | None], None],
                 on_use: Callable[[Path], None], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = viewer
        self.busy = False
        self._on_pair_problem = on_pair_problem
        data, form = form_group("Annotations")
        self.image_box, self.labels_box, self.region_box = _combo(), _combo(), _combo()
        self._region_picked = ""  # the region the user picked; until then the first offered (a Shapes layer)
        self.region_box.currentTextChanged.connect(lambda text: setattr(self, "_region_picked", text))
        self.mode_box = _combo([MODE_TEXT[m] for m in MODES])
        self._before_scribbles: Any = None  # the starting point scribbles mode left (its item data), to go back to
        self.slices = QLineEdit()
        self.slices.setPlaceholderText("slice on screen (or 0, 3, 5-8 / all)")
        self.model_box = _combo()
        self._files: list[Path] = []  # model files loaded by hand (Load from file…), offered after the folders'
        self._model_index = 0  # the choice before "Load from file…", restored when the dialog is cancelled
        self.name = QLineEdit()
        self.name.setPlaceholderText("automatic (never overwrites)")
        for index, mode in enumerate(MODES):  # a narrow dock cuts the text: the tooltips say what to paint
            self.mode_box.setItemData(index, MODE_TIPS[mode], Qt.ItemDataRole.ToolTipRole)
        self.mode_hint = QLabel(SCRIBBLES_HINT)  # what to paint: shown in scribbles mode, where it is not obvious
        self.mode_hint.setWordWrap(True)
        self.mode_hint.setVisible(False)
        self.class_names = QLineEdit()
        self.class_names.setPlaceholderText("e.g. tumour, stroma (classes 1, 2...)")
        self.class_names.setToolTip("Names of a new class model's classes, in order: class 1 (scribble value 2), "
                                    "class 2 (value 3)... Segment shows them under the cursor, Measurements in its "
                                    "table, QuPath as each object's class. Empty: class 1, class 2...")
        for label, widget in (("image", self.image_box), ("labels", self.labels_box), ("mode", self.mode_box),
                              ("", self.mode_hint), ("region", self.region_box), ("stack slices", self.slices),
                              ("start from", self.model_box), ("class names", self.class_names),
                              ("save as", self.name)):
            form.addRow(label, widget)
        self._form = form
        more, mform = form_group("")
        self.task_box = _combo(["instances", "semantic"])
        # 1 reads "from the labels": a class model needs two classes or more, so 1 is never a count of its own
        self.classes = _spin(1, 255, 1, special="from the labels")
        self.classes.setToolTip("Classes of a new model, background included; from the labels: their highest value "
                                "(scribbles: 1 = background, 2 = first class...).")
        self.depth, self.width = _spin(1, 6, 4), _spin(2, 128, 16)
        self.max_seconds = _spin(0, 24 * 3600, 110, " s", special="no limit")
        budget = recall("train").get("time_budget")
        if isinstance(budget, int) and 0 <= budget <= 24 * 3600:  # the budget of the last round: the lab's
            self.max_seconds.setValue(budget)
        self.max_steps = _spin(0, 1_000_000, 0, special="no limit")
        self.preview = QCheckBox("live preview")
        self.preview.setToolTip("Show the model's prediction of the visible part in a layer of its own as it learns.")
        self.preview.setChecked(True)
        self.borrow_encoder = QCheckBox("new: start from nuclei's encoder")
        self.borrow_encoder.setChecked(True)
        self.borrow_encoder.setToolTip("A new model starts from the nuclei model's encoder: features learned on real "
                                       "microscopy. Untick to start from random weights.")
        self.use_project = QCheckBox("also the project's saved corrections")
        self.use_project.setToolTip("Also train on every correction saved in the project folder, not only on the "
                                    "layers chosen above.")
        self.use_project.setChecked(True)
        self.project_dir = QLineEdit(str(current_project_dir()))  # the one Train used last
        self.project_info = QLabel()
        self.project_info.setWordWrap(True)
        self.diameter = auto_double_spinbox(10_000, suffix=" px", tooltip=(
            "Typical object diameter in these images, as in Segment (auto: measured). Training shows the network "
            "the images at the size Segment will."))
        for label, widget in (("object diameter", self.diameter), ("time budget", self.max_seconds),
                              ("max steps", self.max_steps),
                              ("new: task", self.task_box), ("new: classes", self.classes),
                              ("new: depth", self.depth), ("new: width", self.width),
                              ("project folder", folder_row(self.project_dir, "Project folder", self))):
            mform.addRow(label, widget)
        for widget in (self.preview, self.borrow_encoder, self.use_project, self.project_info):
            mform.addRow(widget)
        self.more = Collapsible("Time budget, new models, project", more)
        self.history = ModelHistory(on_use=on_use)
        self.history_section = Collapsible("History: every model trained here", self.history)
        self.annotations = SavedAnnotations(on_changed=self._say_project)
        self.annotations_section = Collapsible("Saved annotations: what every round learns from", self.annotations)
        for combo in (self.image_box, self.labels_box, self.region_box, self.mode_box, self.model_box, self.task_box):
            compact(combo, 10)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        for section in (data, self.more, self.history_section, self.annotations_section):
            layout.addWidget(section)
        layout.addStretch(1)
        self.model_box.currentTextChanged.connect(self._on_model_changed)
        self.model_box.activated.connect(self._on_model_activated)
        self.mode_box.currentIndexChanged.connect(self._on_mode_changed)
        self.task_box.currentTextChanged.connect(self._on_model_changed)
        self.project_dir.editingFinished.connect(self.show_project)
        for box in (self.image_box, self.labels_box):
            box.currentTextChanged.connect(self._check_pair)
        for event in (viewer.layers.events.inserted, viewer.layers.events.removed):
            event.connect(self._refresh_layers)
        viewer.layers.selection.events.active.connect(self._follow_selection)
        self.show_project()
        self._refresh_layers()
        self.refresh_models()
        self._on_mode_changed()

    def _refresh_layers(self, *_: Any) -> None:
        layers = list(self.viewer.layers)
        for box, kinds in ((self.image_box, (Image,)), (self.labels_box, (Labels,)),
                           (self.region_box, (Shapes, Labels, Image))):
            current = box.currentText()
            box.blockSignals(True)
            box.clear()
            offered = [layer for layer in layers if isinstance(layer, kinds) and not layer.metadata.get(PREVIEW_KEY)]
            # regions: Shapes first, then masks, an image (a mask saved as one) last, so it is never the default
            offered.sort(key=lambda layer: next(k for k, kind in enumerate(kinds) if isinstance(layer, kind)))
            box.addItems([layer.name for layer in offered])
            if box is self.region_box:  # a box drawn after the dock opened becomes the region, not the labels
                current = self._region_picked
            if current:
                box.setCurrentText(current)
            box.blockSignals(False)
        self._follow_selection()

    def _follow_selection(self, *_: Any) -> None:
        """The pickers follow the layer selected in the viewer: usually the labels just corrected, or its image.

        Labels bring their image along: the one they were segmented from, else the
        chosen image if it fits them, else the only image of their size.
        """
        active = self.viewer.layers.selection.active
        if self.busy or active is None or active.metadata.get(PREVIEW_KEY):
            return
        for box in (self.image_box, self.labels_box):
            box.blockSignals(True)  # one check of the pair once both have followed, not one per picker
        if isinstance(active, Labels):
            self.labels_box.setCurrentText(active.name)
            images = [layer for layer in self.viewer.layers if isinstance(layer, Image)
                      and not layer.metadata.get(PREVIEW_KEY)]
            image = image_for(active, images, current=self._chosen(self.image_box))
            if image is not None:
                self.image_box.setCurrentText(image.name)
        elif isinstance(active, Image):
            self.image_box.setCurrentText(active.name)
        for box in (self.image_box, self.labels_box):
            box.blockSignals(False)
        self._check_pair()

    def _chosen(self, box: QComboBox) -> Any:
        """The layer a picker names (None if it is gone)."""
        return next((layer for layer in self.viewer.layers if layer.name == box.currentText()), None)

    def _check_pair(self, *_: Any) -> None:
        """Tell ``on_pair_problem`` when the chosen labels do not overlay the chosen image (Train would refuse them)."""
        if self.busy:
            return
        image, labels = self._chosen(self.image_box), self._chosen(self.labels_box)
        problem = None
        if isinstance(image, Image) and isinstance(labels, Labels) and not overlays(image, labels,
                                                                                  self.read_for(image, labels)):
            problem = (f"'{labels.name}' ({plane_text(labels)}) do not overlay '{image.name}' ({plane_text(image)}): "
                       "choose the image they were painted on.")
        elif isinstance(image, Image) and isinstance(labels, Labels):
            problem = self._another_images(image, labels)
        self._on_pair_problem(problem)

    def _another_images(self, image: Image, labels: Labels) -> str | None:
        """Labels whose objects are no brighter than the image's background, said before Train is pressed (the
        round would say it only once started, and its model would not be put in use); None when they look right,
        or cannot be judged cheaply here (stacks, huge planes, class scribbles, a new model)."""
        if self.mode() != "dense" or not self._starts_from_instances() or labels.ndim != 2 \
                or is_lazy(labels.data) or np.prod(labels.data.shape) > 4096 * 4096:
            return None
        try:
            data, rgb = self.read_for(image, labels).data(image)
            if np.ndim(data) != (3 if rgb else 2) or is_lazy(data):
                return None
            model = cached_model(resolve_model_path(self.starting_point()))
            said = annotation_warnings(model, TrainingPair(np.asarray(data), np.asarray(labels.data), rgb=rgb,
                                                           name=f"'{labels.name}'"))
        except Exception:  # noqa: BLE001 - a hint, never a failure: training checks the pair again, and says why
            return None
        return f"Check before training: {said[0]} (they are on '{image.name}')" if said else None

    def refresh_models(self) -> None:
        """Re-read the model folders (the built-in model, user models, new), then the files loaded by hand."""
        current = self.model_box.currentText()
        models = available_models()
        self.model_box.blockSignals(True)
        self.model_box.clear()
        for name in sorted(models):  # a file that cannot be read is marked, its reason in the tooltip
            why = unreadable_reason(models[name])
            self.model_box.addItem(name if why is None else f"{name} [unreadable]", name)
            self.model_box.setItemData(self.model_box.count() - 1, why or str(models[name]),
                                       Qt.ItemDataRole.ToolTipRole)
        for path in self._files:
            self.model_box.addItem(f"{path.stem} ({path.name})", str(path))
            self.model_box.setItemData(self.model_box.count() - 1, str(path), Qt.ItemDataRole.ToolTipRole)
        self.model_box.addItem(SCRATCH, SCRATCH)
        self.model_box.insertSeparator(self.model_box.count())
        self.model_box.addItem(LOAD_FROM_FILE, LOAD_FROM_FILE)
        self.model_box.setCurrentText(current if current and current != LOAD_FROM_FILE
                                      else ("nuclei" if "nuclei" in models else SCRATCH))
        self._model_index = self.model_box.currentIndex()
        self.model_box.blockSignals(False)
        self._on_model_changed()

    def starting_point(self) -> str:
        """What training starts from: a model's name, a model file's path, or "none" (a new model)."""
        if self.model_box.currentText() == SCRATCH:
            return "none"
        data = self.model_box.currentData()
        if data in models_unreadable(self.model_box):
            raise ModelFileError(str(self.model_box.itemData(self.model_box.currentIndex(),
                                                             Qt.ItemDataRole.ToolTipRole)))
        return str(data or self.model_box.currentText())

    def add_model_file(self, path: str | Path) -> bool:
        """Offer a model file from anywhere as a starting point (checked whole first) and choose it; False with a
        notification when it cannot be used. A bioimage.io package is imported into the model folder first."""
        path = Path(path)
        if is_bioimageio_package(path):
            imported = import_package(path)
            if imported is None:
                return False
            path = imported
        try:
            cached_model(path)
        except ModelFileError as exc:
            show_error(str(exc))
            return False
        listed = next((name for name, known in available_models().items() if known.resolve() == path.resolve()), None)
        if listed is None and path not in self._files:  # a model of the folders is chosen by its name, not twice
            self._files.append(path)
        self.refresh_models()
        self.model_box.setCurrentIndex(self.model_box.findData(listed or str(path)))
        self._model_index = self.model_box.currentIndex()
        return True

    def _on_model_activated(self, index: int) -> None:
        if self.model_box.itemData(index) != LOAD_FROM_FILE:
            self._model_index = index
            return
        path, _ = QFileDialog.getOpenFileName(self, "Start from a model file", "", "Models (*.safetensors *.zip);;"
                                              "napari-unet-seg models (*.safetensors);;bioimage.io model packages "
                                              "(*.zip)")
        if not (path and self.add_model_file(path)):
            self.model_box.setCurrentIndex(self._model_index)

    def _on_model_changed(self, *_: Any) -> None:
        """Only a new model has a task, classes, depth and width to choose."""
        scratch = self.model_box.currentText() == SCRATCH
        self.show_project()  # the history marks the starting point
        for widget in (self.task_box, self.depth, self.width):
            widget.setEnabled(scratch)
        self.classes.setEnabled(scratch and self.task_box.currentText() == "semantic")
        # names belong to a new class model (a model's classes are named when it is made): shown only then
        self._form.setRowVisible(self.class_names, scratch and self.task_box.currentText() == "semantic")
        self._check_pair()  # a model of several channels reads a multichannel layer otherwise: overlaying may change

    def _on_mode_changed(self, *_: Any) -> None:
        """Scribbles teach classes: switch to a new semantic model; the region picker is for region mode."""
        self.region_box.setEnabled(self.mode() == "region")
        self.mode_hint.setVisible(self.mode() == "scribbles")
        self.mode_box.setToolTip(MODE_TIPS[self.mode()])
        if self.mode() == "scribbles":
            self.task_box.setCurrentText("semantic")
            if self._starts_from_instances():  # scribbles train class models: an objects model cannot take them
                self._before_scribbles = self.model_box.currentData()
                self.model_box.setCurrentText(SCRATCH)
        elif self._before_scribbles is not None:  # back from scribbles: the objects model it had, also when a
            index = self.model_box.findData(self._before_scribbles)  # class model was trained there meanwhile
            if not self._starts_from_instances() and index >= 0:
                self.model_box.setCurrentIndex(index)
                self.task_box.setCurrentText("instances")
            self._before_scribbles = None
        self._on_model_changed()

    def _starts_from_instances(self) -> bool:
        """Whether the chosen starting point is an instance (objects) model, e.g. `nuclei` or a fine-tune of it."""
        if self.model_box.currentText() == SCRATCH or self.model_box.currentData() == LOAD_FROM_FILE:
            return False
        try:
            return ModelInfo.of(resolve_model_path(str(self.model_box.currentData() or self.model_box.currentText())))\
                .task == "instances"
        except (ModelFileError, OSError, ValueError):
            return False

    def show_project(self) -> None:
        try:
            project = Project(self.project_dir.text())
        except ValueError as exc:
            self.project_info.setText(str(exc))
            self.history.show_project(None)
            self.annotations.show_project(None)
            return
        self._say_project(project)
        self.history.show_project(project, start_from=self.model_box.currentText())
        self.annotations.show_project(project)

    def _say_project(self, project: Project) -> None:
        left_out = sum(bool(entry.get("left_out")) for entry in project.entries)
        self.project_info.setText(f"{len(project)} annotated image(s) saved in this project"
                                  + (f", {left_out} of them left out of training" if left_out else ""))

    def mode(self) -> str:
        return MODES[self.mode_box.currentIndex()]

    def read_for(self, image: Any, labels: Any) -> ChannelRead:
        """How training reads ``image``'s channels: as Segment did for ``labels``, else as the starting model takes
        them (a model of two channels reads a (2, Y, X) layer as its channels, not as two slices)."""
        return channels_for_model(image, labels, self._starting_channels())

    def _starting_channels(self) -> int | None:
        """The input channels of the model training starts from (None: a new model, or one that cannot be read)."""
        if self.model_box.currentText() == SCRATCH or self.model_box.currentData() in (None, LOAD_FROM_FILE):
            return None
        try:
            return ModelInfo.of(resolve_model_path(str(self.model_box.currentData()))).in_channels
        except ModelFileError:
            return None

    def chosen_layers(self) -> list[Any]:
        """The layers a run reads: the image, the labels and, in region mode, the region (those still there)."""
        boxes = [self.image_box, self.labels_box] + ([self.region_box] if self.mode() == "region" else [])
        return [layer for layer in map(self._chosen, boxes) if layer is not None]

    def job(self, overrides: dict[str, Any], preview_box: Callable[[], tuple[int, int, int, int]]) -> TrainJob:
        """The run the controls describe, with the chosen layers read into pairs; ValueError says what is wrong."""
        if not self.image_box.currentText() or not self.labels_box.currentText():
            raise ValueError("Training needs an Image layer and a Labels layer painted over it.")
        check_model_name(self.name.text().strip())  # before any work: a name that cannot be saved is said now
        if self.mode() == "region" and not self.region_box.currentText():
            raise ValueError("Region-limited training needs a Shapes or mask layer marking the annotated region.")
        if self.mode() == "region" and self.region_box.currentText() in (self.labels_box.currentText(),
                                                                          self.image_box.currentText()):
            raise ValueError(f"The region is '{self.region_box.currentText()}', the layer trained on itself: pick "
                             "the Shapes (or mask) layer around the part you corrected.")
        image = self.viewer.layers[self.image_box.currentText()]
        labels = self.viewer.layers[self.labels_box.currentText()]
        if self.mode() == "scribbles" and is_segment_result(labels):
            # its ids are objects or classes with 0 = background; read as scribbles (1 = background) every class
            # would be taught one off, and its unpainted pixels as painted
            raise ValueError(f"'{labels.name}' is a Segment result, not scribbles: paint scribbles on a new Labels "
                             "layer (1 = background, 2 = first class...), or correct the result and train on it "
                             "as dense")
        if is_pristine(labels):
            # the model's own output teaches it its own mistakes, and its "left out" dim nuclei become the rule
            raise ValueError(f"'{labels.name}' is Segment's result exactly as it came out: correct it first (paint "
                             "the missed objects, erase the wrong ones), then press Train")
        if self.mode() == "scribbles":  # Measure's default is the newest objects layer: never these strokes
            labels.metadata[SCRIBBLES_KEY] = True
        region = self.viewer.layers[self.region_box.currentText()] if self.mode() == "region" else None
        read = self.read_for(image, labels)  # the channel Segment read, or the starting model's channels
        on_screen = current_plane(self.viewer, image, len(leading_shape(image, read)), read.channel_axis)
        pairs = pairs_from_layers(image, labels, mode=self.mode(), region_layer=region,
                                  slices=self.slices.text(), on_screen=on_screen, read=read)
        if self.mode() == "dense":
            _refuse_uncorrected_slices(labels, [pair.plane for pair in pairs])
        scratch = self.model_box.currentText() == SCRATCH
        scribbles = self.mode() == "scribbles"
        classes = self.classes.value() if self.classes.value() > 1 else None  # None: from the labels (the job's)
        preview_image = pairs[0].image if self.preview.isChecked() else None
        class_names = tuple(n.strip() for n in self.class_names.text().split(",") if n.strip()) if scratch else ()
        check_class_names(class_names)
        return TrainJob(
            pairs=pairs, init=self.starting_point(),
            task="semantic" if self.mode() == "scribbles" else self.task_box.currentText(),
            classes=classes if scratch else None, depth=self.depth.value(), width=self.width.value(),
            scribbles=scribbles, max_steps=self.max_steps.value() or None,
            max_seconds=float(self.max_seconds.value()) or None, name=self.name.text().strip(),
            project_dir=self.project_dir.text().strip() or None, use_project=self.use_project.isChecked(),
            preview_image=preview_image, preview_rgb=pairs[0].rgb, preview_box=preview_box,
            overrides=dict(overrides), encoder="nuclei" if self.borrow_encoder.isChecked() else None,
            class_names=class_names,
            diameter=value_or_none(self.diameter),
        )


def _refuse_uncorrected_slices(labels: Any, chosen: list[tuple[int, ...]]) -> None:
    """A slice of a Segment result left as it came out teaches the model its own mistakes, as a whole result would:
    refused, naming the slices that were corrected."""
    same = uncorrected_planes(labels)
    if not same or not chosen or not any(plane in same for plane in chosen):
        return
    shape = labels.data.shape[:-2]
    corrected = [index for index in np.ndindex(shape) if index not in same]
    name = ", ".join(",".join(map(str, plane)) for plane in chosen if plane in same)
    several = sum(plane in same for plane in chosen) > 1
    where = ("; no slice is corrected yet" if not corrected else
             f"; you corrected slice{'s' if len(corrected) > 1 else ''} "
             f"{', '.join(','.join(map(str, p)) for p in corrected[:10])}{', ...' if len(corrected) > 10 else ''}"
             + (f": type {'them' if len(corrected) > 1 else 'it'} in 'stack slices'" if len(shape) == 1
                else ": show one of them"))
    raise ValueError(f"slice{'s' if several else ''} {name} of '{labels.name}' {'are' if several else 'is'} "
                     f"Segment's result exactly as it came out{where}")


def models_unreadable(box: QComboBox) -> set[str]:
    """The names a model list marks "[unreadable]"."""
    return {str(box.itemData(i)) for i in range(box.count()) if box.itemText(i).endswith(" [unreadable]")}
