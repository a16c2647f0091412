"""The "Segment" dock widget: a thin shell that turns settings into a background job.

All computation happens in the core pipeline (:meth:`.segment_form.SegmentJob.run`) on a
``napari.qt.threading`` worker; this class only reads the controls, starts and
cancels the worker, relays progress, and puts results into layers on the main
thread when the worker returns.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from napari.layers import Image, Layer
from napari.qt.threading import FunctionWorker, create_worker
from napari.utils import progress as napari_progress
from napari.utils.notifications import show_error, show_info
from napari.viewer import Viewer
from qtpy.QtWidgets import QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from ..core.model.devices import DeviceError
from ..core.model.modelfile import ModelFileError
from ..core.common.callbacks import Cancelled
from ..core.common.errors import first_line
from ._common import ProgressRelay, eta_text
from .segment_form import SegmentJob, SegmentSettings
from .segment_layers import publish_labels, publish_probabilities

log = logging.getLogger(__name__)
USER_ERRORS = (ModelFileError, DeviceError, ValueError, RuntimeError, MemoryError, OSError)


def _guarded(job: SegmentJob, progress: Any, cancel: Any) -> tuple[Any, Exception | None]:
    """Run the job and return (result, error): napari would show a raised error as a traceback."""
    try:
        return job.run(progress=progress, cancel=cancel), None
    except Exception as exc:  # noqa: BLE001 - reported on the main thread as a notification
        return None, exc


class SegmentWidget(QWidget):
    """Segment the chosen image layer with a U-Net model, in the background."""

    def __init__(self, napari_viewer: Viewer, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = napari_viewer
        self.worker: FunctionWorker | None = None
        self._cancel = threading.Event()
        self._pbar: napari_progress | None = None
        self._started = 0.0
        self._running: tuple[Image, SegmentJob] | None = None
        self._build()
        cancel = self._cancel  # not self: the slot must outlive the C++ widget
        self.destroyed.connect(lambda *_: cancel.set())  # closing the viewer mid-run stops the worker

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
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(lambda: self.cancel())
        buttons = QHBoxLayout()
        buttons.addWidget(self.segment_button, 2)
        buttons.addWidget(self.cancel_button, 1)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.ran_on = QLabel("")
        self.ran_on.setWordWrap(True)
        self.ran_on.setToolTip("The device and precision the last run actually used.")

        layout = QVBoxLayout(self)
        layout.addWidget(self.settings)
        layout.addLayout(buttons)
        layout.addWidget(self.status)
        layout.addWidget(self.ran_on)
        layout.addStretch(1)


    # ----------------------------------------------------------- public API
    def refresh_models(self) -> None:
        """Re-read the model folders (call after training saved a new model)."""
        self.model_picker.refresh()

    def run(self, image_layer: Layer | None = None) -> None:
        """Segment ``image_layer`` (default: the chosen image) with the current settings, in the background."""
        if self.worker is not None:
            show_info("A segmentation is already running; cancel it or wait for it to finish.")
            return
        if image_layer is not None and not isinstance(image_layer, Image):
            show_error(f"'{image_layer.name}' is a {type(image_layer).__name__} layer; select an image layer to segment.")
            return
        layer = image_layer or self.image_picker.layer()
        if layer is None:
            show_error("There is no image layer to segment; open an image first.")
            return
        self.image_picker.select(layer)
        try:
            job = self.settings.job(layer)
        except (ModelFileError, ValueError) as exc:
            show_error(str(exc))
            return
        self._start(layer, job)

    def cancel(self) -> None:
        """Stop the running segmentation after its current window batch; nothing is added."""
        if self.worker is not None:
            self._cancel.set()
            self.status.setText("Cancelling…")

    # -------------------------------------------------------------- running
    def _start(self, layer: Image, job: SegmentJob) -> None:
        self._cancel.clear()
        relay = ProgressRelay(parent=self)
        relay.progressed.connect(self._on_progress)
        self._pbar = napari_progress(total=0, desc=f"Segmenting {layer.name}")
        self._started = time.monotonic()
        worker = create_worker(_guarded, job, relay, self._cancel.is_set, _start_thread=False)
        self._running = (layer, job)
        worker.returned.connect(self._on_returned)
        worker.finished.connect(self._on_finished)
        self.worker = worker
        self.segment_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.status.setText(f"Segmenting '{layer.name}'…")
        worker.start()

    def _on_progress(self, done: int, total: int) -> None:
        if self._pbar is None or self._running is None or self._cancel.is_set():
            return  # a late report must not overwrite the final status
        if self._pbar.total != total:
            self._pbar.total = total
        self._pbar.update(done - self._pbar.n)
        self.status.setText(eta_text(done, total, time.monotonic() - self._started))

    def _on_finished(self) -> None:
        if self._pbar is not None:
            self._pbar.close()
            self._pbar = None
        self.worker = None
        self.segment_button.setEnabled(True)
        self.cancel_button.setEnabled(False)

    def _on_returned(self, returned: tuple[Any, Exception | None]) -> None:
        (layer, job), (outcome, error) = self._running, returned
        self._running = None
        if isinstance(error, Cancelled):
            self.status.setText("Cancelled; nothing was added.")
            show_info("Segmentation cancelled.")
            return
        if error is not None:
            self.status.setText("Failed.")
            if not isinstance(error, USER_ERRORS):
                log.error("segmentation failed", exc_info=error)
            show_error(f"Segmentation of '{layer.name}' failed: {first_line(error)}")
            return
        if layer not in self.viewer.layers:
            self.status.setText(f"'{layer.name}' was removed during the run; result discarded.")
            return
        provenance = {"model": outcome.model_name, "device": outcome.device, "precision": outcome.precision}
        labels_layer, how = publish_labels(
            self.viewer, layer, outcome.labels, outcome.planes, all_planes=job.planes is None,
            channel_axis=job.channel_axis, provenance=provenance,
        )
        if outcome.probabilities is not None:
            publish_probabilities(self.viewer, layer, outcome.probabilities, outcome.class_names,
                                  channel_axis=job.channel_axis, labels_ndim=outcome.labels.ndim)
        if how == "protected":
            show_info(f"The earlier result has your edits, so this one went to a new layer '{labels_layer.name}'.")
        for note in outcome.notes:
            show_info(note)
        found = "" if outcome.objects is None else f" ({outcome.objects} objects)"
        self.status.setText(f"{'Updated' if how == 'updated' else 'Added'} '{labels_layer.name}'{found}.")
        if outcome.objects == 0:
            show_info("No objects were found: is this the right model for the image, and the object size right?")
        self.ran_on.setText(
            f"Ran on {outcome.device.upper()} in {outcome.precision} · {outcome.seconds:.1f} s · "
            f"model '{outcome.model_name}'")
