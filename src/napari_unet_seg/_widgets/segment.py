"""The "Segment" dock widget: a thin shell that turns settings into a background job.

All computation happens in the core pipeline (:meth:`.segment_form.SegmentJob.run`) on a
``napari.qt.threading`` worker; this class only reads the controls, starts and
cancels the worker, relays progress, and puts results into layers on the main
thread when the worker returns.
"""

from __future__ import annotations

import threading
import time
from functools import partial
from pathlib import Path
from typing import Any

from napari.layers import Image, Layer
from napari.qt.threading import FunctionWorker
from napari.utils import progress as napari_progress
from napari.utils.notifications import show_error, show_info
from napari.viewer import Viewer
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QHBoxLayout, QProgressBar, QPushButton, QVBoxLayout, QWidget

from ..core.common.errors import first_line
from ..core.inference.object_size import size_in_words
from ..core.inference.pipeline import SegmentResult
from ..core.inference.prediction import BLANK_NOTE
from ..core.inference.provenance import records_classes
from ..core.model.modelfile import ModelFileError
from ._common import StatusLabel, progress_relay, start_worker
from ._layers import image_opened_as_labels, layer_kind, opened_as_labels, same_layer, source_array
from ._model_in_use import model_in_use, say_if_gone
from ._scroll import fill_dock, scrolling
from .segment_form import SegmentJob, SegmentSettings
from .segment_layers import publish_labels, publish_probabilities, show_classes
from .segment_progress import SegmentProgress


_OPENED_AS_LABELS = ("{} napari opened as a Labels layer (it does so for 32-bit integer files): "
                     "right-click it > Convert to Image, then Segment.")


