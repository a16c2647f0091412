"""One file of a batch: read it, segment it through the one pipeline, write its labels, report a row.

Shared by the local runner and the dask workers, so results are identical
wherever a file is processed. Any failure of a file becomes a "failed" row;
it never stops the batch. A file stopped before it was written (cancelled, or
the interpreter shutting down as napari closes) gets no row: it was not run.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..common.callbacks import Cancelled
from ..common.errors import first_line
from ..common.labels_zarr import set_stack_axes
from ..imageio import ImageFile, read_image, write_labels_tiff
from ..inference.cells_step import describe_cells_request
from ..inference.layout import MAX_CHANNELS
from ..inference.object_filter import ObjectFilter
from ..inference.options import RunOptions
from ..inference.pipeline import segment_image
from ..inference.provenance import csv_comments, with_paths
from ..model.modelfile import Model
from ..model.registry import DEFAULT_MODEL, resolve_model_path
from .cells_output import regrow_cells, write_cells_output
from .errors import stopped_by_shutdown
from .existing import same_file
from .qc import SHARES, write_qc_picture
from .jobs import Job
from .objects import ObjectsOutcome, measure_output


@dataclass
class FileResult:
    """One row of ``summary.csv``."""

    file: str
    status: str  # "ok", "failed" or "skipped"
    objects: int = 0
    mean_area: float = 0.0
    seconds: float = 0.0
    message: str = ""
    output: str = ""
    settings: str = ""  # what made the output: model file digest, diameter, output kind (see settings_key)


def class_shares(labels: Any, names: Sequence[str]) -> str | None:
    """A class map in words, each class's share of the pixels in class order: "class map: 45 % background,
    35 % dim, 20 % bright" (None for one on disk, not read back whole to say it)."""
    if not isinstance(labels, np.ndarray) or not labels.size:
        return None
    counts = np.bincount(labels.ravel().astype(np.int64), minlength=len(names))
    named = [names[k] if k < len(names) and names[k] else f"class {k}" for k in range(len(counts))]
    return SHARES + ", ".join(f"{100 * c / labels.size:.0f} % {n}" for c, n in zip(counts, named))


def failed_result(job: Job, exc: BaseException, seconds: float) -> FileResult:
    """The row of a file that could not be segmented, its reason in one line that names the file."""
    text = first_line(exc)
    message = text if text.startswith(job.source.name) else f"{job.source.name}: {text}"
    return FileResult(str(job.source), "failed", seconds=round(seconds, 3), message=message)


EXISTS = "output exists (use overwrite to redo it)"  # the plain skip of a rerun that resumes
NOT_OURS = ("output exists and was not written by unet-seg (it records no provenance): kept, even with overwrite; "
            "move it away or choose another output folder to segment this image")


def skipped_result(job: Job, previous: dict[str, FileResult], changes: Sequence[str] | None = None,
                   made_from: str | None = None, counted: tuple[int, float] | None = None,
                   settings: str = "") -> FileResult:
    """The row of a file whose output (written by unet-seg) exists; keeps the counts of the run that made it.

    ``changes`` are the settings that run had otherwise ("model: nuclei ->
    nuclei-robust", from the output's provenance; None: unknown). ``made_from``
    is the image file that run read, as its provenance records it (absolute;
    None: not recorded), which decides whether the output is this file's: the
    summary's row names the file as that run was given it, relative to where
    it ran. The row says either: a rerun never passes off an output made
    otherwise, or from another image of the same name, as this run's.
    ``counted`` (objects, mean area) was read back from the output, for one
    whose row the run that made it never wrote (it was killed first); such a row
    records ``settings`` (this run's key) when the output was made with this run's settings.
    """
    old = previous.get(str(job.target))
    source = Path(job.source).absolute()
    if made_from is not None:
        other = None if same_file(made_from, source) else made_from
    else:
        other = old.file if old is not None and old.file != str(job.source) else None
    if other is not None:
        return FileResult(str(job.source), "skipped", 0, 0.0, 0.0,
                          f"output exists but holds the labels of {other}; use overwrite to redo it",
                          str(job.target))
    if changes is None:
        message = "output exists, made by an earlier run of unknown settings; use overwrite to redo it"
    elif changes:
        message = f"output exists, made with other settings ({', '.join(changes)}); use overwrite to redo it"
    else:
        message = EXISTS
    if old is None and counted is not None:
        return FileResult(str(job.source), "skipped", counted[0], round(counted[1], 2), 0.0,
                          f"{message}; counts read from the output (the run that made it left no row)",
                          str(job.target), settings if changes == [] else "")
    return FileResult(str(job.source), "skipped", old.objects if old else 0, old.mean_area if old else 0.0, 0.0,
                      message, str(job.target), old.settings if old else "")


