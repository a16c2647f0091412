"""The settings part of the Segment widget: input, model and run options, read into a :class:`SegmentJob`.

Kept apart from :mod:`.segment` (which runs and reports) so each stays small;
the controls are public attributes so tests and other widgets can drive them.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from napari.layers import Image
from napari.utils.notifications import show_info, show_warning
from napari.viewer import Viewer
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ..core.common.atomic import check_writable_folder
from ..core.common.callbacks import CancelCallback, ProgressCallback
from ..core.imageio import stated_pixel_size, stated_z_spacing
from ..core.inference.layout import (
    MAX_CHANNELS, check_channels, check_plane_size, likely_channel_axis, plane_layout,
)
from ..core.inference.object_filter import check_object_filter
from ..core.inference.object_size import rescale_factor
from ..core.inference.options import RunOptions, needs_disk
from ..core.inference.pipeline import Planes, SegmentResult, segment_image
from ..core.model.devices import PRECISIONS, DeviceError, available_devices, resolve_device, resolve_precision
from ..core.model.modelfile import ModelFileError, ModelInfo
from ._common import Collapsible, auto_double_spinbox, auto_spinbox, compact, form_group, value_or_none
from ._layers import current_plane, source_array
from .segment_layers import add_channels_first, file_axes, file_of, is_lazy, result_layers
from .object_filters import ObjectFilterSection
from .segment_pickers import ImagePicker, ModelPicker


@dataclass(frozen=True)
class SegmentJob:
    """One press of Segment: the layer's pixels, how their axes read, the planes wanted, and the run's options."""

    image: Any
    options: RunOptions
    rgb: bool = False
    channel_axis: int | None = None
    planes: Planes | None = None  # None: every plane
    image_path: str | None = None  # the layer's file, if it was opened from one (for the provenance)

    def plane_count(self) -> int:
        """How many 2D planes the run segments, one after the other."""
        if self.planes is not None:
            return len(self.planes)
        try:
            lead = plane_layout(tuple(self.image.shape), self.rgb, self.channel_axis)[0]
        except ValueError:  # said by the run itself
            return 1
        return int(np.prod(lead)) if lead else 1

    def run(self, progress: ProgressCallback | None = None, cancel: CancelCallback | None = None) -> SegmentResult:
        """The core pipeline on this job (called in a worker thread; touches no layer)."""
        return segment_image(self.image, self.options, rgb=self.rgb, channel_axis=self.channel_axis,
                             planes=self.planes, image_path=self.image_path, progress=progress, cancel=cancel)


STEM_BYTES = 120  # of a layer's name in its zarr store's file name, room left for "_labels-NN.zarr"


class SegmentSettings(QWidget):
    """Every choice the user makes before pressing Segment."""

    def __init__(self, viewer: Viewer, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = viewer
        self.image_picker = ImagePicker(self.viewer)
        self.channel_axis = QComboBox()
        self.channel_axis.setToolTip("For multichannel images: the axis that holds the channels the model expects.")
        self.channel = QComboBox()
        self.channel.setToolTip("For a one-channel model on a multichannel or colour image: the nuclear stain, "
                                "segmented alone. 'all, mixed': colour (or 3-4 channels) mixed into gray.")
        self.slices = QComboBox()
        self.slices.addItems(["all slices", "current slice only"])
        self.slices.setToolTip("Stacks and time series are segmented slice by slice (2D).")
        inputs, form = form_group("Input")
        form.addRow("Image", self.image_picker)
        form.addRow("Channel axis", self.channel_axis)
        form.addRow("Channel", self.channel)
        form.addRow("Slices", self.slices)
        self.link_frames = QCheckBox("same id across slices (time-lapse)")
        self.link_frames.setToolTip("An object keeps the id it had in the slice before while it overlaps itself by "
                                    "more than half: ids that follow nuclei over time (for all slices of a stack).")
        form.addRow("", self.link_frames)
        self.planes_hint = QLabel()  # a (2-4, H, W) layer is more often channels than a stack: said before the run
        self.planes_hint.setWordWrap(True)
        self.planes_hint.setVisible(False)
        form.addRow(self.planes_hint)
        # napari lines layers up by their last axes: labels of a Z x C x Y x X layer would lie over its channels
        self.channels_hint = QLabel()
        self.channels_hint.setWordWrap(True)
        self.channels_first = QPushButton("Put channels first")
        self.channels_first.setToolTip("Add this image as a new layer with its channel axis first (no copy), where "
                                       "labels line up with its slices; the original layer is hidden, not removed.")
        self.channels_first.clicked.connect(self._put_channels_first)
        self.channels_row = QWidget()
        channels_layout = QHBoxLayout(self.channels_row)
        channels_layout.setContentsMargins(0, 0, 0, 0)
        channels_layout.addWidget(self.channels_hint, 1)
        channels_layout.addWidget(self.channels_first)
        self.channels_row.setVisible(False)
        form.addRow(self.channels_row)
        # napari's TIFF reader opens every file at scale 1: the file's own calibration, offered in one click
        self.scale_hint = QLabel()
        self.scale_hint.setWordWrap(True)
        self.use_file_scale = QPushButton("Use it")
        self.use_file_scale.setToolTip("Set the image layer's scale to the file's pixel size: results, "
                                       "measurements (µm columns) and exports follow it.")
        self.use_file_scale.clicked.connect(self._use_file_scale)
        self.scale_row = QWidget()
        scale_layout = QHBoxLayout(self.scale_row)
        scale_layout.setContentsMargins(0, 0, 0, 0)
        scale_layout.addWidget(self.scale_hint, 1)
        scale_layout.addWidget(self.use_file_scale)
        self.scale_row.setVisible(False)
        form.addRow(self.scale_row)
        self._file_scale: tuple[float, float] | None = None
        self._z_step: float | None = None  # µm between a z-stack's slices, when its file states it
        self._z_axis: int | None = None  # the image layer's axis of those slices

        self.model_picker = ModelPicker()
        self.output = QComboBox()
        self.output.setToolTip("Instances: one id per object. Semantic: one id per class (0 = background).")
        self.probabilities = QCheckBox("add probability map")
        self.probabilities.setToolTip("Also add the network's per-pixel probabilities as an image layer.")
        self.flip_average = QCheckBox("mirror averaging")
        self.flip_average.setToolTip("Run the network on each window and its three mirror images and average: a "
                                     "little more accurate, four network passes: about 2.7x the time in all.")
        self.diameter = auto_double_spinbox(10_000, suffix=" px", tooltip=(
            "Typical object diameter in this image; auto measures it, rescales only if far off."))
        model, mform = form_group("Model")
        mform.addRow("Model", self.model_picker)
        mform.addRow("Output", self.output)
        mform.addRow("", self.probabilities)
        mform.addRow("", self.flip_average)
        mform.addRow("Object diameter", self.diameter)

        self.device = QComboBox()
        self.device.addItems(["auto", *available_devices()])
        self.device.setToolTip("auto: the GPU if there is one (CUDA, then Apple MPS), else the CPU.")
        self.precision = QComboBox()
        self.precision.addItems(list(PRECISIONS))
        self.precision.setToolTip("auto: bf16/fp16 only where they are faster (a GPU, or a CPU with AMX); "
                                  "fp32 otherwise.")
        self.tile_size = auto_spinbox(8192, step=64, tooltip=(
            "Side of the window the network sees (px). Results do not depend on it; auto fits the free memory. "
            "A window so small that it would cost over twice one pass over the image is raised (you are told)."))
        self.batch_size = auto_spinbox(64, tooltip="Windows processed together; auto: 4 on a GPU, 1 on the CPU.")
        self.storage = QComboBox()
        self.storage.addItems(["auto", "in memory", "zarr on disk"])
        self.storage.setToolTip("auto: results too large for memory are written to a zarr store on disk.")
        self.folder = QLineEdit()
        self.folder.setPlaceholderText("temporary folder")
        self.folder.setToolTip("Where zarr results go; empty = a new temporary folder.")
        browse = QPushButton("…")
        browse.setToolTip("Choose the folder for large results")
        browse.setFixedWidth(32)
        browse.clicked.connect(self._choose_folder)
        folder_row = QHBoxLayout()
        folder_row.addWidget(self.folder, 1)
        folder_row.addWidget(browse)
        run, rform = form_group("")
        rform.addRow("Device", self.device)
        rform.addRow("Precision", self.precision)
        rform.addRow("Window size", self.tile_size)
        rform.addRow("Batch size", self.batch_size)
        rform.addRow("Store labels", self.storage)
        rform.addRow("Zarr folder", folder_row)

        for combo in (self.image_picker, self.channel_axis, self.channel, self.slices, self.output, self.device,
                      self.precision, self.storage):
            compact(combo, 8)
        compact(self.model_picker.combo, 6)  # beside its refresh button
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.advanced = Collapsible("Device and memory", run)
        self.advanced.toggle.setToolTip("Device, precision, window size, where large results go: the defaults suit "
                                        "most images.")
        self.object_filters = ObjectFilterSection()
        self._task = "instances"  # the chosen model's, for the output choice to follow
        self._rgb_before = False  # the image shown is colour
        self._kept: tuple[str, int | None, bool] = ("none", None, False)  # last axis, channel, whether colour
        for section in (inputs, model, self.object_filters, self.advanced):
            layout.addWidget(section)
        layout.addStretch(1)  # spare height below the sections, not inside them
        self.image_picker.currentTextChanged.connect(self._on_image_changed)
        self.model_picker.changed.connect(self._on_model_changed)
        self.channel_axis.currentIndexChanged.connect(self._update_channels)
        self.channel_axis.currentIndexChanged.connect(self._update_slices)
        self.channel_axis.currentIndexChanged.connect(self._update_channels_first)
        self.slices.currentIndexChanged.connect(self._update_slices)
        self.link_frames.toggled.connect(self._update_slices)  # frames said: the "if they are channels" hint goes
        self.output.currentIndexChanged.connect(self._allow_filters)
        self._on_model_changed()

    def job(self, layer: Image) -> SegmentJob:
        """The run the controls describe for ``layer``; ModelFileError/ValueError explain what is wrong."""
        path = self.model_picker.path()
        if path is None:
            raise ModelFileError("No model chosen: train a model, or pick one with 'Load from file…'.")
        info = self.model_picker.info()
        if info is None:
            ModelInfo.of(path)  # raises the file's own reason (cut short, not a model file...)
            raise ModelFileError(f"{path.name} cannot be read as a napari-unet-seg model.")
        image = source_array(layer)
        channel_axis = self.channel_axis.currentData()
        if channel_axis is not None and 0 < channel_axis % image.ndim < image.ndim - 1:  # channels last: said after
            raise ValueError(_channels_not_first(layer.name, channel_axis, image.ndim) + " Press 'Put channels first' "
                             "under the channel axis, then Segment.")
        lead, channels, height, width = plane_layout(tuple(image.shape), layer.rgb, channel_axis)
        try:
            check_plane_size(lead, height, width)  # channels last read as width: said now, not after minutes
        except ValueError:
            if image.shape[-1] > MAX_CHANNELS:
                raise
            raise ValueError(_channels_last_hint(image.shape)) from None
        channel = self.channel.currentData() if self.channel.isEnabled() else None
        if channel is None:
            check_channels(info.in_channels, min(channels, 3) if layer.rgb else channels, info.name)  # RGBA: no alpha
        else:
            check_channels(info.in_channels, 1, info.name)
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
        if to_disk and output == "semantic" and info.task == "instances":
            show_warning("Results written to disk hold the model's own output (instances), not a foreground mask.")
        options = RunOptions(
            model=str(path), device=self.device.currentText(), precision=self.precision.currentText(),
            tile_size=value_or_none(self.tile_size), batch_size=value_or_none(self.batch_size),
            diameter=value_or_none(self.diameter) if self.diameter.isEnabled() else None,
            output=output, probabilities=self.probabilities.isChecked() and not to_disk,
            store=str(self._zarr_path(layer.name)) if to_disk else None, flip_average=self.flip_average.isChecked(),
            **self.object_filters.kwargs(),
            link_frames=(self.link_frames.isChecked() and self.link_frames.isEnabled() and planes is None
                         and output == "instances" and info.task == "instances"),  # objects only
            channel=channel,
        )
        check_object_filter(options, info.task)  # e.g. the largest area below the smallest: said before the run
        _check_run_settings(options, info)
        return SegmentJob(image, options, rgb=bool(layer.rgb), channel_axis=channel_axis, planes=planes,
                          image_path=getattr(layer.source, "path", None))

    def _zarr_path(self, name: str) -> Path:
        typed = Path(self.folder.text().strip()).expanduser() if self.folder.text().strip() else None
        if typed is not None and typed.exists() and not typed.is_dir():
            raise ValueError(f"the zarr folder {typed} is a file: choose a folder for the labels store")
        if typed is not None:  # read-only, or no drive there: said now, not after the run as "[Errno 30] ... .partial"
            try:
                check_writable_folder(typed)
            except OSError as exc:
                raise ValueError(f"the zarr folder: {exc.strerror or exc}; choose another folder") from None
        folder = typed or Path(tempfile.mkdtemp(prefix="napari-unet-seg-"))
        stem = "".join(c if c.isalnum() or c in "-_." else "_" for c in name) or "image"
        while len(stem.encode()) > STEM_BYTES:  # a file name holds 255 bytes: a long layer name is cut
            stem = stem[:-1]
        path, n = folder / f"{stem}_labels.zarr", 2
        while path.exists():
            path, n = folder / f"{stem}_labels-{n}.zarr", n + 1
        return path

    def _on_model_changed(self) -> None:
        info = self.model_picker.info()
        task = info.task if info is not None else "instances"
        # the choice carries over between models of one kind; a class model's "semantic" is not an instance
        # model's foreground mask, so back on an instance model the output is its objects again
        previous = self.output.currentData() if task == self._task else None
        self._task = task
        self.output.clear()
        if task == "instances":
            self.output.addItem("instances", "instances")
            self.output.addItem("semantic (foreground)", "semantic")
        else:
            self.output.addItem("semantic classes", "semantic")
        index = self.output.findData(previous)
        self.output.setCurrentIndex(max(index, 0))
        has_diameter = info is not None and bool(info.object_diameter)
        self.diameter.setEnabled(has_diameter)
        self.diameter.setToolTip(
            "Typical object diameter in this image (px); auto = as in the training data."
            if has_diameter else "This model does not record an object size, so images are used at their own scale.")
        self._on_image_changed()

    def _allow_filters(self, *_: Any) -> None:
        info = self.model_picker.info()
        objects = self.output.currentData() != "semantic" and (info is None or info.task == "instances")
        self.object_filters.allow(objects)

    def _on_image_changed(self, *_: Any) -> None:
        layer = self.image_picker.layer()
        self._offer_file_scale(layer)
        info = self.model_picker.info()
        in_channels = info.in_channels if info is not None else 1
        # the next image of an experiment has the same channels: its axis and channel stay chosen where they fit
        if self.channel_axis.currentData() is not None or self._rgb_before:  # a choice made on the last image
            self._kept = (self.channel_axis.currentText(), self.channel.currentData(), self._rgb_before)
        kept_size, kept_channel, kept_rgb = self._kept
        self.channel_axis.blockSignals(True)
        self.channel_axis.clear()
        self.channel_axis.addItem("none", None)
        if layer is None:
            self.channel_axis.blockSignals(False)
            self.slices.setEnabled(False)
            self.channel_axis.setEnabled(False)
            self.link_frames.setEnabled(False)
            self._update_channels()
            self._update_channels_first()
            return
        shape = source_array(layer).shape
        most = max(MAX_CHANNELS, in_channels)  # an axis of 1024 is rows or a long stack, not channels
        axes = [axis for axis in range(len(shape) - 2) if shape[axis] <= most]
        if len(shape) >= 3 and shape[-1] <= most:
            axes.append(len(shape) - 1)  # channels last, as many multichannel TIFFs hold them
        if not layer.rgb:
            for axis in axes:
                self.channel_axis.addItem(f"axis {axis} ({shape[axis]})", axis)
        self.channel_axis.setEnabled(self.channel_axis.count() > 1)
        guess = next((axis for axis in axes if shape[axis] == in_channels), None)
        stated = _file_says_channels(layer, len(shape))
        if stated is not None and not layer.rgb and self.channel_axis.findData(stated) > 0:
            self.channel_axis.setCurrentIndex(self.channel_axis.findData(stated))  # as unet-seg reads the file
        elif in_channels > 1 and guess is not None and not layer.rgb:
            self.channel_axis.setCurrentIndex(self.channel_axis.findData(guess))
        elif not layer.rgb and _channels_last_for_sure(shape):  # (Y, X, 2): never 1,000 planes 2 px wide
            self.channel_axis.setCurrentIndex(self.channel_axis.findData(len(shape) - 1))
        elif not kept_rgb and self.channel_axis.findText(kept_size) > 0:  # the same axis, of the same size
            self.channel_axis.setCurrentIndex(self.channel_axis.findText(kept_size))
        self.channel_axis.blockSignals(False)
        same_kind = self.channel_axis.currentData() is not None or (layer.rgb and kept_rgb)
        self._rgb_before = bool(layer.rgb)
        self._update_channels(keep=kept_channel if same_kind else -1)
        self._update_slices()
        self._update_channels_first()

    def _offer_file_scale(self, layer: Any) -> None:
        """Offer the pixel size the layer's TIFF states, when napari opened it at scale 1 (its reader ignores it)."""
        self._file_scale, self._z_step, self._z_axis = None, None, None
        if layer is not None and tuple(float(v) for v in layer.scale[-2:]) == (1.0, 1.0) and (
                layer.rgb or source_array(layer).shape[-1] > MAX_CHANNELS):  # the last axis is x, not channels
            self._file_scale = stated_pixel_size(file_of(layer))
            z_axis = _z_axis(layer)
            if self._file_scale is not None and z_axis is not None and float(layer.scale[z_axis]) == 1.0:
                self._z_step, self._z_axis = stated_z_spacing(file_of(layer)), z_axis  # a z-stack's slices too
        if self._file_scale is not None:
            y, x = self._file_scale
            name = Path(str(file_of(layer))).name
            slices = f" {self._z_step:g} µm apart" if self._z_step else ""
            self.scale_hint.setText(f"{name} states {y:g} x {x:g} µm pixels{slices and ', in slices' + slices}, "
                                    "but napari opened it at scale 1: sizes would be in pixels.")
        self.scale_row.setVisible(self._file_scale is not None)

    def _use_file_scale(self) -> None:
        layer = self.image_picker.layer()
        if layer is None or self._file_scale is None:
            return
        results = [r for kind in ("labels", "classes")
                   for r in result_layers(self.viewer, layer.name, str(layer.unique_id), kind)
                   if tuple(r.scale[-2:]) == tuple(layer.scale[-2:])]  # made here before: they follow, to overlay it
        for target in (layer, *results):
            # a z-stack's step between slices too, in the 3D view: on the axis the file names Z in the image
            # ((Z, C, Y, X), (C, Z, Y, X) once its channels come first), just before the plane in its labels
            z = (self._z_axis if target is layer else -3) if self._z_step and self._z_axis is not None else None
            scale, calibrated = list(target.scale), [target.ndim - 2, target.ndim - 1]
            scale[-2:] = self._file_scale
            if z is not None and target.ndim >= 3:
                scale[z] = self._z_step
                calibrated.append(z % target.ndim)
            target.scale = scale
            try:
                target.units = [("um" if k in calibrated else unit) for k, unit in enumerate(target.units)]
            except (AttributeError, ValueError, TypeError):  # an older napari without units: the scale counts
                pass
        self.scale_row.setVisible(False)
        self.viewer.reset_view()  # the image at its new size, in view: not shrunk into a corner of the canvas
        also = f" (and {', '.join(repr(r.name) for r in results)}, made from it)" if results else ""
        slices = f", slices {self._z_step:g} µm apart" if self._z_step else ""
        show_info(f"{layer.name}{also}: pixel size {self._file_scale[0]:g} x {self._file_scale[1]:g} µm{slices}, "
                  "from its file")
        self._file_scale, self._z_step = None, None

    def _update_channels(self, *_: Any, keep: int | None = None) -> None:
        """The channels of the chosen axis (or colour), for a one-channel model to take one of them alone.

        ``keep``: the channel to choose again where it exists (-1: none; None: the one chosen now).
        """
        layer = self.image_picker.layer()
        info = self.model_picker.info()
        previous = self.channel.currentData() if keep is None else (None if keep < 0 else keep)
        self.channel.clear()
        self.channel.addItem("all, mixed", None)
        axis = self.channel_axis.currentData()
        if layer is not None and (info is None or info.in_channels == 1):
            shape = source_array(layer).shape
            if layer.rgb:
                names = ["red", "green", "blue"][: min(shape[-1], 3)]
                for k, name in enumerate(names):
                    self.channel.addItem(f"{k} ({name})", k)
            elif axis is not None:
                for k in range(int(shape[axis])):
                    self.channel.addItem(str(k), k)
        self.channel.setEnabled(self.channel.count() > 1)
        self.channel.setCurrentIndex(max(self.channel.findData(previous), 0) if previous is not None else 0)

    def _update_channels_first(self, *_: Any) -> None:
        """Offer to put the channels first where labels would not line up with the image (see job())."""
        layer, axis = self.image_picker.layer(), self.channel_axis.currentData()
        ndim = len(source_array(layer).shape) if layer is not None else 0
        wrong = axis is not None and bool(axis % max(ndim, 1))
        if wrong:
            self.channels_hint.setText(_channels_not_first(layer.name, axis, ndim))
        self.channels_row.setVisible(wrong)

    def _put_channels_first(self) -> None:
        layer, axis, channel = self.image_picker.layer(), self.channel_axis.currentData(), self.channel.currentData()
        if layer is None or axis is None:
            return
        moved = add_channels_first(self.viewer, layer, axis)
        self.image_picker.select(moved)  # its channel axis, 0, is offered as the one the file states would be
        if self.channel_axis.findData(0) >= 0:
            self.channel_axis.setCurrentIndex(self.channel_axis.findData(0))
        if channel is not None and self.channel.findData(channel) >= 0:
            self.channel.setCurrentIndex(self.channel.findData(channel))
        sliders = ""
        if source_array(moved).shape[0] < source_array(layer).shape[0]:  # sliders span every layer, hidden too
            sliders = (f" Its sliders still count, so the first slider runs past this layer's "
                       f"{source_array(moved).shape[0]} channels (empty there): remove '{layer.name}' (the new "
                       "layer holds its pixels) to end that.")
        show_info(f"Added '{moved.name}': its channels come first, so its labels line up with its slices. "
                  f"'{layer.name}' is hidden, not removed.{sliders}")

    def _update_slices(self, *_: Any) -> None:
        layer = self.image_picker.layer()
        info = self.model_picker.info()
        try:
            shape = tuple(source_array(layer).shape)
            lead = plane_layout(shape, layer.rgb, self.channel_axis.currentData())[0]
        except (AttributeError, ValueError, IndexError):
            shape, lead = (), ()
        self.slices.setEnabled(bool(lead))
        self.link_frames.setEnabled(len(lead) == 1 and self.slices.currentIndex() == 0)
        axis = likely_channel_axis(shape, bool(layer.rgb), self.channel_axis.currentData(),
                                   info.in_channels) if lead and info is not None else None
        if self.link_frames.isEnabled() and self.link_frames.isChecked():
            axis = None  # the user has said the planes are frames of a movie: no "if they are channels"
        if axis is not None and _file_says_stack(layer, axis, len(shape)):
            axis = None  # the file names that axis time or depth (an ImageJ movie): no "if they are channels"
        last = lead and self.channel_axis.currentData() is None and not layer.rgb and shape[-1] <= MAX_CHANNELS
        if last:
            self.planes_hint.setText(_channels_last_hint(shape))
        elif axis is not None:
            linking = "" if len(lead) == 1 else " (then same id across slices can link the frames)"
            self.planes_hint.setText(f"{shape[axis]} planes along axis {axis}, each segmented on its own. If they are "
                                     f"channels, choose axis {axis} as the channel axis and the nuclear channel"
                                     f"{linking} (or split the layer: right-click it > Split Stack).")
        self.planes_hint.setVisible(bool(last) or axis is not None)

    def _choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Folder for large results")
        if folder:
            self.folder.setText(folder)


