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
from napari.layers import Labels
from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtCore import QEvent, Qt
from qtpy.QtWidgets import QHBoxLayout, QProgressBar, QPushButton, QSizePolicy, QVBoxLayout, QWidget

from ..core.common.errors import first_line
from ..core.model.modelfile import ModelFileError
from ..core.model.registry import DEFAULT_MODEL, resolve_model_path, user_model_dir
from ..core.training.checks import UnusableAnnotation
from ..core.training.evaluation import main_score_name
from ..core.training.naming import fresh_model_name, starting_label
from ..core.training.project import Project, lost_project_dir, remember_project_dir
from ._common import Relay, StatusLabel, format_seconds, start_worker
from ._layers import RunWatch
from ._model_in_use import model_in_use, say_if_gone, set_model_in_use
from ._remembered import remember
from ._scroll import fill_dock, scrolling
from .segment_layers import show_classes
from .train_form import PREVIEW_KEY, TrainSettings
from .train_job import JobOutcome, TrainJob, outcome_text, run_training, status_line
from .train_layers import ChannelRead, fresh_layer_name, plane_placement, visible_box
from .train_plot import TrainingPlot

PREVIEW_CLASSES = 32  # colours set for a continued class model's preview, whose class count the job does not hold


def _names(names: list[str]) -> str:
    quoted = [f"'{name}'" for name in names]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " and " + quoted[-1]


def layers_news(deleted: list[str], changed: list[str], in_project: bool) -> str | None:
    """What became of the trained-on layers during the run, which learnt from copies taken when Train was pressed:
    said, so that nobody thinks strokes painted meanwhile were learnt, or that a deleted annotation is lost."""
    parts = [f"{_names(names)} {verb}" for names, verb in
             ((deleted, "was deleted" if len(deleted) == 1 else "were deleted"), (changed, "changed")) if names]
    if not parts:
        return None
    text = (f"{' and '.join(parts)} during training: this round learnt from the layers as they were when you "
            "pressed Train")
    if in_project:
        text += " (that annotation is kept in the project)"
    return text + ("; press Train again to learn from the changes" if changed else "")


def _failure_title(exc: Exception) -> str:
    """An annotation refused before the first step trained nothing: not a failure of training."""
    return "Training not started" if isinstance(exc, UnusableAnnotation) else "Training failed"


_SAID_LOST: set[Path] = set()  # each lost project is said once per session, not by every Train dock