def holds_labels_of(record: dict | None, job: Job) -> bool | None:
    """Whether an output's provenance ``record`` says it was made from ``job``'s image; None when it names none."""
    made_from = record.get("input") if record else None
    return same_file(made_from, job.source.absolute()) if isinstance(made_from, str) else None


def kept_result(job: Job) -> FileResult:
    """The row of a file whose output name is taken by a file unet-seg did not write: kept, even with overwrite."""
    return FileResult(str(job.source), "skipped", 0, 0.0, 0.0, NOT_OURS, str(job.target))


def settings_key(options: RunOptions) -> str:
    """A short digest of what decides a run's labels: the model file's bytes, the diameter, the output kind, flips,
    object filters, frame links, the channel.

    Window, batch, device and precision are left out: results do not depend
    on them (tiling is exact; reduced precision is the same model).
    """
    digest = hashlib.sha1(resolve_model_path(options.model or DEFAULT_MODEL).read_bytes())
    key = (options.diameter, options.output) + (("flip_average",) if options.flip_average else ())
    found = ObjectFilter.of(options)
    if found.active:
        key += (("objects", found.min_area, found.max_area, found.exclude_border),)
    if options.link_frames:
        key += ("link_frames",)
    if options.channel is not None:
        key += (("channel", options.channel),)
    if options.cells_channel is not None:
        key += (("cells", describe_cells_request(vars(options))),)
    digest.update(repr(key).encode())  # unchanged without flips, filters, links, a channel or cells: old outputs count
    return digest.hexdigest()[:12]


def read_timed(path: Path) -> tuple[ImageFile | BaseException, float]:
    """The image (or the error that reading it raised) and the seconds spent reading."""
    start = time.perf_counter()
    try:
        return read_image(path), time.perf_counter() - start
    except Exception as exc:  # noqa: BLE001 - reported per file by the consumer
        return exc, time.perf_counter() - start


def with_channels(image: ImageFile, options: RunOptions, in_channels: int = 1) -> ImageFile:
    """A (N, H, W) file (a TIFF, ImageJ's CYX or plain) whose first axis is the channels: when one is asked, for the
    nuclei or the cells (of up to four planes, or planes the file calls C), or when the model takes N > 1 channels."""
    if image.channel_axis is not None or image.rgb or not image.stack or image.data.ndim != 3:
        return image
    planes = int(image.data.shape[0])
    said_c = str(image.metadata.get("axes") or "").upper()[:1] == "C"
    asked = (options.channel is not None or options.cells_channel is not None) and (planes <= MAX_CHANNELS or said_c)
    if not asked and not 1 < in_channels == planes:
        return image  # a Z or T stack: a channel asked of it is refused plane by plane, not read from slice K
    return replace(image, stack=False, metadata={**image.metadata, "channel_axis": -3})