def _file_says_channels(layer: Any, ndim: int) -> int | None:
    """The channel axis of a hyperstack whose TIFF names it beside a Z or T axis (``TCYX``), which napari opens
    as a 4D stack: segmenting its channels as more frames mixed a cytoplasm stain in with the nuclei. A lone
    ``CYX`` says nothing (tifffile writes any (N, H, W) ImageJ file so), as for ``unet-seg``."""
    axes = file_axes(layer)
    if axes is None or len(axes) != ndim or ndim < 4 or "C" not in axes[:-2]:
        return None
    return axes.index("C")


def _channels_last_for_sure(shape: tuple[int, ...]) -> bool:
    """A last axis of 2-4 after a long one ((Y, X, 2), (Z, Y, X, 3)) holds channels: read as planes, it would
    be hundreds of images 2-4 px wide (numpy's and many TIFFs' H, W, C order), which no one segments."""
    return len(shape) >= 3 and 2 <= shape[-1] <= MAX_CHANNELS and shape[-2] >= 16


def _channels_not_first(name: str, axis: int, ndim: int) -> str:
    """Why labels of a layer whose channels are not its first axis would be drawn in the wrong place."""
    where = "it sideways, the channels as width" if axis % ndim == ndim - 1 else "its channels, not its slices"
    return (f"'{name}' has its channels on axis {axis % ndim} of {ndim}: napari lines layers up by their last axes, "
            f"so its labels would lie over {where}.")


