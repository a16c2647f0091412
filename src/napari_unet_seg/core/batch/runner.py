"""Segmenting many files: one result per file, failures reported and skipped, reruns resume.

The same :func:`~.pipeline.segment` runs here as in the widget, so batch
outputs equal interactive results. Zarr inputs go through
:func:`~.blockwise.segment_to_zarr` and are never loaded whole. Locally, a
reader thread prefetches the next files while two threads segment and write,
so one file's post-processing and writing overlap the next one's network;
with a scheduler address the files are spread over a dask.distributed cluster
instead (:mod:`.distributed`).
"""

from __future__ import annotations

import contextlib
import csv
import os
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from ..imageio import ImageFile, read_image, write_labels_tiff
from .jobs import Job, find_jobs
from ..model.modelfile import Model, ModelFileError
from ..model.registry import load_model
from ..inference.pipeline import segment
from ..common.callbacks import Cancelled

SUMMARY_NAME = "summary.csv"


@dataclass(frozen=True)
class SegmentOptions:
    """Settings shared by every file of a batch."""

    model: str | None = None
    device: str = "auto"
    precision: str = "auto"
    tile_size: int | None = None
    batch_size: int | None = None
    diameter: float | None = None
    block_size: int = 2048


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


def summarize_labels(labels: np.ndarray) -> tuple[int, float]:
    """Number of objects and mean object area (px) over all planes."""
    counts = np.bincount(labels.ravel().astype(np.int64))[1:]
    counts = counts[counts > 0]
    return int(len(counts)), float(counts.mean()) if len(counts) else 0.0


def _message(job: Job, exc: BaseException) -> str:
    text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return text if text.startswith(job.source.name) else f"{job.source.name}: {text}"


def _failed(job: Job, exc: BaseException, seconds: float) -> FileResult:
    return FileResult(str(job.source), "failed", seconds=round(seconds, 3), message=_message(job, exc))


def skipped(job: Job, previous: dict[str, FileResult]) -> FileResult:
    """The row of a file whose output exists; keeps the counts of the run that made it."""
    old = previous.get(str(job.target))
    return FileResult(str(job.source), "skipped", old.objects if old else 0, old.mean_area if old else 0.0, 0.0,
                      "output exists (use overwrite to redo it)", str(job.target))


def read_timed(path: Path) -> tuple[ImageFile | BaseException, float]:
    """The image (or the error that reading it raised) and the seconds spent reading."""
    start = time.perf_counter()
    try:
        return read_image(path), time.perf_counter() - start
    except Exception as exc:  # noqa: BLE001 - reported per file by the consumer
        return exc, time.perf_counter() - start


def process_file(job: Job, loaded: tuple[ImageFile | BaseException, float], model: Model, options: SegmentOptions,
                 *, cancel: Callable[[], bool] | None = None, progress: Callable[[int, int], None] | None = None,
                 lock: Any = None) -> FileResult | None:
    """Segment a read file and write its labels atomically; None when cancelled (nothing written).

    In-memory images go through :func:`~.pipeline.segment` exactly as in the
    widget; zarr inputs go block by block into ``<stem>_labels.zarr``. Any
    failure of the file becomes a failed row. ``lock`` (if given) is held
    while the file is segmented, so tasks sharing a model overlap only their
    reading and writing. (The network itself is always run by one thread at a
    time: :func:`~.tiling.exclusive`.)
    """
    from ..inference.blockwise import segment_to_zarr

    image, seconds = loaded
    start = time.perf_counter()
    try:
        if isinstance(image, BaseException):
            raise image
        kwargs = dict(rgb=image.rgb, channel_axis=image.channel_axis, diameter=options.diameter,
                      tile_size=options.tile_size, batch_size=options.batch_size, device=options.device,
                      precision=options.precision, progress=progress, cancel=cancel)
        with lock or contextlib.nullcontext():
            if image.lazy:
                out = segment_to_zarr(image.data, model, job.target, block_size=options.block_size,
                                      pixel_size=image.pixel_size, **kwargs)
                objects, area = int(out.attrs.get("objects", 0)), float(out.attrs.get("mean_area", 0.0))
            else:
                labels = segment(image.data, model, **kwargs)
        if not image.lazy:
            write_labels_tiff(job.target, labels, image.pixel_size)
            objects, area = summarize_labels(labels)
    except Cancelled:
        return None
    except Exception as exc:  # noqa: BLE001 - one bad file must never stop the batch
        return _failed(job, exc, seconds + time.perf_counter() - start)
    seconds += time.perf_counter() - start
    return FileResult(str(job.source), "ok", objects, round(area, 2), round(seconds, 3), "", str(job.target))


def segment_file(job: Job, model: Model, options: SegmentOptions, **kwargs: Any) -> FileResult | None:
    """Read, segment and write one file (see :func:`process_file`)."""
    return process_file(job, read_timed(job.source), model, options, **kwargs)


def _after_read(job: Job, read: Future, model: Model, options: SegmentOptions,
                cancel: Callable[[], bool] | None) -> FileResult | None:
    return process_file(job, read.result(), model, options, cancel=cancel)


def local_workers() -> int:
    """Files processed at once: two overlap one file's post-processing and writing with the next one's network."""
    return 2 if (os.cpu_count() or 1) > 1 else 1