def process_file(job: Job, loaded: tuple[ImageFile | BaseException, float], model: Model, options: RunOptions,
                 *, cancel: Callable[[], bool] | None = None, progress: Callable[[int, int], None] | None = None,
                 lock: Any = None) -> FileResult | None:
    """Segment a read file and write its labels atomically; None when cancelled or stopped (nothing written).

    In-memory images become ``<stem>_labels.tif``; zarr inputs are written
    block by block into ``<stem>_labels.zarr`` (the run's ``store``, an NGFF
    labels group whose stack axis is named as the input's: z or t); both
    record their provenance, with the command that remakes them. Instance
    labels are then measured into ``<stem>_objects.csv`` (unless the job says
    not to), whose totals the row reports; cells, when the run grows them,
    go to ``<stem>_cells.tif`` (and ``<stem>_cells_objects.csv``). ``lock``
    (if given) is held while the file is segmented, so tasks sharing a model
    overlap only their reading and writing. (The network itself is always
    run by one thread at a time: :func:`~..model.lock.exclusive`.)
    """
    image, seconds = loaded
    start = time.perf_counter()
    try:
        if isinstance(image, BaseException):
            raise image
        image = with_channels(image, options, model.in_channels)
        if job.cells_only:
            return _cells_again(job, image, options, seconds, start, cancel)
        run = replace(options, store=str(job.target), cells_channel=None) if image.lazy else options
        with lock or contextlib.nullcontext():
            result = segment_image(image.data, run, model=model, rgb=image.rgb, channel_axis=image.channel_axis,
                                   pixel_size=image.pixel_size, image_path=job.source, progress=progress, cancel=cancel,
                                   file_axes=image.metadata.get("axes"))
        provenance = with_paths(result.provenance, output_dir=job.target.parent)
        if image.lazy:
            set_stack_axes(job.target, output_stack_axes(image, options))
        else:
            write_labels_tiff(job.target, result.labels, image.pixel_size, provenance=provenance,
                              stack_axis=output_stack_axis(image, options), z_spacing=image.metadata.get("z_spacing"))
    except Cancelled:
        return None
    except Exception as exc:  # noqa: BLE001 - one bad file must never stop the batch
        if stopped_by_shutdown(exc):  # napari closed mid-run: not finished, as when cancelled; never "failed"
            return None
        return failed_result(job, exc, seconds + time.perf_counter() - start)
    counted = ObjectsOutcome(result.objects, result.mean_area)
    shares_note = class_shares(result.labels, model.class_names) if result.objects is None else None
    if job.measure and result.objects is not None:  # instances only: classes are not objects
        measured = measure_output(result.labels, image, job.target, csv_comments(provenance))
        counted = measured if measured.objects is not None else replace(counted, note=measured.note)  # the run's
    qc_note = "" if job.qc is None else write_qc_picture(
        job.qc, image.data, result.labels, rgb=image.rgb, channel_axis=image.channel_axis, cells=result.cells,
        classes=result.objects is None)
    cells_note = None if result.cells is None else write_cells_output(
        job.target, result.cells, image, options, provenance, measure=job.measure,
        stack_axis=output_stack_axis(image, options))
    seconds += time.perf_counter() - start
    if image.lazy and options.cells_channel is not None:
        cells_note = ("no cells: labels written block by block to disk are not grown into cells here; grow them "
                      f"with unet-seg cells {job.target.name} --image {job.source.name} "
                      f"--channel {options.cells_channel}")
    notes = [*([shares_note] if shares_note else []), *result.notes, *([counted.note] if counted.note else []),
             *([cells_note] if cells_note else []),
             *([qc_note] if qc_note else [])]
    return FileResult(str(job.source), "ok", counted.objects or 0, round(counted.mean_area, 2), round(seconds, 3),
                      "; ".join(notes), str(job.target))


def _cells_again(job: Job, image: ImageFile, options: RunOptions, seconds: float, start: float,
                 cancel: Callable[[], bool] | None) -> FileResult | None:
    """The row of a file whose labels stay and whose cells are grown again (only the cell settings changed)."""
    try:
        labels, cells, note = regrow_cells(job.target, image, options, measure=job.measure, cancel=cancel,
                                           stack_axis=output_stack_axis(image, options))
    except Cancelled:
        return None
    except Exception as exc:  # noqa: BLE001 - one bad file must never stop the batch
        if stopped_by_shutdown(exc):  # napari closed mid-run: not finished, as when cancelled; never "failed"
            return None
        return failed_result(job, exc, seconds + time.perf_counter() - start)
    if job.qc is not None:  # the picture shows the new cells
        qc_note = write_qc_picture(job.qc, image.data, labels, rgb=image.rgb, channel_axis=image.channel_axis,
                                   cells=cells)
        note += f"; {qc_note}" if qc_note else ""
    ids, areas = np.unique(labels[labels > 0], return_counts=True)
    return FileResult(str(job.source), "ok", len(ids), round(float(areas.mean()) if len(ids) else 0.0, 2),
                      round(seconds + time.perf_counter() - start, 3), note, str(job.target))


def stack_axes(image: ImageFile) -> list[str]:
    """The names of the image's leading axes (``["t"]``...) when its file says them (OME-Zarr, ImageJ), else none."""
    axes = str(image.metadata.get("axes") or "").lower()
    return [a for a in axes if a not in "cyxs"] if image.stack else []


def output_stack_axes(image: ImageFile, options: RunOptions) -> list[str]:
    """The leading axes of the labels: the image's, or frames when the user linked them (``link_frames``).

    A movie saved as a plain stack, or by mistake as ImageJ slices, names no
    time axis; asking for the same id across frames says it is one.
    """
    axes = stack_axes(image)
    if options.link_frames and image.stack and len(axes) <= 1 and "z_spacing" not in image.metadata:
        return ["t"]  # a z-stack that states its step between slices stays one, linked or not
    return axes


def output_stack_axis(image: ImageFile, options: RunOptions) -> str:
    """``"T"`` or ``"Z"``: how a labels TIFF names its stack axis (see :func:`output_stack_axes`)."""
    return "T" if output_stack_axes(image, options)[:1] == ["t"] else "Z"


def segment_file(job: Job, model: Model, options: RunOptions, **kwargs: Any) -> FileResult | None:
    """Read, segment and write one file (see :func:`process_file`)."""
    return process_file(job, read_timed(job.source), model, options, **kwargs)
