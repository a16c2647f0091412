"""The Train dock widget: fine-tune on what was just painted, without leaving napari.

A thin shell: it reads layers into training pairs on the main thread, hands
them to :mod:`.train_job` in a napari thread worker, and shows what comes back
(loss/score plot, ETA, live preview layer, final scores and warnings). It never
writes into a user's layer: the preview goes into a layer of its own.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from napari.layers import Image, Labels, Shapes
from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QCheckBox, QComboBox, QHBoxLayout, QLabel, QLineEdit, QProgressBar, QPushButton,
    QSizePolicy, QSpinBox, QVBoxLayout, QWidget,
)

from ..core.common.errors import first_line
from ..core.model.modelfile import ModelFileError
from ..core.model.registry import available_models, user_model_dir
from ..core.training.checks import UnusableAnnotation
from ..core.training.evaluation import main_score_name
from ..core.training.naming import fresh_model_name
from ..core.training.project import Project, default_project_dir
from ._common import (
    Collapsible, Relay, auto_double_spinbox, compact, form_group, format_seconds, start_worker, value_or_none,
)
from ._layers import current_plane
from ._scroll import fill_dock, scrolling
from .train_history import ModelHistory
from .train_job import JobOutcome, TrainJob, outcome_text, run_training
from .train_layers import (
    MODES, fresh_layer_name, image_for, leading_shape, overlays, pairs_from_layers, plane_text, visible_box,
)
from .train_plot import TrainingPlot

SCRATCH = "new model (from scratch)"
PREVIEW_KEY = "napari_unet_seg_training_preview"
MODE_TEXT = {"dense": "dense (every pixel annotated)", "region": "region-limited (Shapes or mask layer)",
             "scribbles": "scribbles (0 = unlabelled, 1 = background, k+1 = class k)"}


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


class TrainWidget(QWidget):
    """Train or fine-tune a model on (image, labels) layers, in the background."""

    def __init__(self, napari_viewer: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = napari_viewer
        self.worker: Any = None
        self.job: TrainJob | None = None
        self.outcome: JobOutcome | None = None
        self.preview_layer: Labels | None = None
        self.overrides: dict[str, Any] = {}  # TrainConfig fields to force (tests, experts)
        self._box = (0, 1, 0, 1)
        self._build()
        # run_training's reports (status text, each step, previews), delivered on the main thread
        self._relays = {
            "status": Relay(self.status.setText, parent=self),
            "progress": Relay(self._on_step, parent=self),
            "preview": Relay(self._on_preview, parent=self),
        }
        for event in (napari_viewer.layers.events.inserted, napari_viewer.layers.events.removed):
            event.connect(self._refresh_layers)
        napari_viewer.layers.selection.events.active.connect(self._follow_selection)
        self._refresh_layers()
        self.refresh_models()
        self._on_mode_changed()

    # ------------------------------------------------------------------ UI
    def _build(self) -> None:
        """Settings scroll (what to learn from, the model; the rest folded away); actions and results stay in view.

        Everything must fit a 768-px-high laptop screen with the Segment widget
        docked too, so only the choices made every time are open at first.
        """
        data, form = form_group("Annotations")
        self.image_box, self.labels_box, self.region_box = _combo(), _combo(), _combo()
        self.mode_box = _combo([MODE_TEXT[m] for m in MODES])
        self.slices = QLineEdit()
        self.slices.setPlaceholderText("slice on screen (or 0, 3, 5-8 / all)")
        self.model_box = _combo()
        self.name = QLineEdit()
        self.name.setPlaceholderText("automatic (never overwrites)")
        for label, widget in (("image", self.image_box), ("labels", self.labels_box), ("mode", self.mode_box),
                              ("region", self.region_box), ("stack slices", self.slices),
                              ("start from", self.model_box), ("save as", self.name)):
            form.addRow(label, widget)
        more, mform = form_group("")
        self.task_box = _combo(["instances", "semantic"])
        self.classes, self.depth, self.width = _spin(2, 255, 3), _spin(1, 6, 4), _spin(2, 128, 16)
        self.max_seconds = _spin(0, 24 * 3600, 110, " s", special="no limit")
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
        self.project_dir = QLineEdit(str(default_project_dir()))
        self.project_info = QLabel()
        self.project_info.setWordWrap(True)
        self.diameter = auto_double_spinbox(10_000, suffix=" px", tooltip=(
            "Typical object diameter in these images, as in Segment (auto: measured). Training shows the network "
            "the images at the size Segment will."))
        for label, widget in (("object diameter", self.diameter), ("time budget", self.max_seconds),
                              ("max steps", self.max_steps),
                              ("new: task", self.task_box), ("new: classes", self.classes),
                              ("new: depth", self.depth), ("new: width", self.width),
                              ("project folder", self.project_dir)):
            mform.addRow(label, widget)
        for widget in (self.preview, self.borrow_encoder, self.use_project, self.project_info):
            mform.addRow(widget)
        self.more = Collapsible("Time budget, new models, project", more)
        self.history = ModelHistory(on_use=self.use_model)
        self.history_section = Collapsible("History: every model trained here", self.history)
        for combo in (self.image_box, self.labels_box, self.region_box, self.mode_box, self.model_box, self.task_box):
            compact(combo, 10)
        settings = QWidget()
        settings_layout = QVBoxLayout(settings)
        settings_layout.setContentsMargins(0, 0, 0, 0)
        settings_layout.addWidget(data)
        settings_layout.addWidget(self.more)
        settings_layout.addWidget(self.history_section)
        settings_layout.addStretch(1)
        self.settings_area = scrolling(settings, 50, at_most_content=True)
        # the settings take the height left once the results have theirs (they scroll; a plot cut in two does not),
        # and no more than they need: what is left goes to the verdict and the plot
        self.settings_area.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Ignored)
        self.train_button, self.cancel_button = QPushButton("Train"), QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.train_button.clicked.connect(self.start)
        self.cancel_button.clicked.connect(self.cancel)
        buttons = QHBoxLayout()
        buttons.addWidget(self.train_button)
        buttons.addWidget(self.cancel_button)
        self.progress = QProgressBar()
        self.status, self.result = QLabel("ready"), QLabel()
        self.result.setWordWrap(True)
        self.result.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.result.setVisible(False)
        self.status.setWordWrap(True)
        self._score_name = "score"  # what the held-out dots are, once the first score says
        self._before_warning: str | None = None  # the status before it said that the image and labels do not overlay
        self.plot = TrainingPlot()
        # the verdict first, then the curves: it may run to many lines, so it scrolls with the plot, never
        # pushing the window taller; the plot stays in view while there is no verdict yet (training)
        results = QWidget()
        results_layout = QVBoxLayout(results)
        results_layout.setContentsMargins(0, 0, 0, 0)
        results_layout.addWidget(self.result)
        results_layout.addWidget(self.plot)
        results_layout.addStretch(1)
        self.results_area = scrolling(results, 40)
        body = QWidget()
        layout = QVBoxLayout(body)
        layout.addWidget(self.settings_area, 1)
        layout.addLayout(buttons)
        for widget in (self.progress, self.status, self.results_area):
            layout.addWidget(widget)
        fill_dock(self, body)  # beside many docks, the whole dock scrolls
        self.model_box.currentTextChanged.connect(self._on_model_changed)
        self.mode_box.currentIndexChanged.connect(self._on_mode_changed)
        self.task_box.currentTextChanged.connect(self._on_model_changed)
        self.project_dir.editingFinished.connect(self._show_project)
        for box in (self.image_box, self.labels_box):
            box.currentTextChanged.connect(self._check_pair)
        self._show_project()

    def _refresh_layers(self, *_: Any) -> None:
        layers = list(self.viewer.layers)
        for box, kinds in ((self.image_box, (Image,)), (self.labels_box, (Labels,)),
                           (self.region_box, (Shapes, Labels, Image))):
            current = box.currentText()
            box.blockSignals(True)
            box.clear()
            box.addItems([layer.name for layer in layers if isinstance(layer, kinds)
                          and not layer.metadata.get(PREVIEW_KEY)])
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
        if self.worker is not None or active is None or active.metadata.get(PREVIEW_KEY):
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
        return next((layer for layer in self.viewer.layers if layer.name == box.currentText()), None)

    def _check_pair(self, *_: Any) -> None:
        """Say in the status when the chosen labels do not overlay the chosen image (Train would refuse them)."""
        if self.worker is not None:
            return
        image, labels = self._chosen(self.image_box), self._chosen(self.labels_box)
        if isinstance(image, Image) and isinstance(labels, Labels) and not overlays(image, labels):
            if self._before_warning is None:
                self._before_warning = self.status.text()
            self.status.setText(f"'{labels.name}' ({plane_text(labels)}) do not overlay '{image.name}' "
                                f"({plane_text(image)}): choose the image they were painted on.")
        elif self._before_warning is not None:
            self.status.setText(self._before_warning)  # "ready", "done"...: what it said before the warning
            self._before_warning = None

    def refresh_models(self) -> None:
        """Re-read the model folders (the built-in model, user models, new)."""
        current = self.model_box.currentText()
        self.model_box.blockSignals(True)
        self.model_box.clear()
        self.model_box.addItems(sorted(available_models()) + [SCRATCH])
        self.model_box.setCurrentText(current if current else ("nuclei" if "nuclei" in available_models() else SCRATCH))
        self.model_box.blockSignals(False)
        self._on_model_changed()

    def _on_model_changed(self, *_: Any) -> None:
        """Only a new model has a task, classes, depth and width to choose."""
        scratch = self.model_box.currentText() == SCRATCH
        for widget in (self.task_box, self.depth, self.width):
            widget.setEnabled(scratch)
        self.classes.setEnabled(scratch and self.task_box.currentText() == "semantic")

    def _on_mode_changed(self, *_: Any) -> None:
        """Scribbles teach classes: switch to a new semantic model; the region picker is for region mode."""
        self.region_box.setEnabled(self.mode() == "region")
        if self.mode() == "scribbles":
            self.task_box.setCurrentText("semantic")
            if self.model_box.currentText() == "nuclei":
                self.model_box.setCurrentText(SCRATCH)
        self._on_model_changed()

    def _show_project(self) -> None:
        try:
            project = Project(self.project_dir.text())
        except ValueError as exc:
            self.project_info.setText(str(exc))
            self.history.show_project(None)
            return
        self.project_info.setText(f"{len(project)} annotated image(s) saved in this project")
        self.history.show_project(project)

    def use_model(self, path: Path) -> None:
        """Go back (or forward) to the model in ``path``: Segment uses it, and training starts from it."""
        self.refresh_models()
        self.model_box.setCurrentText(path.stem)
        self._refresh_segment_widgets(choose=path)
        self.status.setText(f"using '{path.stem}'")

    def mode(self) -> str:
        return MODES[self.mode_box.currentIndex()]

    # ----------------------------------------------------------- running
    def start(self) -> None:
        """Read the layers and start training in the background."""
        if self.worker is not None:
            show_info("Training is already running; cancel it or wait for it to finish.")
            return
        self._clear_results()  # a new press: the last run's verdict must not pass for this one's
        try:
            self.job = self._job()
        except (ValueError, KeyError, ModelFileError) as exc:
            self.status.setText(f"Not started: {first_line(exc)}")
            self._before_warning = "ready"  # what the status says once the pair is fixed
            show_error(str(exc))
            return
        self.status.setText("starting...")
        self.train_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.worker = start_worker(
            self, partial(run_training, self.job, **self._relays), failure="Training failed",
            cancel_on_close=self.job.cancel, on_returned=self._on_returned,
            on_cancelled=lambda: self.status.setText("cancelled"),
            on_failed=self._on_failed,
            on_finished=self._on_finished,
        )

    def _on_failed(self, exc: BaseException) -> None:
        # an annotation refused before the first step trained nothing: the user fixes it and presses Train again
        said = "Not started" if isinstance(exc, UnusableAnnotation) else "Failed"
        self.status.setText(f"{said}: {first_line(exc)}")

    def _clear_results(self) -> None:
        self.outcome = None
        self.plot.clear()
        self._score_name = "score"
        self._before_warning = None
        self.result.setText("")
        self.result.setVisible(False)
        self.progress.setValue(0)
        self.status.setText("")

    def cancel(self) -> None:
        """Stop after the current step; the best model so far is still saved."""
        if self.job is not None:
            self.job.cancel.set()
            self.status.setText("cancelling: keeping the best model so far...")

    def _job(self) -> TrainJob:
        if not self.image_box.currentText() or not self.labels_box.currentText():
            raise ValueError("Training needs an Image layer and a Labels layer painted over it.")
        if self.mode() == "region" and not self.region_box.currentText():
            raise ValueError("Region-limited training needs a Shapes or mask layer marking the annotated region.")
        image = self.viewer.layers[self.image_box.currentText()]
        labels = self.viewer.layers[self.labels_box.currentText()]
        region = self.viewer.layers[self.region_box.currentText()] if self.mode() == "region" else None
        on_screen = current_plane(self.viewer, image, len(leading_shape(image)))
        pairs = pairs_from_layers(image, labels, mode=self.mode(), region_layer=region,
                                  slices=self.slices.text(), on_screen=on_screen)
        scratch = self.model_box.currentText() == SCRATCH
        preview_image = pairs[0].image if self.preview.isChecked() else None
        self._box = visible_box(image, pairs[0].labels.shape)
        return TrainJob(
            pairs=pairs, init="none" if scratch else self.model_box.currentText(),
            task="semantic" if self.mode() == "scribbles" else self.task_box.currentText(),
            classes=self.classes.value() if scratch else None, depth=self.depth.value(), width=self.width.value(),
            scribbles=self.mode() == "scribbles", max_steps=self.max_steps.value() or None,
            max_seconds=float(self.max_seconds.value()) or None, name=self.name.text().strip(),
            project_dir=self.project_dir.text().strip() or None, use_project=self.use_project.isChecked(),
            preview_image=preview_image, preview_rgb=pairs[0].rgb, preview_box=lambda: self._box,
            overrides=dict(self.overrides), encoder="nuclei" if self.borrow_encoder.isChecked() else None,
            diameter=value_or_none(self.diameter),
        )

    def _on_step(self, report: Any) -> None:
        if report.scores:
            self._score_name = main_score_name(report.scores)
            self.plot.set_score_name(self._score_name)
        if report.parent_score is not None:
            self.plot.set_parent(report.parent_score)
        self.plot.add(report.step, report.loss, report.val_score)
        budget = [report.step / max(report.max_steps, 1)]
        if self.job is not None and self.job.max_seconds:
            budget.append(report.seconds / self.job.max_seconds)
        self.progress.setValue(int(100 * min(max(budget), 1.0)))
        best = f", best held-out {self._score_name} {report.best_score:.3f}" if report.best_score is not None else ""
        left = f", ~{format_seconds(report.seconds_left)} left" if report.seconds_left is not None else ""
        self.status.setText(f"step {report.step}: loss {report.loss:.3f}{best}{left}")
        name = self.image_box.currentText()
        if name in self.viewer.layers and self.job is not None:
            self._box = visible_box(self.viewer.layers[name], self.job.pairs[0].labels.shape)

    def _on_preview(self, box: tuple[int, int, int, int], labels: np.ndarray) -> None:
        y0, y1, x0, x1 = box
        layer = self.preview_layer
        shape = self.job.pairs[0].labels.shape if self.job is not None else labels.shape
        if layer is None or layer not in self.viewer.layers or layer.data.shape != shape:
            name = fresh_layer_name([item.name for item in self.viewer.layers], "training preview")
            layer = self.preview_layer = self.viewer.add_labels(
                np.zeros(shape, np.uint32), name=name, opacity=0.5, metadata={PREVIEW_KEY: True})
        layer.data[y0:y1, x0:x1] = labels
        layer.refresh()

    def _on_returned(self, outcome: JobOutcome) -> None:
        self.outcome = outcome
        result = outcome.result
        parent = self.job.init if self.job is not None else "the starting model"
        for warning in result.warnings:
            show_warning(warning)
        self.result.setText(outcome_text(outcome, parent))
        self.result.setVisible(True)
        self.results_area.verticalScrollBar().setValue(0)  # the verdict's first line, above the plot
        self.status.setText("done")
        self.progress.setValue(100)
        self.refresh_models()
        if not result.worth_using:  # the parent unchanged: it stays selected, nothing gets worse
            self._refresh_segment_widgets()
            show_info(f"'{outcome.path.stem}' is not better than '{parent}' on your held-out annotation; "
                      f"Segment keeps using '{parent}'.")
        elif result.improved is False:  # the parent's weights, with post-processing fitted to the annotation
            self._refresh_segment_widgets(choose=outcome.path)
            show_info(f"'{outcome.path.stem}' keeps the weights of '{parent}' (training did not beat them) with "
                      f"post-processing fitted to your annotation; Segment now uses it.")
        else:
            self._refresh_segment_widgets(choose=outcome.path)
        self._show_project()
        self.name.setText("")
        self.name.setPlaceholderText(f"automatic, e.g. {fresh_model_name(outcome.path.stem, user_model_dir())}")

    def _refresh_segment_widgets(self, choose: Path | None = None) -> None:
        """Make a new model appear at once in any open Segment widget (and select ``choose`` there)."""
        try:
            docked = list(self.viewer.window.dock_widgets.values())
        except (AttributeError, RuntimeError):
            return
        for widget in docked:
            refresh = getattr(widget, "refresh_models", None)
            if widget is not self and callable(refresh):
                refresh() if choose is None else refresh(choose=choose)

    def _on_finished(self) -> None:
        self.worker = None
        self.train_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