class TrainWidget(QWidget):
    """Train or fine-tune a model on (image, labels) layers, in the background."""

    def __init__(self, napari_viewer: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = napari_viewer
        self.worker: Any = None
        self.job: TrainJob | None = None
        self._watch: RunWatch | None = None  # the trained-on layers, heard while the run learns from their copies
        self.outcome: JobOutcome | None = None
        self.preview_layer: Labels | None = None
        self._preview_shown = False  # this run has shown its preview (so a deleted preview layer stays deleted)
        self._closed_mid_run = False  # the dock was closed while training: it stopped, and says so when done
        self.overrides: dict[str, Any] = {}  # TrainConfig fields to force (tests, experts)
        self._box = (0, 1, 0, 1)
        self._read = ChannelRead()  # how the run reads its image's channels (as Segment did, for its labels)
        self._build()
        # run_training's reports (status text, each step, previews), delivered on the main thread
        self._relays = {
            "status": Relay(self._on_status, parent=self),
            "progress": Relay(self._on_step, parent=self),
            "preview": Relay(self._on_preview, parent=self),
            "warn": Relay(self._on_early_warning, parent=self),
        }
        self._warned: set[str] = set()  # said while training, so the verdict does not say it again
        if (in_use := model_in_use(self.viewer, self._project_dir())) is not None:
            self.settings.add_model_file(in_use)  # the next round starts where the loop is, as Segment does
        else:
            say_if_gone(self.viewer, self.settings.model_box.currentText(), self._project_dir())
        self.settings.project_dir.editingFinished.connect(self._on_project_chosen)
        self._say_if_project_lost()

    # ------------------------------------------------------------------ UI
    def _build(self) -> None:
        """Settings scroll (what to learn from, the model; the rest folded away); actions and results stay in view.

        Everything must fit a 768-px-high laptop screen with the Segment widget
        docked too, so only the choices made every time are open at first.
        """
        self.progress = QProgressBar()
        self.status, self.result = StatusLabel("ready"), StatusLabel()
        self._before_warning: str | None = None  # the status before it said that the image and labels do not overlay
        self.settings = TrainSettings(self.viewer, on_pair_problem=self._on_pair_problem, on_use=self.use_model)
        self.settings_area = scrolling(self.settings, 50, at_most_content=True)
        # the settings take the height left once the results have theirs (they scroll; a plot cut in two does not),
        # and no more than they need: what is left goes to the verdict and the plot
        self.settings_area.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Ignored)
        self.train_button, self.cancel_button = QPushButton("Train"), QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.train_button.setToolTip("Save the chosen annotation to the project, then fine-tune the starting model "
                                     "on every annotation saved there, within the time budget.")
        self.cancel_button.setToolTip("Stop training at its next step; the best weights so far are judged and saved "
                                      "as a model, and your annotations are kept.")
        self.train_button.clicked.connect(self.start)
        self.cancel_button.clicked.connect(self.cancel)
        buttons = QHBoxLayout()
        buttons.addWidget(self.train_button)
        buttons.addWidget(self.cancel_button)
        self.result.setWordWrap(True)
        self.result.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.result.setVisible(False)
        self.status.setWordWrap(True)
        self._score_name = "score"  # what the held-out dots are, once the first score says
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

    def event(self, event: QEvent) -> bool:
        """Closing the dock mid-run stops training as Cancel does (napari only unparents the widget, so
        training would go on unseen and uncancellable); the end is said in a notification."""
        running = getattr(self, "worker", None) is not None  # events may come before __init__ has set it
        if event.type() == QEvent.Type.ParentChange and self.parent() is None and running:
            self._closed_mid_run = True
            self.cancel()
        return super().event(event)

    def _on_pair_problem(self, problem: str | None) -> None:
        """Say in the status when the chosen labels do not overlay the chosen image; restore it once they do."""
        if problem is not None:
            if self._before_warning is None:
                self._before_warning = self.status.text()
            self.status.setText(problem)
        elif self._before_warning is not None:
            self.status.setText(self._before_warning)  # "ready", "done"...: what it said before the warning
            self._before_warning = None

    def refresh_models(self, choose: str | Path | None = None) -> None:
        """Re-read the model folders (the built-in model, user models, new), and start from ``choose`` if given
        (another Train dock put it in use); a running round keeps its own starting point."""
        if choose is None or self.settings.busy:
            self.settings.refresh_models()
        else:
            self.settings.add_model_file(choose)

    def _project_dir(self) -> str | None:
        return self.settings.project_dir.text().strip() or None

    def _say_if_project_lost(self) -> None:
        """The project used last is gone (its folder moved or renamed): say so once, and how to get it back."""
        lost = lost_project_dir()
        if lost is None or lost in _SAID_LOST:
            return
        _SAID_LOST.add(lost)
        show_warning(f"The project Train used last, {lost}, is gone (moved, renamed or deleted?): Train starts on "
                     f"{self.settings.project_dir.text()} instead. If you moved it, choose its new folder under "
                     "'project folder' (under 'Time budget, new models, project'): its corrections, History and model "
                     "in use come back.")

    def _on_project_chosen(self) -> None:
        """Another project folder typed in: it stays chosen, and its model in use becomes the model in use (the
        next round continues that project's loop, not the one before)."""
        folder = self._project_dir()
        if folder is None or self.settings.busy:
            return
        try:
            project = Project(folder)
        except ValueError:  # damaged: the dock says so under the folder
            return
        if len(project) or project.models:
            remember_project_dir(folder)
        in_use = project.in_use
        if in_use is not None and (in_use != model_in_use(self.viewer, folder)
                                   or self.settings.model_box.currentText() != in_use.stem):
            self.settings.add_model_file(in_use)
            self._refresh_segment_widgets(choose=in_use)
            self.status.setText(f"this project's model in use, '{in_use.stem}': Segment uses it, and the next round "
                                "starts from it")

    def _segment_uses(self, init: str) -> bool:
        """Whether Segment uses the model this round started from (the model in use, or the built-in one)."""
        try:  # as Segment resolves a name or a file: the same rules, not a second copy of them
            start = resolve_model_path(init).resolve()
            in_use = model_in_use(self.viewer, self._project_dir()) or resolve_model_path(DEFAULT_MODEL)
            return start == in_use.resolve()
        except (ModelFileError, OSError):  # a file gone since: Segment cannot be using it
            return False

    def use_model(self, path: Path) -> None:
        """Go back (or forward) to the model in ``path``: Segment uses it, and training starts from it."""
        self.settings.add_model_file(path)  # by its name when listed, else as a file (e.g. `unet-seg train -o` wrote)
        self._refresh_segment_widgets(choose=path)
        self.status.setText(f"using '{path.stem}'")

    # ----------------------------------------------------------- running
    def start(self) -> None:
        """Read the layers and start training in the background."""
        if self.worker is not None:
            show_info("Training is already running; cancel it or wait for it to finish.")
            return
        self._clear_results()  # a new press: the last run's verdict must not pass for this one's
        self._preview_shown = self._closed_mid_run = False
        self._warned = set()
        try:
            self.job = self.settings.job(self.overrides, preview_box=lambda: self._box)
            image = self.viewer.layers[self.settings.image_box.currentText()]
            self._read = self.settings.read_for(image, self.viewer.layers[self.settings.labels_box.currentText()])
            self._box = visible_box(image, self.job.pairs[0].labels.shape, channel_axis=self._read.channel_axis)
        except (ValueError, KeyError, ModelFileError) as exc:
            self.status.setText(f"Not started: {first_line(exc)}")
            self._before_warning = "ready"  # what the status says once the pair is fixed
            show_error(f"Training not started: {exc}")  # as the refusals found in the background say it
            return
        if self.job.project_dir is not None:
            remember_project_dir(self.job.project_dir)  # a dock opened later, or napari started again, uses it
        remember("train", {"time_budget": self.settings.max_seconds.value()})
        self.status.setText("starting...")
        self.progress.setRange(0, 0)  # busy until the first step: scaling the images, the starting model's errors
        self._watch = RunWatch(self.viewer, self.settings.chosen_layers())
        self.settings.busy = True  # the pickers stay on the layers being trained on
        self.train_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.worker = start_worker(
            self, partial(run_training, self.job, **self._relays), failure=_failure_title,
            cancel_on_close=self.job.cancel, on_returned=self._on_returned,
            on_cancelled=self._on_cancelled,
            on_failed=self._on_failed,
            on_finished=self._on_finished,
        )

    def _on_cancelled(self) -> None:
        self.status.setText("cancelled")
        if self._closed_mid_run:
            show_info("Training stopped when the Train panel was closed, before it had weights to save.")

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
        if self.job is not None and not self.job.cancel.is_set():
            self.job.cancel.set()
            self.cancel_button.setEnabled(False)  # pressed: the run winds down (the step under way, then saving)
            self.status.setText("cancelling: keeping the best model so far...")

    def _cancelling(self) -> bool:
        return self.job is not None and self.job.cancel.is_set() and self.worker is not None

    def _on_status(self, text: str) -> None:
        """What the run says it does; once cancelled, said as part of winding down (no "step N ... left" again)."""
        self.status.setText(f"cancelling: {text}" if self._cancelling() else text)

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
        self.progress.setRange(0, 100)
        self.progress.setValue(int(100 * min(max(budget), 1.0)))
        best = f", best held-out {self._score_name} {report.best_score:.3f}" if report.best_score is not None else ""
        left = f", ~{format_seconds(report.seconds_left)} left" if report.seconds_left is not None else ""
        if not self._cancelling():  # the step under way when Cancel was pressed: its figures, not a time left
            self.status.setText(f"step {report.step}: loss {report.loss:.3f}{best}{left}")
        name = self.settings.image_box.currentText()
        if name in self.viewer.layers and self.job is not None:
            self._box = visible_box(self.viewer.layers[name], self.job.pairs[0].labels.shape,
                                    channel_axis=self._read.channel_axis)

    def _on_early_warning(self, text: str) -> None:
        """A problem known before the first step (a class painted nowhere): said now, while Cancel still helps."""
        self._warned.add(text)
        show_warning(text)

    def _on_preview(self, box: tuple[int, int, int, int], labels: np.ndarray) -> None:
        y0, y1, x0, x1 = box
        layer = self.preview_layer
        pair = self.job.pairs[0] if self.job is not None else None
        shape = (1,) * len(pair.plane) + pair.labels.shape if pair is not None else labels.shape
        if self._preview_shown and layer not in self.viewer.layers:
            return  # the user deleted this run's preview: it does not come back
        if layer is None:  # a dock opened anew: another Train dock's preview is reused, not one more added
            layer = self.preview_layer = next((item for item in self.viewer.layers
                                               if isinstance(item, Labels) and item.metadata.get(PREVIEW_KEY)), None)
        image_name = self.settings.image_box.currentText()
        # over the plane trained on, wherever the image lies (scaled, moved, rotated; that slice of a stack)
        place = plane_placement(self.viewer.layers[image_name], self._read.channel_axis, pair.plane) \
            if pair is not None and image_name in self.viewer.layers else {}
        if layer is None or layer not in self.viewer.layers or (layer.data.shape != shape and self._preview_shown):
            name = fresh_layer_name([item.name for item in self.viewer.layers], "training preview")
            active = self.viewer.layers.selection.active  # e.g. the labels being painted: they stay selected
            layer = self.preview_layer = self.viewer.add_labels(
                np.zeros(shape, np.uint32), name=name, opacity=0.5, metadata={PREVIEW_KEY: True}, **place)
            if active is not None and active in self.viewer.layers:
                self.viewer.layers.selection.active = active
            if self.job is not None and self.job.task == "semantic":  # classes in the colours they were painted
                count = self.job.classes or PREVIEW_CLASSES
                show_classes(layer, ["background", *(f"class {k}" for k in range(1, count))])
        elif not self._preview_shown:  # the last run's preview, kept: it moves to where this run trains
            for key, value in place.items():
                setattr(layer, key, value)
            if layer.data.shape == shape:
                layer.data[...] = 0
            else:  # another image's size: the one preview layer takes it (not one more layer per image size)
                layer.data = np.zeros(shape, np.uint32)
            layer.visible = True
        self._preview_shown = True
        layer.data[..., y0:y1, x0:x1] = labels
        layer.refresh()

    def _on_returned(self, outcome: JobOutcome) -> None:
        self.outcome = outcome
        result = outcome.result
        parent = starting_label(self.job.init) if self.job is not None else "the starting model"
        listed = self.job is None or self._segment_uses(self.job.init)  # "Segment keeps using the parent" is true
        for warning in result.warnings:
            if warning not in self._warned:
                show_warning(warning)
        news = self._layers_news()
        self.result.setText(outcome_text(outcome, parent) + (f"\nNote: {news}." if news else ""))
        if news:
            show_info(news[0].upper() + news[1:] + ".")
        self.result.setVisible(True)
        self.results_area.verticalScrollBar().setValue(0)  # the verdict's first line, above the plot
        self.status.setText(status_line(outcome, parent, listed))
        self.progress.setRange(0, 100)
        self.progress.setValue(100)
        self.refresh_models()
        if not result.worth_using and result.doubtful_labels:  # judged on labels that may be another image's
            self._refresh_segment_widgets()
            show_info(f"'{outcome.path.stem}' was saved but not put in use: the labels of "
                      f"{', '.join(result.doubtful_labels)} look like another image's, and it was judged on them. "
                      "Segment's model is unchanged; choose it there to use it anyway.")
        elif not result.worth_using and result.unlearnt_classes:  # a new class model that cannot find every class
            self._refresh_segment_widgets()
            show_info(f"'{outcome.path.stem}' was saved but not put in use: no scribble annotates "
                      f"{', '.join(repr(c) for c in result.unlearnt_classes)}, so it never finds "
                      f"{'it' if len(result.unlearnt_classes) == 1 else 'them'}. Segment's model is unchanged; "
                      "choose it there to use it anyway.")
        elif not result.worth_using and result.improved is None and result.train.cancelled:  # nothing judged it
            self._refresh_segment_widgets()
            steps = result.train.steps
            show_info(f"'{outcome.path.stem}' was saved but not put in use: training was cancelled after {steps} "
                      f"step{'' if steps == 1 else 's'}, with no held-out annotation to judge it by. Segment's model "
                      "is unchanged; choose it there to use it anyway.")
        elif not result.worth_using:  # the parent unchanged: it stays selected, nothing gets worse
            self._refresh_segment_widgets()
            show_info(f"'{outcome.path.stem}' is not better than '{parent}' on your held-out annotation; "
                      + (f"Segment keeps using '{parent}'." if listed else "Segment's model is unchanged."))
        else:  # Segment uses it, and the next round starts from it, so is judged against it
            self._refresh_segment_widgets(choose=outcome.path)
            self.settings.model_box.setCurrentText(outcome.path.stem)
            if result.improved is False:  # the parent's weights, with post-processing fitted to the annotation
                show_info(f"'{outcome.path.stem}' keeps the weights of '{parent}' (training did not beat them) "
                          "with post-processing fitted to your annotation; Segment now uses it.")
        self.settings.show_project()
        if self._closed_mid_run:  # nobody sees the dock's verdict: a notification says what happened
            used = "Segment now uses it" if result.worth_using else (
                f"Segment keeps using '{parent}'" if listed else "Segment's model is unchanged")
            show_info(f"Training stopped when the Train panel was closed: '{outcome.path.stem}' was saved with the "
                      f"best weights so far; {used}.")
        try:  # a name the project's history holds is not offered again (see naming.fresh_model_name)
            recorded = Project(self._project_dir()).recorded_names() if self._project_dir() else set()
        except (OSError, ValueError):
            recorded = set()
        example = fresh_model_name(outcome.path.stem, user_model_dir(), taken=recorded)
        self.settings.name.setText("")
        self.settings.name.setPlaceholderText(f"automatic, e.g. {example}")

    def _refresh_segment_widgets(self, choose: Path | None = None) -> None:
        """Make a new model appear at once in any open Segment or Batch dock (and select ``choose`` there).

        ``choose`` is remembered for the viewer and the project too, so a dock opened later, or in napari started
        again, starts on it.
        """
        if choose is not None:
            set_model_in_use(self.viewer, choose, self._project_dir())
        try:
            docked = list(self.viewer.window.dock_widgets.values())
        except (AttributeError, RuntimeError):
            return
        for widget in docked:
            refresh = getattr(widget, "refresh_models", None)
            if widget is not self and callable(refresh):
                refresh() if choose is None else refresh(choose=choose)

    def _layers_news(self) -> str | None:
        if self._watch is None:
            return None
        deleted, changed = self._watch.news()
        in_project = self.job is not None and self.job.project_dir is not None
        return layers_news(deleted, changed, in_project)

    def _on_finished(self) -> None:
        if self.progress.maximum() == 0:  # ended before a step (refused, failed, cancelled): no busy bar left
            self.progress.setRange(0, 100)
        if self.preview_layer is not None and self.preview_layer in self.viewer.layers:
            # the run is over: the labels corrected next are not under it. Removed, not hidden: napari 0.9 crashed
            # (a segfault drawing, on Mesa) once a labels layer that had been hidden was deleted after another
            self.viewer.layers.remove(self.preview_layer)
        self.preview_layer = None
        if self._watch is not None:
            self._watch.stop()
            self._watch = None
        self.worker = None
        self.settings.busy = False
        self.train_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
