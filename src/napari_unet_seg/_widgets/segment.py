"""The "Segment" dock widget: a thin shell that turns settings into a background job.

All computation happens in :func:`.segment_job.run_segmentation` on a
``napari.qt.threading`` worker; this class only reads the controls, starts and
cancels the worker, relays progress, and puts results into layers on the main
thread when the worker returns.
"""

from __future__ import annotations

import logging
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from napari.layers import Image, Layer
from napari.qt.threading import FunctionWorker, create_worker
from napari.utils import progress as napari_progress
from napari.utils.notifications import show_error, show_info, show_warning
from napari.viewer import Viewer
from qtpy.QtWidgets import (
    QCheckBox, QComboBox, QFileDialog, QHBoxLayout, QLabel, QLineEdit, QPushButton, QVBoxLayout, QWidget,
)

from ..core.devices import PRECISIONS, DeviceError, available_devices
from ..core.modelfile import ModelFileError
from ..core.tiling import Cancelled
from ._common import ProgressRelay, auto_double_spinbox, auto_spinbox, eta_text, form_group, value_or_none
from .segment_job import SegmentRequest, check_channels, needs_disk, plane_layout, run_segmentation
from .segment_layers import current_plane, is_lazy, publish_labels, publish_probabilities, source_array
from .segment_pickers import ImagePicker, ModelPicker

log = logging.getLogger(__name__)
USER_ERRORS = (ModelFileError, DeviceError, ValueError, RuntimeError, MemoryError, OSError)


