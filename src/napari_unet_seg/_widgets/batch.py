"""The "Batch segment" dock widget: a thin shell over :func:`napari_unet_seg.core.batch.runner.iter_jobs`.

The batch runs in a napari thread worker that yields one result per file; the
table, progress bar and layers are only touched on the main thread (in the
``yielded``/``finished`` callbacks). Double-clicking a finished row opens the
image with its labels on top.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

from napari.qt.threading import GeneratorWorker
from napari.utils import progress as napari_progress
from napari.utils.notifications import show_error, show_info, show_warning
from napari.viewer import Viewer
from qtpy.QtCore import QTimer, QUrl
from qtpy.QtGui import QDesktopServices
from qtpy.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ..core.batch.cells_output import cells_path
from ..core.batch.errors import OutputFolderError
from ..core.batch.files import FileResult, with_channels
from ..core.batch.jobs import Job, find_jobs, found_in_subfolders, output_ending, output_kind
from ..core.batch.qc import is_class_output, pictures_of, qc_page, split_shares
from ..core.batch.runner import iter_jobs
from ..core.batch.summary import SUMMARY_NAME, csv_row, read_summary, skip_reasons, summary_note, summary_path
from ..core.common.errors import first_line, name_overwrite
from ..core.imageio import read_image, read_labels, untouched_output
from ..core.inference.cells import BOUNDARIES
from ..core.inference.cells_step import check_cells
from ..core.inference.object_filter import check_object_filter
from ..core.inference.options import RunOptions
from ..core.inference.provenance import read_provenance
from ..core.model.devices import available_devices
from ._common import (
    StatusLabel,
    auto_double_spinbox,
    auto_spinbox,
    compact,
    folder_row,
    form_group,
    format_seconds,
    start_worker,
    value_or_none,
)
from ._model_in_use import model_in_use, say_if_gone
from ._remembered import recall, remember
from ._scroll import fill_dock, scrolling
from .cells import add_cells_layer
from .measure_classes import class_names_of
from .object_filters import ObjectFilterSection
from .segment_layers import mark_result, show_classes
from .segment_pickers import ModelPicker

STEPS_PER_FILE = 100  # the progress bar's steps per file: a large file's windows move it too
COLUMNS = ["file", "status", "objects", "mean area", "seconds", "message"]
REDO = "redo finished files"  # the tick box the core's messages call "overwrite"


def _run(inputs: list[str], outdir: str, options: RunOptions, pattern: str | None, recursive: bool,
         overwrite: bool, scheduler: str | None, cancel: threading.Event, qc: bool = True,
         progress: Callable[[Job, int, int], None] | None = None) -> Iterator[Any]:
    """Plan, then yield ("plan", jobs, images in subfolders not looked into when none was found) and ("result",
    job, result) for each file; runs in a worker thread.

    ``progress`` hears how far each file's network is, from the threads that segment them.
    """
    jobs = find_jobs(inputs, outdir, pattern=pattern, recursive=recursive, kind=output_kind(options), qc=qc)
    deeper = 0 if jobs or recursive else found_in_subfolders(inputs, outdir, pattern)
    yield ("plan", jobs, deeper)
    if not jobs:
        return  # nothing to segment: no output folder made, no empty summary written
    for job, result in iter_jobs(jobs, outdir, options, overwrite=overwrite, scheduler=scheduler,
                                 cancel=cancel.is_set, overwrite_said=f"'{REDO}'", progress=progress):
        yield ("result", job, result)


def time_left(paced: float, current: float, segmented: int, remaining_files: int) -> float | None:
    """Seconds left, from the pace of the files segmented so far (``paced`` seconds for ``segmented`` files).

    The file under way (``current`` seconds in) counts down from one file's
    average, but never below the files not yet started: the estimate does not
    grow while a slow file is segmented, nor claim that slow file is done.
    None before any file has been segmented (skips take no time) or when
    nothing is left.
    """
    if not segmented or remaining_files <= 0:
        return None
    per_file = paced / segmented
    return max(per_file * remaining_files - current, per_file * (remaining_files - 1))


def first_time_left(reported: float, fraction: float, current: float, remaining_files: int) -> float | None:
    """Seconds left before any file has finished, from the file furthest along: ``fraction`` of its network
    done ``reported`` seconds into the run (its last report), ``current`` seconds into it now. None until it
    is 5 % along.

    The pace counts the run's time up to the last report (reading and
    measuring the file included; its post-processing not: a rough guess), so
    that a folder of large images says its time during the first file, not
    only after it; between reports, and while that file finishes, it counts
    down as :func:`time_left` does.
    """
    if fraction < 0.05:
        return None
    return time_left(reported / fraction, current, 1, remaining_files)


class BatchWidget(QWidget):
    """Segment every image of a folder into an output folder, locally or on a dask cluster."""

    def __init__(self, napari_viewer: Viewer, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = napari_viewer
        self.worker: GeneratorWorker | None = None
        self.jobs: list[Job] = []
        self.results: dict[Job, FileResult] = {}
        self._outdir: Path | None = None  # the output folder of the last run started
        self._rows_root: Path | None = None  # the folder an earlier run's rows (read from its summary) lie under
        self._cancel = threading.Event()
        self._error: str | None = None  # why the last run stopped, if it failed
        self._refused = False  # ... before it began (an output folder that cannot be used)
        self._pbar: napari_progress | None = None
        self._started = 0.0  # time.monotonic() when the files were found
        self._last_done = 0.0  # time.monotonic() when the last file was segmented (the estimate's pace)
        self._under_way: dict[Job, tuple[int, int, float]] = {}  # windows done, in all, and when that was said:
        # written by the worker threads
        self._nothing_found = False  # the last run found no images to segment
        self._deeper = 0  # ... and how many its input folder's subfolders hold
        self._clock = QTimer(self)  # the status counts the seconds while a file is segmented (no report comes)
        self._clock.setInterval(1000)
        self._clock.timeout.connect(self._show_status)
        self._build()
        if (in_use := model_in_use(napari_viewer)) is not None:  # the model Train put in use, as Segment does
            self.model_picker.choose(in_use)
        else:
            say_if_gone(napari_viewer, self.model_picker.combo.currentText())

    def _build(self) -> None:
        self.input_dir, self.output_dir = QLineEdit(), QLineEdit()
        self.input_dir.setToolTip("The folder of images to segment.")
        self.output_dir.setToolTip("Where the labels and summary.csv go.")
        self.pattern = QLineEdit()
        self.pattern.setPlaceholderText("all images, or e.g. *.tif")
        self.pattern.setToolTip("Which files to segment; empty: every TIFF, PNG, JPEG and zarr image. Label images "
                                "(*_labels.tif...) are skipped unless the pattern names them.")
        self.recursive = QCheckBox("include subfolders")
        self.recursive.setToolTip("Also segment the images in subfolders; the output folder mirrors their tree.")
        self.overwrite = QCheckBox(REDO)
        self.overwrite.setToolTip("Segment again the files that already have a result in the output folder "
                                  "(otherwise they are skipped, so a stopped batch resumes).")
        self.qc = QCheckBox("QC pictures")
        self.qc.setChecked(True)
        self.qc.setToolTip("Also draw each file's outlines over its image into <output>/qc, and a page of them all "
                           "with each file's counts (qc/index.html; the QC page button opens it): a whole "
                           "experiment checked by eye in a minute.")
        files, form = form_group("Files")
        form.addRow("Input folder", folder_row(self.input_dir, "Input folder", self))
        form.addRow("Pattern", self.pattern)
        form.addRow("", self.recursive)
        form.addRow("Output folder", folder_row(self.output_dir, "Output folder", self))
        self.output_dir.textChanged.connect(lambda _: self.show_earlier())  # a folder of results: shown, to open
        form.addRow("", self.overwrite)
        form.addRow("", self.qc)

        self.model_picker = ModelPicker()
        self.device = QComboBox()
        self.device.addItems(["auto", *available_devices()])
        self.diameter = auto_double_spinbox(10_000, suffix=" px", tooltip="Typical object diameter (auto: measured).")
        self.tile_size = auto_spinbox(16384, step=64, tooltip="Side of the window the network sees (auto: by device).")
        self.flip_average = QCheckBox("mirror averaging")
        self.flip_average.setToolTip("Run the network on each window and its three mirror images and average: a "
                                     "little more accurate, four network passes: about 2.7x the time in all.")
        self.scheduler = QLineEdit()
        self.scheduler.setPlaceholderText("this computer")
        self.scheduler.setToolTip("Empty: this computer. Or the address of a running dask.distributed scheduler "
                                  "(tcp://host:8786); the files must then be on a disk the workers share.")
        compact(self.model_picker.combo, 6)  # beside its refresh button
        compact(self.device, 8)
        settings, sform = form_group("Model and options")
        sform.addRow("Model", self.model_picker)
        self.channel = compact(QComboBox(), 8)
        self.channel.addItem("all, mixed", None)
        for k in range(4):
            self.channel.addItem(str(k), k)
        self.channel.setToolTip("Multichannel or colour files (C, Y, X; a plain TIFF's first axis): segment this "
                                "channel alone, e.g. the nuclear stain. 'all, mixed': colour mixed into gray.")
        sform.addRow("Channel", self.channel)
        self.cells_channel = compact(QComboBox(), 6)
        self.cells_channel.addItem("none", None)
        for k in range(4):
            self.cells_channel.addItem(f"channel {k}", k)
        self.cells_channel.setToolTip("Also grow each nucleus into its whole cell over this channel of the same file "
                                      "(a cytoplasm or membrane stain): <name>_cells.tif and its table beside the "
                                      "labels; cell k holds nucleus k.")
        self.cell_boundary = compact(QComboBox(), 6)
        self.cell_boundary.addItems(list(BOUNDARIES))
        self.cell_boundary.setToolTip("cytoplasm: cells meet at the dim seam between them; membrane: at a bright "
                                      "outline; distance: each pixel to the nearest nucleus, inside the stained area.")
        self.cell_boundary.setEnabled(False)
        self.cells_channel.currentIndexChanged.connect(
            lambda _: self.cell_boundary.setEnabled(self.cells_channel.currentData() is not None))
        cells_row = QHBoxLayout()
        cells_row.setContentsMargins(0, 0, 0, 0)
        cells_row.addWidget(self.cells_channel, 1)
        cells_row.addWidget(self.cell_boundary, 1)
        sform.addRow("Cells over", cells_row)
        sform.addRow("Device", self.device)
        sform.addRow("Object diameter", self.diameter)
        sform.addRow("Tile size", self.tile_size)
        sform.addRow("", self.flip_average)
        self.link_frames = QCheckBox("same id across frames of a stack")
        self.link_frames.setToolTip("In (T, H, W) stacks, an object keeps the id it had in the frame before while it "
                                    "overlaps itself by more than half: ids that follow nuclei over time.")
        sform.addRow("", self.link_frames)
        sform.addRow("Dask scheduler", self.scheduler)

        self.run_button, self.cancel_button = QPushButton("Run batch"), QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.run_button.setToolTip("Segment every image in the input folder into the output folder; files already "
                                   "done are skipped (a rerun resumes).")
        self.cancel_button.setToolTip("Stop after the files now running stop; every file finished keeps its output "
                                      "and its row in summary.csv.")
        self.run_button.clicked.connect(self.run)
        self.cancel_button.clicked.connect(self.cancel)
        self.qc_button = QPushButton("QC page")
        self.qc_button.setToolTip("Open the page of every file's outlines and counts (qc/index.html in the output "
                                  "folder) in your web browser.")
        self.qc_button.setEnabled(False)
        self.qc_button.clicked.connect(self.open_qc_page)
        buttons = QHBoxLayout()
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.cancel_button)
        buttons.addWidget(self.qc_button)
        self.progress_bar = QProgressBar()
        self.status = StatusLabel()
        self.status.setWordWrap(True)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setAccessibleName("Files of this run")
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)  # the message column takes the width left
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setToolTip("Double-click a finished file to open it with its labels.")
        self.table.cellDoubleClicked.connect(lambda row, _col: self.open_result(row))

        self.table.setMinimumHeight(60)
        # no rows before the first run: the settings take the height (on a laptop screen, all of them in view), and a
        # dock squeezed beside others keeps one scroll bar, not two
        self.table.setVisible(False)
        choices = QWidget()
        choices_layout = QVBoxLayout(choices)
        choices_layout.setContentsMargins(0, 0, 0, 0)
        self.object_filters = ObjectFilterSection()
        self.model_picker.changed.connect(self._allow_filters)
        self._allow_filters()
        for widget in (files, self.object_filters, settings):  # the filters' title says what is on: in view
            choices_layout.addWidget(widget)
        choices_layout.addStretch(1)
        body = QWidget()
        layout = QVBoxLayout(body)
        # the choices scroll, no taller than they are (the button right under them); the button and results stay in view
        layout.addWidget(scrolling(choices, 50, at_most_content=True), 1)
        layout.addLayout(buttons)
        layout.addWidget(self.progress_bar)
        layout.addWidget(self.status)
        layout.addWidget(self.table, 1)
        layout.addStretch(0)  # below the button while there is no table yet
        fill_dock(self, body)  # beside many docks, the whole dock scrolls
        self._recall_choices()  # the last run's folders, once every control is there

    # ------------------------------------------------------------------ running
    def options(self) -> RunOptions:
        model = self.model_picker.path()
        return RunOptions(model=str(model) if model else None, device=self.device.currentText(),
                          tile_size=value_or_none(self.tile_size), diameter=value_or_none(self.diameter),
                          flip_average=self.flip_average.isChecked(), **self.object_filters.kwargs(),
                          link_frames=self.link_frames.isChecked() and self.object_filters.for_objects,
                          channel=self.channel.currentData(), cells_channel=self.cells_channel.currentData(),
                          cell_boundary=self.cell_boundary.currentText())

    def _allow_filters(self) -> None:
        info = self.model_picker.info()
        self.object_filters.allow(info is None or info.task == "instances")

    def refresh_models(self, choose: str | Path | None = None) -> None:
        """Re-read the model folders (Train saved a model), and select ``choose`` if given (Train put it in use)."""
        if choose is None:
            self.model_picker.refresh()
        else:
            self.model_picker.choose(choose)

    def _recall_choices(self) -> None:
        """The folders and options of the last batch run, where its input folder is still there."""
        last = recall("batch")
        if not isinstance(last.get("input"), str) or not Path(last["input"]).is_dir():
            return
        self.input_dir.setText(last["input"])
        self.pattern.setText(str(last.get("pattern") or ""))
        self.recursive.setChecked(bool(last.get("subfolders")))
        self.qc.setChecked(bool(last.get("qc", True)))
        if isinstance(last.get("output"), str):
            self.output_dir.setText(last["output"])  # its earlier results are shown, to open

    def run(self) -> GeneratorWorker | None:
        """Start the batch in the background; returns the worker (None if the settings are unusable)."""
        inputs, outdir = self.input_dir.text().strip(), self.output_dir.text().strip()
        refusal = ("Choose an input folder that exists." if not inputs or not Path(inputs).expanduser().is_dir()
                   else "Choose an output folder for the labels and summary.csv." if not outdir
                   else "Choose a model (train one, or load a .safetensors file)." if self.model_picker.path() is None
                   else None)
        if refusal is not None:
            show_error(refusal)
            self.status.setText(f"Not started: {refusal[0].lower()}{refusal[1:]}")  # not the last run's outcome
            return None
        # typed relative, a folder is napari's working folder's: said whole, so the results can be found
        inputs, outdir = str(Path(inputs).expanduser().absolute()), str(Path(outdir).expanduser().absolute())
        remember("batch", {"input": inputs, "output": outdir, "pattern": self.pattern.text().strip(),
                           "subfolders": self.recursive.isChecked(), "qc": self.qc.isChecked()})
        options, info = self.options(), self.model_picker.info()
        try:
            check_object_filter(options, info.task if info is not None else "instances")
            check_cells(options, info.task if info is not None else "instances")
        except ValueError as exc:  # e.g. the largest area below the smallest
            show_error(f"Batch not started: {first_line(exc)}")
            self.status.setText(f"Not started: {first_line(exc)}")
            return None
        self._cancel.clear()
        self._error, self._refused = None, False
        self.results = {}
        self._under_way = {}
        self._nothing_found = False
        self._outdir = Path(outdir)  # the run's: the folder box may be edited while it runs
        self._rows_root = None
        self.jobs = []
        self.table.setRowCount(0)
        work = partial(_run, [inputs], outdir, options, self.pattern.text().strip() or None,
                       self.recursive.isChecked(), self.overwrite.isChecked(),
                       self.scheduler.text().strip() or None, self._cancel, self.qc.isChecked(), self._hear)
        self.run_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.status.setText("Looking for images…")
        self.worker = start_worker(self, work, failure="Batch segmentation stopped", cancel_on_close=self._cancel,
                                   stopped_on_close=("The batch run stopped: its panel was closed. Files finished so "
                                                     "far are written, with their rows in the summary; run it "
                                                     "again to do the rest."),
                                   on_yielded=self._on_yielded, on_failed=self._on_failed,
                                   on_finished=self._on_finished)
        return self.worker

    def cancel(self) -> None:
        """Stop the files being segmented between their network's layers (nothing half-written)."""
        self._cancel.set()
        self.status.setText("Cancelling…")

    def _hear(self, job: Job, done: int, total: int) -> None:
        """A file's progress, from a worker thread: only stored (one dict item); the clock shows it."""
        self._under_way[job] = (done, total, time.monotonic())

    def _on_yielded(self, message: tuple) -> None:
        if message[0] == "plan":
            self.jobs = message[1]
            self.table.setRowCount(len(self.jobs))
            self.table.setVisible(bool(self.jobs) or self.table.isVisible())
            self._fit_table()
            for row, job in enumerate(self.jobs):
                self._set_row(row, [self._name(job), "queued", "", "", "", ""])
            self.progress_bar.setRange(0, max(len(self.jobs), 1) * STEPS_PER_FILE)
            self.progress_bar.setValue(0)
            if not self.jobs:
                self._nothing_found, self._deeper = True, message[2]
                show_warning(self._nothing_found_text())
                return
            self._started = self._last_done = time.monotonic()
            self._clock.start()
            self._show_status()
            pbar = napari_progress(total=len(self.jobs), desc="Batch segment")  # may process events: the run
            if self._clock.isActive():  # can end inside this call, and then nothing would close the bar
                self._pbar = pbar
            else:
                pbar.close()
            return
        _, job, result = message
        self.results[job] = result
        self._under_way.pop(job, None)
        if result.status != "skipped":
            self._last_done = time.monotonic()
        self._show_result(self.jobs.index(job), job, result)
        self._show_progress()
        self._show_status()
        if self._pbar is not None:
            self._pbar.update(1)

    def _show_result(self, row: int, job: Job, result: FileResult) -> None:
        shown = csv_row(result)  # as summary.csv has it: a class map or a failed file counts no objects
        area = shown["mean_area"]
        objects = "class map" if result.status != "failed" and is_class_output(result.output) else shown["objects"]
        self._set_row(row, [self._name(job), result.status, str(objects),
                            f"{area:.1f}" if isinstance(area, float) else "", f"{result.seconds:.1f}",
                            name_overwrite(result.message, f"'{REDO}'")])

    def show_earlier(self) -> bool:
        """An earlier run's results in the output folder, from its summary, in the table: after a restart, each
        is a double-click away. False (the table untouched) when the folder holds none or a run is under way."""
        text = self.output_dir.text().strip()
        folder = Path(text).expanduser().absolute() if text else None
        if self.worker is not None or folder is None or not folder.is_dir():
            return False
        rows = read_summary(folder)
        if not rows:
            return False
        self.jobs, self.results, self._outdir = [], {}, folder
        for result in rows:
            job = Job(_found_source(result), Path(result.output) if result.output else folder)
            self.jobs.append(job)
            self.results[job] = result
        # named as the run named them, by their path under the folder they came from: day1/a.tif beside day2/a.tif
        parents = {str(job.source.absolute().parent) for job in self.jobs}
        self._rows_root = Path(os.path.commonpath(sorted(parents))) if parents else None
        self.table.setRowCount(len(self.jobs))
        self.table.setVisible(True)
        for row, job in enumerate(self.jobs):
            self._show_result(row, job, self.results[job])
        self._fit_table()
        page = qc_page(folder)
        self.qc_button.setEnabled(page is not None)
        self.status.setText(f"Earlier results in {folder}: {len(rows)} files, from its summary; double-click one "
                            "to open it with its image" + ("; every file's pictures: press QC page" if page else ""))
        return True

    def _fit_table(self) -> None:
        """No taller than its rows: the height left goes to the settings, not to a blank band under two rows."""
        table = self.table
        rows = sum(table.rowHeight(r) for r in range(table.rowCount()))
        chrome = table.horizontalHeader().sizeHint().height() + table.horizontalScrollBar().sizeHint().height()
        table.setMaximumHeight(max(table.minimumHeight(), rows + chrome + 2 * table.frameWidth() + 2))

    def _name(self, job: Job) -> str:
        """The file as the table shows it: its path under the input folder (subfolders matter), else its name."""
        for root in (self.input_dir.text().strip(), self._rows_root):
            if not root:
                continue
            try:
                return job.source.absolute().relative_to(Path(root).absolute()).as_posix()
            except ValueError:
                continue
        return job.source.name

    def _show_status(self) -> None:
        """Files done, the time so far and an estimate of the time left; the files under way say how far."""
        if not self.jobs or self._cancel.is_set() or not self._clock.isActive():
            return  # a tick or a late report after the end must not overwrite the final status
        done, total = len(self.results), len(self.jobs)
        now = time.monotonic()
        spent = now - self._started
        segmented = sum(r.status != "skipped" for r in self.results.values())
        under_way = {job: heard for job, heard in list(self._under_way.items()) if job not in self.results}
        for job, (windows, of, _) in under_way.items():
            self._show_running(job, windows, of)
        self._show_progress(under_way)
        remaining = time_left(self._last_done - self._started, now - self._last_done, segmented, total - done)
        if not segmented and under_way:  # the file furthest along tells the pace
            windows, of, said = max(under_way.values(), key=lambda heard: heard[0] / max(heard[1], 1))
            remaining = first_time_left(said - self._started, windows / max(of, 1), spent, total - done)
        left = f", ~{format_seconds(remaining)} left" if remaining is not None and remaining >= 1 else ""
        self.status.setText(f"Segmenting: {done} / {total} files done{left} · {format_seconds(spent)} so far")

    def _show_progress(self, under_way: dict | None = None) -> None:
        """The bar: the files done, and how far the network of each file under way is (one large file moves it)."""
        if under_way is None:
            under_way = {job: heard for job, heard in list(self._under_way.items()) if job not in self.results}
        running = sum(min(windows / max(of, 1), 1.0) for windows, of, _ in under_way.values())
        self.progress_bar.setValue(int((len(self.results) + running) * STEPS_PER_FILE))

    def _show_running(self, job: Job, windows: int, of: int) -> None:
        """A file under way: "running 40 %" in its status cell (its network's windows), then "finishing"."""
        row = self.jobs.index(job)
        text = f"running {100 * windows // max(of, 1)} %" if windows < of else "finishing"
        item = self.table.item(row, 1)
        if item is None or item.text() != text:
            self._set_row(row, [self._name(job), text, "", "", "", ""])

    def _set_row(self, row: int, values: list[str]) -> None:
        for column, value in enumerate(values):
            item = QTableWidgetItem(value)
            # the message column is often off to the right: the status cell tells it too
            item.setToolTip(f"{value}: {values[-1]}" if column == 1 and values[-1] else value)
            self.table.setItem(row, column, item)

    def _on_failed(self, exc: Exception) -> None:
        self._error = first_line(exc)  # the notification has told the user; the table and status keep saying it
        self._refused = isinstance(exc, OutputFolderError) and not self.results  # refused before any work

    def _on_finished(self) -> None:
        self._clock.stop()
        if self._pbar is not None:
            self._pbar.close()
            self._pbar = None
        self.run_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        if self._nothing_found and self._error is None:
            self.status.setText(self._nothing_found_text())  # stays said, after the notification has gone
            self.worker = None
            return
        results = list(self.results.values())
        counts = {s: sum(r.status == s for r in results) for s in ("ok", "skipped", "failed")}
        done = f"{counts['ok']} segmented, {counts['skipped']} skipped, {counts['failed']} failed"
        if self._error is not None or self._cancel.is_set():
            why = (f"{'not started' if self._refused else 'stopped'}: {self._error}" if self._error is not None
                   else "cancelled")
            for row, job in enumerate(self.jobs):  # files the run never reached say so, not "queued"
                if job not in self.results:
                    self._set_row(row, [self._name(job), "not run", "", "", "", why])
            done = f"{why[0].upper()}{why[1:]}. Before that: {done}" if results else why[0].upper() + why[1:]
        outdir = self._outdir
        summary = summary_path(outdir) if outdir.is_dir() else outdir / SUMMARY_NAME  # summary-2.csv beside theirs
        written = summary.is_file() and bool(results)  # never an earlier run's summary, nor a path that cannot exist
        why = skip_reasons(results, f"'{REDO}'")  # e.g. made with other settings: the table's column is off-screen
        page = qc_page(outdir) if self.qc.isChecked() and outdir.is_dir() and pictures_of(results, outdir) else None
        self.qc_button.setEnabled(page is not None)
        drawn = "classes" if all(is_class_output(r.output) for r in results if r.output) else "outlines"
        pictures = f"; every file's {drawn}: press QC page" if page is not None and results else ""
        text = done + (f"; summary in {summary}" if written else "") + pictures + (f"; skipped: {why}" if why else "")
        noted = [r for r in results if r.status == "ok" and _notes(r)]  # e.g. "2 planes ... one by one": read them
        if noted:
            # the one that asks for a choice first (a channel to pick), not the alphabetically first (a blank image)
            shown = min(noted, key=lambda r: "choose" not in _notes(r))
            files = f"{len(noted)} files, e.g. {Path(shown.file).name}" if len(noted) > 1 else "1 file"
            text += f"; notes ({files}): {_gist(_notes(shown))}"
        self.status.setText(text)
        if results and self._error is None:
            (show_warning if counts["failed"] else show_info)(text)
            if written and summary_note(outdir):
                show_info(summary_note(outdir))
        self.worker = None

    def _nothing_found_text(self) -> str:
        pattern = self.pattern.text().strip()
        where = str(Path(self.input_dir.text().strip()).expanduser().absolute()) + (
            " or its subfolders" if self.recursive.isChecked() else "")
        if self._deeper and not self.recursive.isChecked():
            return (f"No images found in {where}" + (f" matching '{pattern}'" if pattern else "")
                    + f": {self._deeper} {'image is' if self._deeper == 1 else 'images are'} in its subfolders: "
                    "tick 'include subfolders' to segment them")
        return (f"No images found in {where}" + (f" matching '{pattern}'" if pattern else "")
                + ": nothing segmented (images are TIFF, PNG, JPEG or zarr; label images are left out)")

    # ------------------------------------------------------------------ results
    def open_qc_page(self) -> bool:
        """Open the output folder's QC page in the web browser; False (and a message) when there is none."""
        page = qc_page(self._outdir) if self._outdir is not None else None
        if page is None:
            show_warning("No QC page in the output folder yet: run the batch with QC pictures ticked.")
            self.qc_button.setEnabled(False)
            return False
        if not QDesktopServices.openUrl(QUrl.fromLocalFile(str(page))):
            show_warning(f"Could not open a web browser: open {page} yourself.")
            return False
        return True

    def open_result(self, row: int) -> None:
        """Add the image of ``row`` and its labels as layers (labels on top, same pixel size)."""
        if not 0 <= row < len(self.jobs) or self.results.get(self.jobs[row]) is None:
            return
        job, result = self.jobs[row], self.results[self.jobs[row]]
        if result.status == "failed" or not job.target.exists():
            show_warning(f"{job.source.name} has no result to open: {result.message or result.status}")
            return
        try:
            image, labels = _load_pair(job)
        except Exception as exc:  # noqa: BLE001 - a file changed on disk since the batch
            show_error(f"Cannot open {job.source.name}: {exc}")
            return
        scale = None
        if image.pixel_size:
            scale = (1.0,) * (labels.ndim - 2) + tuple(image.pixel_size)
        image = with_channels(image, self.options())  # a CYX file read as channels, as the batch read it
        kwargs = {"channel_axis": image.data.ndim - 3} if image.channel_axis is not None else {"rgb": image.rgb}
        opened = self.viewer.add_image(image.data, name=job.source.stem, scale=scale, **kwargs)
        kind = "classes" if output_ending(job.target) == "_classes" else "labels"
        recorded = _recorded(job.target)
        nuclei = self.viewer.add_labels(labels, name=f"{job.source.stem} {kind}", scale=scale, metadata=recorded)
        if untouched_output(labels, recorded.get("provenance")):  # as Segment's result: Train wants it corrected first,
            mark_result(nuclei, opened[0] if isinstance(opened, list) else opened, recorded.get("provenance"), kind)
        if kind == "classes" and (names := class_names_of(nuclei)):
            show_classes(nuclei, names)  # as Segment shows a class output: scribble colours, names under the cursor
        cells = cells_path(job.target)
        if cells.exists() and job.target.suffix.lower() in (".tif", ".tiff"):
            try:
                add_cells_layer(self.viewer, read_labels(cells), nuclei, _recorded(cells).get("provenance"),
                                name=f"{job.source.stem} cells")
            except Exception as exc:  # noqa: BLE001 - the labels are open; the cells file is extra
                show_warning(f"Cannot open {cells.name}: {exc}")
        self.viewer.reset_view()  # this file's extent, wherever the last one was