def _z_axis(layer: Any) -> int | None:
    """The layer's axis of slices for a z-step: the one its file names Z, or, for a file that names none, the
    first of a plain (Z, Y, X) layer."""
    if layer.rgb:
        return None
    axes = file_axes(layer)
    if axes is not None:
        return axes.index("Z") if "Z" in axes[:-2] else None
    return 0 if layer.ndim == 3 else None


def _file_says_stack(layer: Any, axis: int, ndim: int) -> bool:
    """Whether the layer's TIFF names ``axis`` time (T) or depth (Z)."""
    axes = file_axes(layer)
    return axes is not None and len(axes) == ndim and axes[axis] in "TZ"


def _channels_last_hint(shape: tuple[int, ...]) -> str:
    """What to do with a layer whose last axis holds a few channels: the dock's words (the core's name no dock)."""
    return (f"The last axis ({shape[-1]} values) looks like channels, not width: choose axis {len(shape) - 1} as "
            "the channel axis and the nuclear channel. (napari draws such a layer sideways, its channels as width.)")


ENLARGING_WARNED = 3.0  # an image enlarged this much for the network takes ~its square as long: said before


def _check_run_settings(options: RunOptions, info: ModelInfo) -> None:
    """Settings the run would refuse after starting (a diameter beyond the model's range, fp16 on the CPU) are
    refused now, in the status line; a diameter that makes the run many times longer is said before it."""
    try:
        resolve_precision(options.precision, resolve_device(options.device))
    except DeviceError as exc:
        raise ValueError(str(exc)) from None
    factor = rescale_factor(info, options.diameter)
    if factor >= ENLARGING_WARNED:
        show_warning(f"An object diameter of {options.diameter:g} px enlarges the image {factor:.1f}x for the "
                     f"network (this model's objects are {float(info.object_diameter):g} px across): this run takes "
                     f"about {factor ** 2:.0f}x as long as at the image's own size.")