class SegmentWidget(QWidget):
    """Segment the chosen image layer with a U-Net model, in the background."""

    def __init__(self, napari_viewer: Viewer, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = napari_viewer
        self.worker: FunctionWorker | None = None
        self._cancel = threading.Event()
        self._pbar: napari_progress | None = None
        self._stages: SegmentProgress | None = None  # what the running job has reported
        self._running: tuple[Image, SegmentJob] | None = None
        self._progress = progress_relay(self._on_progress, parent=self)
        self._clock = QTimer(self)  # the status line counts the seconds of stages the core does not report on
        self._clock.setInterval(1000)
        self._clock.timeout.connect(self._show_progress)
        self._stopped_because: str | None = None  # why the run was stopped, when not by Cancel
        self._build()
        if (in_use := model_in_use(napari_viewer)) is not None:  # what Train said Segment uses
            self.model_picker.choose(in_use)
        else:
            say_if_gone(napari_viewer, self.model_picker.combo.currentText())
        napari_viewer.layers.events.removed.connect(self._on_layer_removed)

    # ----------------------------------------------------------------- layout
    def _build(self) -> None:
        self.settings = SegmentSettings(self.viewer)
        # the pickers are part of this widget's API (other widgets refresh models through it)
        self.image_picker = self.settings.image_picker
        self.model_picker = self.settings.model_picker

        self.segment_button = QPushButton("Segment")
        self.segment_button.setToolTip("Segment the chosen image with these settings.")
        self.segment_button.clicked.connect(lambda: self.run())
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop segmenting at the next window; nothing is added and no layer changes.")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(lambda: self.cancel())
        buttons = QHBoxLayout()
        buttons.addWidget(self.segment_button, 2)
        buttons.addWidget(self.cancel_button, 1)
        self.progress_bar = QProgressBar()
        self.progress_bar.setToolTip("The network's share of the run; moving stripes: a stage without a count.")
        self.status = StatusLabel()
        self.status.setWordWrap(True)
        self.ran_on = StatusLabel()
        self.ran_on.setWordWrap(True)
        self.ran_on.setToolTip("The device and precision the last run actually used.")
        self.ran_on.setVisible(False)  # until a run has used them

        body = QWidget()
        layout = QVBoxLayout(body)
        layout.addWidget(scrolling(self.settings, 50), 1)  # the settings scroll; the buttons stay in view
        layout.addLayout(buttons)
        for widget in (self.progress_bar, self.status, self.ran_on):
            layout.addWidget(widget)
        fill_dock(self, body)  # beside many docks, the whole dock scrolls

    # ----------------------------------------------------------- public API
    def refresh_models(self, choose: str | Path | None = None) -> None:
        """Re-read the model folders (call after training saved a new model), and select ``choose`` if given."""
        if choose is None:
            self.model_picker.refresh()
        else:
            self.model_picker.choose(choose)

    def run(self, image_layer: Layer | None = None) -> None:
        """Segment ``image_layer`` (default: the chosen image) with the current settings, in the background."""
        if self.worker is not None:
            show_info("A segmentation is already running; cancel it or wait for it to finish.")
            return
        if image_layer is not None and not isinstance(image_layer, Image):
            if opened_as_labels(image_layer):
                return self._refuse(_OPENED_AS_LABELS.format(f"'{image_layer.name}' is an image"))
            return self._refuse(f"'{image_layer.name}' is a {layer_kind(image_layer)} layer; select an image layer "
                                "to segment.")
        layer = image_layer or self.image_picker.layer()
        if layer is None:
            misread = image_opened_as_labels(self.viewer)
            if misread is not None:
                return self._refuse("There is no image layer to segment: "
                                    + _OPENED_AS_LABELS.format(f"'{misread.name}' is an image"))
            return self._refuse("There is no image layer to segment; open an image first.")
        self.image_picker.select(layer)
        try:
            job = self.settings.job(layer)
        except (ModelFileError, ValueError) as exc:
            return self._refuse(str(exc))
        self._start(layer, job)

    def _refuse(self, reason: str) -> None:
        """Say why nothing started, in a notification and the status line (not the last run's result, as if
        current)."""
        show_error(reason)
        self.status.setText(f"Not started: {first_line(reason)}")
        self.ran_on.setVisible(False)  # the last run's line, under "Not started", read as this press's
        self._show_done(False)

    def cancel(self) -> None:
        """Stop the running segmentation after its current window batch; nothing is added."""
        if self.worker is not None:
            self._cancel.set()
            self.status.setText("Cancelling…")

    def _on_layer_removed(self, event: Any) -> None:
        """The image being segmented was deleted: its result has nowhere to go, so the run stops now."""
        if self._running is not None and same_layer(event.value, self._running[0]) and not self._cancel.is_set():
            self._stopped_because = f"'{event.value.name}' was removed during the run; segmentation stopped."
            self._cancel.set()
            self.status.setText(f"'{event.value.name}' was removed: stopping…")  # the network's line is stale now

    # -------------------------------------------------------------- running
    def _start(self, layer: Image, job: SegmentJob) -> None:
        self._cancel.clear()
        self._stopped_because = None
        self._pbar = napari_progress(total=0, desc=f"Segmenting {layer.name}")
        self._stages = SegmentProgress(layer.name, time.monotonic(), measuring=job.options.diameter is None,
                                       to_disk=job.options.store is not None, planes=job.plane_count())
        self._running = (layer, job)
        self.segment_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.ran_on.setText("")  # the last run's line must not pass for this one's
        self.ran_on.setVisible(False)
        self._show_progress()
        self._clock.start()
        self.worker = start_worker(
            self, partial(job.run, progress=self._progress, cancel=self._cancel.is_set),
            failure=f"Segmentation of '{layer.name}' failed", cancel_on_close=self._cancel, discard_if=self._cancel,
            stopped_on_close=f"Segmentation of '{layer.name}' stopped: its panel was closed; nothing was added.",
            on_returned=self._on_returned, on_cancelled=self._on_cancelled, on_failed=self._on_failed,
            on_finished=self._on_finished,
        )

    def _on_progress(self, done: int, total: int) -> None:
        if self._pbar is None or self._running is None or self._cancel.is_set():
            return  # a late report must not overwrite the final status
        if self._stages is not None:
            self._stages.report(done, total, time.monotonic())
            self._show_progress()
        if self._pbar.total != total:
            self._pbar.total = total
        self._pbar.update(done - self._pbar.n)  # may process events: the run can end inside this call

    def _show_progress(self) -> None:
        """The stage, the network's share and the time spent, in the status line and the bar."""
        stages = self._stages
        if stages is None or self._running is None or self._cancel.is_set():
            return
        percent = stages.percent()
        if percent is None:
            self.progress_bar.setRange(0, 0)  # busy: a stage the core reports no count for
        else:
            self.progress_bar.setRange(0, 100)
            self.progress_bar.setValue(percent)
        self.status.setText(stages.text(time.monotonic()))

    def _on_finished(self) -> None:
        self._clock.stop()
        if self._pbar is not None:
            self._pbar.close()
            self._pbar = None
        if self.progress_bar.maximum() == 0:  # still busy: the run ended without a result
            self._show_done(False)
        self._stages = None
        self._running = None
        self.worker = None
        self.segment_button.setEnabled(True)
        self.cancel_button.setEnabled(False)

    def _show_done(self, done: bool) -> None:
        """The bar full (a result was added) or empty (cancelled, failed, discarded)."""
        self.progress_bar.setRange(0, 100)
        self.progress_bar.setValue(100 if done else 0)

    def _on_cancelled(self) -> None:
        self._show_done(False)
        self._running = None
        if self._stopped_because is not None:
            self.status.setText(self._stopped_because)
            return
        self.status.setText("Cancelled; nothing was added.")
        if self.parent() is not None:  # a closed dock has said so already
            show_info("Segmentation cancelled.")

    def _on_failed(self, error: Exception) -> None:
        self._show_done(False)
        self._running = None
        self.status.setText(f"Failed: {first_line(error)}")  # the notification is cut short and fades

    def _on_returned(self, outcome: SegmentResult) -> None:
        layer, job = self._running
        self._running = None
        self._show_done(False)  # until the result is in a layer
        if layer not in self.viewer.layers:
            self.status.setText(f"'{layer.name}' was removed during the run; result discarded.")
            return
        if source_array(layer) is not job.image:
            self.status.setText(f"'{layer.name}' got new pixels during the run; result discarded: press Segment again.")
            show_info(f"'{layer.name}' changed while it was being segmented, so the result was discarded.")
            return
        provenance = {"model": outcome.model_name, "device": outcome.device, "precision": outcome.precision,
                      "channel_axis": job.channel_axis, "channel": job.options.channel}  # how Train reads the image
        labels_layer, how = publish_labels(
            self.viewer, layer, outcome.labels, outcome.planes, all_planes=job.planes is None,
            channel_axis=job.channel_axis, provenance=provenance,
            kind="classes" if records_classes(outcome.provenance) else "labels",
        )
        record = outcome.provenance
        if how == "relinked":  # the layer's ids are linked across all its frames again, as the run that made it
            record = {**record, "settings": {**record.get("settings", {}), "link_frames": True}}
            show_info(f"The frames of '{labels_layer.name}' were linked again around the slice(s) segmented anew, "
                      "so their ids follow the nuclei as before.")
        labels_layer.metadata["provenance"] = record  # model, settings, the command that remakes it
        if outcome.provenance.get("model", {}).get("task") == "semantic":  # classes: as painted, named on hover
            show_classes(labels_layer, outcome.class_names)
        if outcome.probabilities is not None:
            publish_probabilities(self.viewer, layer, outcome.probabilities, outcome.class_names,
                                  channel_axis=job.channel_axis, labels_ndim=outcome.labels.ndim)
        self.image_picker.select(layer)  # new layers take napari's selection; the picker stays on the image
        if how == "protected":
            show_info(f"The earlier result has your edits or a name you gave it, so this one went to a new layer "
                      f"'{labels_layer.name}'.")
        elif how == "another model":
            show_info(f"The earlier result was made by another model, so this one, by '{outcome.model_name}', went "
                      f"to a new layer '{labels_layer.name}'; the earlier one is kept.")
        elif how == "reshaped":
            show_info(f"This result's shape ({' × '.join(map(str, outcome.labels.shape))}) differs from the earlier "
                      f"result's, so it went to a new layer '{labels_layer.name}'; the earlier one is kept.")
        if job.options.store is not None:
            show_info(f"The labels are stored on disk in {job.options.store}")
        if job.channel_axis is not None and not layer.rgb and job.channel_axis % layer.ndim == layer.ndim - 1:
            show_info(f"napari draws '{layer.name}' sideways (its last axis, the channels, as width), so "
                      f"'{labels_layer.name}' cannot lie over it; the labels are right. To see them together, press "
                      "'Put channels first' under the channel axis and segment the new layer.")
        for note in outcome.notes:
            show_info(note[0].upper() + note[1:])
        found = "" if outcome.objects is None else f" ({outcome.objects} objects)"
        if job.planes is not None:  # "current slice only": which, as the viewer counts (3D view shows no slider)
            found += f" in slice {', '.join(','.join(map(str, plane)) for plane in job.planes)}"
        self.status.setText(f"{'Updated' if how in ('updated', 'relinked') else 'Added'} '{labels_layer.name}'{found}.")
        self._show_done(True)
        # a blank image was said to be blank above; objects all dropped by the filters, in a note
        if outcome.objects == 0 and not outcome.dropped and BLANK_NOTE not in outcome.notes:
            show_info("No objects were found: is this the right model for the image, and the object size right?")
        self.ran_on.setVisible(True)
        size = size_in_words(outcome.objects, outcome.mean_area, job.options.diameter)
        self.ran_on.setText(
            f"Ran on {outcome.device.upper()} in {outcome.precision} · {outcome.seconds:.1f} s · "
            f"model '{outcome.model_name}'" + (f" · objects {size}" if size else ""))