def _guarded(image: Any, request: SegmentRequest, progress: Any, cancel: Any) -> tuple[Any, Exception | None]:
    """Run the job and return (result, error): napari would show a raised error as a traceback."""
    try:
        return run_segmentation(image, request, progress=progress, cancel=cancel), None
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
        self._build()
        self._on_model_changed()

    # ----------------------------------------------------------------- layout
    def _build(self) -> None:
        self.image_picker = ImagePicker(self.viewer)
        self.channel_axis = QComboBox()
        self.channel_axis.setToolTip("For multichannel images: the axis that holds the channels the model expects.")
        self.slices = QComboBox()
        self.slices.addItems(["all slices", "current slice only"])
        self.slices.setToolTip("Stacks and time series are segmented slice by slice (2D).")
        inputs, form = form_group("Image")
        form.addRow("Image", self.image_picker)
        form.addRow("Channel axis", self.channel_axis)
        form.addRow("Slices", self.slices)

        self.model_picker = ModelPicker()
        self.output = QComboBox()
        self.output.setToolTip("Instances: one id per object. Semantic: one id per class (0 = background).")
        self.probabilities = QCheckBox("also add probabilities as an image layer")
        self.diameter = auto_double_spinbox(10_000, suffix=" px", tooltip=(
            "Typical object diameter in this image; the image is rescaled to the size the model was trained on."))
        model, mform = form_group("Model")
        mform.addRow("Model", self.model_picker)
        mform.addRow("Output", self.output)
        mform.addRow("", self.probabilities)
        mform.addRow("Object diameter", self.diameter)

        self.device = QComboBox()
        self.device.addItems(["auto", *available_devices()])
        self.device.setToolTip("auto: the GPU if there is one (CUDA, then Apple MPS), else the CPU.")
        self.precision = QComboBox()
        self.precision.addItems(list(PRECISIONS))
        self.precision.setToolTip("auto: reduced precision only where the hardware runs it natively.")
        self.tile_size = auto_spinbox(8192, step=64, tooltip=(
            "Side of the window the network sees (px). Results do not depend on it; auto fits the device memory."))
        self.batch_size = auto_spinbox(64, tooltip="Windows processed together; auto: 4 on a GPU, 1 on the CPU.")
        self.storage = QComboBox()
        self.storage.addItems(["auto", "in memory", "zarr on disk"])
        self.storage.setToolTip("auto: results too large for memory are written to a zarr store on disk.")
        self.folder = QLineEdit()
        self.folder.setPlaceholderText("temporary folder")
        self.folder.setToolTip("Where zarr results go; empty = a new temporary folder.")
        browse = QPushButton("…")
        browse.setFixedWidth(32)
        browse.clicked.connect(self._choose_folder)
        folder_row = QHBoxLayout()
        folder_row.addWidget(self.folder, 1)
        folder_row.addWidget(browse)
        run, rform = form_group("Run")
        rform.addRow("Device", self.device)
        rform.addRow("Precision", self.precision)
        rform.addRow("Window size", self.tile_size)
        rform.addRow("Batch size", self.batch_size)
        rform.addRow("Store labels", self.storage)
        rform.addRow("Zarr folder", folder_row)

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
        for section in (inputs, model, run):
            layout.addWidget(section)
        layout.addLayout(buttons)
        layout.addWidget(self.status)
        layout.addWidget(self.ran_on)
        layout.addStretch(1)

        self.image_picker.currentTextChanged.connect(self._on_image_changed)
        self.model_picker.changed.connect(self._on_model_changed)

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
            request, image = self._request(layer)
        except (ModelFileError, ValueError) as exc:
            show_error(str(exc))
            return
        self._start(layer, request, image)

    def cancel(self) -> None:
        """Stop the running segmentation after its current window batch; nothing is added."""
        if self.worker is not None:
            self._cancel.set()
            self.status.setText("Cancelling…")

    # -------------------------------------------------------------- running
    def _request(self, layer: Image) -> tuple[SegmentRequest, Any]:
        path = self.model_picker.path()
        if path is None:
            raise ModelFileError("No model chosen: train a model, or pick one with 'Load from file…'.")
        metadata = self.model_picker.metadata()
        if metadata is None:
            raise ModelFileError(f"{path.name} cannot be read as a napari-unet-seg model.")
        image = source_array(layer)
        channel_axis = self.channel_axis.currentData()
        lead, channels, height, width = plane_layout(tuple(image.shape), layer.rgb, channel_axis)
        in_channels = int(metadata.get("architecture", {}).get("in_channels", 1))
        check_channels(in_channels, channels, metadata.get("name") or path.stem)
        planes = None
        if lead and self.slices.currentIndex() == 1:
            planes = (current_plane(self.viewer, layer, len(lead), channel_axis),)
        storage = self.storage.currentText()
        to_disk = storage == "zarr on disk" or (
            storage == "auto" and needs_disk((*lead, height, width), is_lazy(image), height * width))
        if to_disk and planes is not None:
            show_warning("Only whole images are written to disk; keeping this slice's labels in memory.")
            to_disk = False
        output = "semantic" if self.output.currentData() == "semantic" else "instances"
        request = SegmentRequest(
            model=str(path), device=self.device.currentText(), precision=self.precision.currentText(),
            tile_size=value_or_none(self.tile_size), batch_size=value_or_none(self.batch_size),
            diameter=value_or_none(self.diameter) if self.diameter.isEnabled() else None,
            output=output, probabilities=self.probabilities.isChecked() and not to_disk,
            rgb=bool(layer.rgb), channel_axis=channel_axis, planes=planes,
            zarr_path=str(self._zarr_path(layer.name)) if to_disk else None,
        )
        return request, image

    def _zarr_path(self, name: str) -> Path:
        folder = Path(self.folder.text()) if self.folder.text().strip() else Path(
            tempfile.mkdtemp(prefix="napari-unet-seg-"))
        stem = "".join(c if c.isalnum() or c in "-_." else "_" for c in name) or "image"
        path, n = folder / f"{stem}_labels.zarr", 2
        while path.exists():
            path, n = folder / f"{stem}_labels-{n}.zarr", n + 1
        return path

    def _start(self, layer: Image, request: SegmentRequest, image: Any) -> None:
        self._cancel.clear()
        relay = ProgressRelay(parent=self)
        relay.progressed.connect(self._on_progress)
        self._pbar = napari_progress(total=0, desc=f"Segmenting {layer.name}")
        self._started = time.monotonic()
        worker = create_worker(_guarded, image, request, relay, self._cancel.is_set, _start_thread=False)
        worker.returned.connect(lambda outcome: self._on_returned(layer, request, outcome))
        worker.finished.connect(self._on_finished)
        self.worker = worker
        self.segment_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.status.setText(f"Segmenting '{layer.name}'…")
        worker.start()

    def _on_progress(self, done: int, total: int) -> None:
        if self._pbar is None or self._cancel.is_set():
            return
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

    def _on_returned(self, layer: Image, request: SegmentRequest, returned: tuple[Any, Exception | None]) -> None:
        outcome, error = returned
        if isinstance(error, Cancelled):
            self.status.setText("Cancelled; nothing was added.")
            show_info("Segmentation cancelled.")
            return
        if error is not None:
            self.status.setText("Failed.")
            if not isinstance(error, USER_ERRORS):
                log.error("segmentation failed", exc_info=error)
            first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
            show_error(f"Segmentation of '{layer.name}' failed: {first_line}")
            return
        if layer not in self.viewer.layers:
            self.status.setText(f"'{layer.name}' was removed during the run; result discarded.")
            return
        provenance = {"model": outcome.model_name, "device": outcome.device, "precision": outcome.precision}
        labels_layer, how = publish_labels(
            self.viewer, layer, outcome.labels, outcome.planes, all_planes=request.planes is None,
            channel_axis=request.channel_axis, provenance=provenance,
        )
        if outcome.probabilities is not None:
            names = (self.model_picker.metadata() or {}).get("class_names", [])
            publish_probabilities(self.viewer, layer, outcome.probabilities, names,
                                  channel_axis=request.channel_axis, labels_ndim=outcome.labels.ndim)
        if how == "protected":
            show_info(f"The earlier result has your edits, so this one went to a new layer '{labels_layer.name}'.")
        for note in outcome.notes:
            show_info(note)
        self.status.setText(f"{'Updated' if how == 'updated' else 'Added'} '{labels_layer.name}'.")
        self.ran_on.setText(
            f"Ran on {outcome.device.upper()} in {outcome.precision} · {outcome.seconds:.1f} s · "
            f"model '{outcome.model_name}'")

    # -------------------------------------------------------------- reacting
    def _on_model_changed(self) -> None:
        metadata = self.model_picker.metadata() or {}
        previous = self.output.currentData()
        self.output.clear()
        if metadata.get("task", "instances") == "instances":
            self.output.addItem("instances (one id per object)", "instances")
            self.output.addItem("semantic (foreground mask)", "semantic")
        else:
            self.output.addItem("semantic classes", "semantic")
        index = self.output.findData(previous)
        self.output.setCurrentIndex(max(index, 0))
        has_diameter = bool(metadata.get("object_diameter"))
        self.diameter.setEnabled(has_diameter)
        self.diameter.setToolTip(
            "Typical object diameter in this image (px); auto = as in the training data."
            if has_diameter else "This model does not record an object size, so images are used at their own scale.")
        self._on_image_changed()

    def _on_image_changed(self, *_: Any) -> None:
        layer = self.image_picker.layer()
        metadata = self.model_picker.metadata() or {}
        in_channels = int(metadata.get("architecture", {}).get("in_channels", 1))
        self.channel_axis.clear()
        self.channel_axis.addItem("none", None)
        if layer is None:
            self.slices.setEnabled(False)
            self.channel_axis.setEnabled(False)
            return
        shape = source_array(layer).shape
        if not layer.rgb:
            for axis in range(len(shape) - 2):
                self.channel_axis.addItem(f"axis {axis} ({shape[axis]})", axis)
        self.channel_axis.setEnabled(self.channel_axis.count() > 1)
        guess = next((axis for axis in range(len(shape) - 2) if shape[axis] == in_channels), None)
        if in_channels > 1 and guess is not None and not layer.rgb:
            self.channel_axis.setCurrentIndex(self.channel_axis.findData(guess))
        plane_ndim = 3 if layer.rgb else 2
        self.slices.setEnabled(len(shape) - plane_ndim - (1 if in_channels > 1 else 0) > 0)

    def _choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Folder for large results")
        if folder:
            self.folder.setText(folder)