def _notes(result: FileResult) -> str:
    """A result's notes, less a class map's shares of its classes: its row says them, and they are no note."""
    return split_shares(result.message)[1]


def _gist(notes: str, longest: int = 110) -> str:
    """A long note's first clause for the status line and its notification: the table's message column and
    summary.csv hold it whole (a 2D note of a z-stack ran to three lines under the table, once per run). A note
    that asks for a choice ("choose the nuclear channel") is said whole: the choice is the point."""
    if len(notes) <= longest or "choose" in notes:
        return notes
    cut = min((i for i in (notes.find(": "), notes.find(" ("), notes.find("; ")) if 0 < i <= longest),
              default=notes.rfind(" ", 0, longest))
    return notes[:cut if cut > 0 else longest] + " … (whole in the message column)"


def _found_source(result: FileResult) -> Path:
    """An earlier row's image: as the summary names it, else (typed relative, elsewhere) as its output records it."""
    source = Path(result.file)
    if source.exists() or not result.output:
        return source
    recorded = (read_provenance(result.output) or {}).get("input") if Path(result.output).exists() else None
    return Path(recorded) if isinstance(recorded, str) and Path(recorded).exists() else source


def _recorded(path: Path) -> dict[str, Any]:
    """The layer metadata of an output: its provenance, so Measurements and exports carry it (none if unreadable)."""
    try:
        record = read_provenance(path)
    except Exception:  # noqa: BLE001 - a file changed or foreign: opened without a provenance
        record = None
    return {"provenance": record} if isinstance(record, dict) else {}


def _load_pair(job: Job) -> tuple[Any, Any]:
    """The image (lazy for zarr) and its labels (a zarr array or the TIFF's pixels)."""
    return read_image(job.source), read_labels(job.target)


__all__ = ["BatchWidget"]