def iter_local(jobs: list[Job], model: Model, options: SegmentOptions, *, cancel: Callable[[], bool] | None = None,
               workers: int | None = None) -> Iterator[tuple[Job, FileResult]]:
    """Segment ``jobs`` on this machine; yields results as files finish.

    A reader thread loads the next file while ``workers`` threads segment and
    write: one file's post-processing and writing overlap the next file's
    network, which runs one file at a time (:func:`~.tiling.exclusive`). At
    most ``workers + 1`` images are in memory at once.
    """
    workers = workers or local_workers()
    queue = deque(jobs)
    running: dict[Future, Job] = {}
    with ThreadPoolExecutor(1, "unet-seg-read") as reader, ThreadPoolExecutor(workers, "unet-seg") as pool:
        try:
            while queue or running:
                stop = cancel is not None and cancel()
                while queue and not stop and len(running) <= workers:
                    job = queue.popleft()
                    read = reader.submit(read_timed, job.source)
                    running[pool.submit(_after_read, job, read, model, options, cancel)] = job
                if not running:
                    break
                done, _ = wait(list(running), timeout=0.5, return_when=FIRST_COMPLETED)
                for future in done:
                    result = future.result()
                    job = running.pop(future)
                    if result is not None:
                        yield job, result
        finally:
            for future in running:
                future.cancel()


def run_batch(
    inputs: Iterable[str | os.PathLike],
    outdir: str | os.PathLike,
    options: SegmentOptions = SegmentOptions(),
    *,
    pattern: str | None = None,
    recursive: bool = False,
    overwrite: bool = False,
    scheduler: str | None = None,
    on_result: Callable[[FileResult], None] | None = None,
    cancel: Callable[[], bool] | None = None,
) -> list[FileResult]:
    """Segment files and folders into ``outdir`` and write ``summary.csv``; never stops on a bad file.

    Existing outputs are skipped (a rerun resumes) unless ``overwrite``.
    ``scheduler`` is the address of a dask.distributed scheduler to run on.
    """
    outdir = Path(outdir)
    jobs = find_jobs(inputs, outdir, pattern=pattern, recursive=recursive)
    return run_jobs(jobs, outdir, options, overwrite=overwrite, scheduler=scheduler, on_result=on_result,
                    cancel=cancel)


def run_jobs(jobs: list[Job], outdir: str | os.PathLike, options: SegmentOptions = SegmentOptions(), *,
             overwrite: bool = False, scheduler: str | None = None,
             on_result: Callable[[FileResult], None] | None = None,
             cancel: Callable[[], bool] | None = None) -> list[FileResult]:
    """Run planned jobs (see :func:`find_jobs`), report each result, write ``summary.csv``."""
    results = {}
    for job, result in iter_jobs(jobs, outdir, options, overwrite=overwrite, scheduler=scheduler, cancel=cancel):
        results[job] = result
        if on_result is not None:
            on_result(result)
    return [results[j] for j in jobs if j in results]


def iter_jobs(jobs: list[Job], outdir: str | os.PathLike, options: SegmentOptions = SegmentOptions(), *,
              overwrite: bool = False, scheduler: str | None = None,
              cancel: Callable[[], bool] | None = None) -> Iterator[tuple[Job, FileResult]]:
    """Yield each job's result as it finishes; ``summary.csv`` is written at the end, even if stopped early."""
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    previous = {r.output: r for r in read_summary(outdir)}
    results: dict[Job, FileResult] = {}
    todo = [job for job in jobs if overwrite or not job.target.exists()]
    try:
        waiting = set(todo)
        for job in jobs:
            if job not in waiting:
                results[job] = skipped(job, previous)
                yield job, results[job]
        if todo and scheduler:
            from .distributed import iter_distributed

            stream = iter_distributed(todo, options, scheduler, cancel=cancel)
        elif todo:
            stream = iter_local(todo, load_model(options.model), options, cancel=cancel)
        else:
            stream = iter(())
        for job, result in stream:
            results[job] = result
            yield job, result
    finally:
        write_summary([results[j] for j in jobs if j in results], outdir)


def write_summary(results: list[FileResult], outdir: str | os.PathLike) -> Path:
    """Write ``summary.csv`` atomically."""
    path = Path(outdir) / SUMMARY_NAME
    tmp = path.with_name(f".{path.name}.{os.getpid()}.partial")
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=[fld.name for fld in fields(FileResult)])
        writer.writeheader()
        for result in results:
            writer.writerow(asdict(result))
    os.replace(tmp, path)
    return path


def read_summary(outdir: str | os.PathLike) -> list[FileResult]:
    """Rows of an earlier run's ``summary.csv`` (empty if missing or unreadable)."""
    path = Path(outdir) / SUMMARY_NAME
    try:
        with open(path, newline="", encoding="utf-8") as f:
            return [FileResult(row["file"], row["status"], int(row["objects"] or 0), float(row["mean_area"] or 0),
                               float(row["seconds"] or 0), row["message"], row["output"]) for row in csv.DictReader(f)]
    except (OSError, KeyError, ValueError):
        return []


__all__ = ["FileResult", "ModelFileError", "SegmentOptions", "iter_jobs", "read_summary", "run_batch", "run_jobs",
           "segment_file", "write_summary"]
