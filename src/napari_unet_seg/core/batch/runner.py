"""Segmenting many files: one result per file, failures reported and skipped, reruns resume.

Each file goes through the same pipeline as the widget (:mod:`.files`), so
batch outputs equal interactive results; zarr inputs are never loaded whole.
Files run on this machine (:mod:`.local`) or, with a scheduler address, on a
dask.distributed cluster (:mod:`.distributed`).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from pathlib import Path

from ..common.errors import name_overwrite
from ..inference.options import RunOptions
from ..model.registry import cached_model
from .cells_output import cells_path
from .existing import RunSettings, counted_output, output_provenance
from .folder_lock import folder_lock
from .files import NOT_OURS, FileResult, holds_labels_of, kept_result, settings_key, skipped_result
from .jobs import Job, find_jobs, output_kind
from .local import FileProgress, iter_local
from .objects import ObjectsOutcome
from .objects_kept import measure_kept_output, with_table
from .errors import SchedulerError
from .qc import INDEX_NAME, QC_FOLDER, write_qc_index
from .qc_kept import draw_kept_picture
from .output_folder import prepare_output_folder
from .summary import (
    SUMMARY_NAME,
    append_row,
    claimed_keys,
    clean_partials,
    kept_row,
    merged_rows,
    read_summary,
    row_keys,
    write_summary,
)


def run_batch(
    inputs: Iterable[str | os.PathLike],
    outdir: str | os.PathLike,
    options: RunOptions = RunOptions(),
    *,
    pattern: str | None = None,
    recursive: bool = False,
    overwrite: bool = False,
    scheduler: str | None = None,
    on_result: Callable[[FileResult], None] | None = None,
    cancel: Callable[[], bool] | None = None,
) -> list[FileResult]:
    """Segment files and folders into ``outdir`` and write ``summary.csv``; never stops on a bad file.

    Existing outputs are skipped (a rerun resumes) unless ``overwrite``;
    files of an output's name that unet-seg did not write are never replaced.
    ``scheduler`` is the address of a dask.distributed scheduler to run on.
    """
    outdir = Path(outdir)
    jobs = find_jobs(inputs, outdir, pattern=pattern, recursive=recursive, kind=output_kind(options))
    return run_jobs(jobs, outdir, options, overwrite=overwrite, scheduler=scheduler, on_result=on_result,
                    cancel=cancel)


def run_jobs(jobs: list[Job], outdir: str | os.PathLike, options: RunOptions = RunOptions(), *,
             overwrite: bool = False, scheduler: str | None = None,
             on_result: Callable[[FileResult], None] | None = None,
             cancel: Callable[[], bool] | None = None, overwrite_said: str = "overwrite",
             progress: FileProgress | None = None) -> list[FileResult]:
    """Run planned jobs (see :func:`find_jobs`), report each result, write ``summary.csv``; ``progress`` as for
    :func:`iter_jobs`."""
    results = {}
    for job, result in iter_jobs(jobs, outdir, options, overwrite=overwrite, scheduler=scheduler, cancel=cancel,
                                 overwrite_said=overwrite_said, progress=progress):
        results[job] = result
        if on_result is not None:
            on_result(result)
    return [results[j] for j in jobs if j in results]


def iter_jobs(jobs: list[Job], outdir: str | os.PathLike, options: RunOptions = RunOptions(), *,
              overwrite: bool = False, scheduler: str | None = None,
              cancel: Callable[[], bool] | None = None,
              overwrite_said: str = "overwrite",
              progress: FileProgress | None = None) -> Iterator[tuple[Job, FileResult]]:
    """Yield each job's result as it finishes; its row is in the summary at once.

    The output folder is checked first (:class:`~.errors.OutputFolderError`,
    one line). The summary is ``summary.csv`` unless the user has a file of
    that name (see :func:`~.summary.summary_path`). A killed run therefore
    leaves the summary of what finished (the end of a run rewrites the file
    whole, atomically); its temporary files are cleaned up by the next run.
    Rows of outputs this run does not touch are kept, so rerunning part of a
    folder keeps the rest, and so are the rows of the outputs it skips. The
    summary holds one row per file whenever it is read: a file's new row
    replaces its earlier one (the file is rewritten whole, atomically), so a
    redo killed midway or a failed redo never leaves two rows of one file. A
    kept output of ours whose objects table is missing gets it measured now
    (:mod:`.objects_kept`), as kept outputs get their missing QC pictures.
    Their messages name the option as the caller offers it (``overwrite_said``:
    ``--overwrite`` on the command line), in the summary as on screen.
    ``progress(job, done, total)`` hears how far each file segmented on this
    machine is (from worker threads; a cluster's files are not followed).
    """
    made = not Path(outdir).exists()
    outdir = prepare_output_folder(outdir)
    done = False
    try:
        with folder_lock(outdir):  # a second run into this folder is refused: it would drop this one's summary rows
            for item in _iter_locked(jobs, outdir, options, overwrite=overwrite, scheduler=scheduler, cancel=cancel,
                                     overwrite_said=overwrite_said, progress=progress):
                done = True
                yield item
    except SchedulerError:
        if made and not done:
            _remove_unused(outdir)  # a cluster that could not be reached: no empty folder left behind
        raise


def _remove_unused(outdir: Path) -> None:
    """Remove an output folder this run made when it holds only the empty summary and QC page it wrote."""
    ours = {SUMMARY_NAME, QC_FOLDER, f"{QC_FOLDER}/{INDEX_NAME}"}
    try:
        found = {p.relative_to(outdir).as_posix() for p in outdir.rglob("*")}
        if found <= ours and not read_summary(outdir):
            shutil.rmtree(outdir)
    except OSError:
        pass  # left as it is: an empty summary costs nothing


def _iter_locked(jobs: list[Job], outdir: Path, options: RunOptions, *, overwrite: bool, scheduler: str | None,
                 cancel: Callable[[], bool] | None, overwrite_said: str,
                 progress: FileProgress | None) -> Iterator[tuple[Job, FileResult]]:
    """:func:`iter_jobs` once the output folder is checked and this run holds it."""
    clean_partials([outdir, *(job.target.parent for job in jobs)])
    earlier = read_summary(outdir)
    previous = {r.output: r for r in earlier}
    key = settings_key(options)
    results = plan_skips(jobs, previous, options, overwrite=overwrite, key=key)
    planned = {(_reuse_labels(job, options) if overwrite else job): job for job in jobs if job not in results}
    todo = list(planned)  # the jobs as run; results are reported under the jobs as found (``planned``)
    resumed = {job for job, result in results.items() if result.message != NOT_OURS}
    results = {job: replace(result, message=name_overwrite(result.message, overwrite_said))
               for job, result in results.items()}
    tables: dict[Job, ObjectsOutcome] = {}  # kept outputs whose missing objects table this run measured
    redone: set[str] = set()  # outputs whose earlier row a failed redo of the same file replaces
    written: set = set()  # the keys of the rows in the summary file now (see row_keys)
    ending = f"_{output_kind(options)}"  # this run's outputs: a class run's rows never replace the objects' rows

    def row(job: Job) -> FileResult:  # a skipped output of ours keeps the row of the run that made it
        if job not in resumed:
            return results[job]
        kept = kept_row(results[job], previous)
        return with_table(kept, tables[job]) if job in tables and kept is not results[job] else kept

    def rows() -> list[FileResult]:
        return merged_rows(earlier, [row(j) for j in jobs if j in results], touched=redone, ending=ending)

    def write_all() -> None:
        current = rows()
        write_summary(current, outdir)
        written.clear()
        written.update(k for r in current for k in row_keys(r, ending))

    def publish(job: Job) -> None:
        """Its row, at once: one row per file whenever the summary is read (the latest outcome wins)."""
        new = row(job)
        if claimed_keys(new, ending) & written or str(job.target) in redone & written:
            write_all()  # it replaces a row: the whole file, atomically
        else:
            append_row(new, outdir)  # a row of its own: cheaper than rewriting a long summary per file
            written.update(row_keys(new, ending))

    def record(ran: Job, result: FileResult) -> Job:  # a killed or stopped run keeps the rows of what finished
        job = planned.get(ran, ran)
        results[job] = replace(result, settings=key) if result.status == "ok" else result
        if result.status == "failed" and _made_from(job):
            redone.add(str(job.target))  # its labels' earlier row no longer describes this file's outcome
        publish(job)
        return job

    def stopped() -> bool:
        return cancel is not None and cancel()

    write_all()
    _qc_page(jobs, outdir, rows())  # now too: its page marks the qc folder as pictures, even if the run is killed
    try:
        for job in jobs:
            if job in results:
                if job in resumed and not stopped() and (table := measure_kept_output(job)) is not None:
                    tables[job] = table  # a finished output without its objects table (a killed run, a full disk)
                    results[job] = with_table(results[job], table)
                    publish(job)
                yield job, results[job]
        if todo and scheduler:
            from .distributed import iter_distributed  # dask.distributed is slow to import: only for cluster runs

            stream = iter_distributed(todo, options, scheduler, cancel=cancel, finished_late=record)
        elif todo:
            heard = None if progress is None else (
                lambda ran, done, total: progress(planned.get(ran, ran), done, total))
            stream = iter_local(todo, cached_model(options.model), options, cancel=cancel, finished_late=record,
                                progress=heard)
        else:
            stream = iter(())
        for ran, result in stream:
            job = record(ran, result)
            yield job, results[job]
        for job in resumed:  # finished outputs without a picture (made before QC pictures were asked): drawn now
            if job.qc is not None and not job.qc.exists() and not stopped():
                draw_kept_picture(job)
    finally:
        write_summary(rows(), outdir)
        _qc_page(jobs, outdir, rows())


def _made_from(job: Job) -> bool:
    """Whether ``job``'s existing output holds this very file's labels (its provenance says so)."""
    return holds_labels_of(output_provenance(job.target) if job.target.exists() else None, job) is True


def _qc_page(jobs: list[Job], outdir: Path, rows: list[FileResult]) -> None:
    """The page of every picture, this run's and kept ones, when the run draws them."""
    if any(job.qc is not None for job in jobs):
        try:
            write_qc_index(outdir, rows)
        except OSError:
            pass  # a page that cannot be written costs no result: the labels, tables and summary are there


def plan_skips(jobs: list[Job], previous: dict[str, FileResult], options: RunOptions, *,
               overwrite: bool, key: str = "") -> dict[Job, FileResult]:
    """The rows of jobs not to run: outputs that exist (unless ``overwrite``) and files unet-seg did not write.

    Whether an output is ours, and with which settings it was made, is read
    from its provenance (:mod:`.existing`). A file without one is kept even
    with ``overwrite``: it is the user's (a hand-made ``<stem>_labels.tif``).
    ``key`` (this run's :func:`settings_key`) goes into the row of an output whose own row was never written.
    """
    skips: dict[Job, FileResult] = {}
    current = None
    for job in jobs:
        if not job.target.exists():
            continue
        record = output_provenance(job.target)
        if record is None:
            skips[job] = kept_result(job)
        elif not overwrite and _cells_missing(job, options, record):
            continue  # a run stopped between the labels and their cells: made again, the same labels and the cells
        elif not overwrite:
            current = current or RunSettings.of(options)
            made_from = record.get("input") if isinstance(record.get("input"), str) else None
            counted = None if str(job.target) in previous else counted_output(job.target, record)
            skips[job] = skipped_result(job, previous, current.changes_since(record), made_from=made_from,
                                        counted=counted, settings=key)
    return skips


def _reuse_labels(job: Job, options: RunOptions) -> Job:
    """A job whose labels were made with this run's settings but other cell settings: only its cells are redone."""
    if options.cells_channel is None or job.target.suffix.lower() not in (".tif", ".tiff"):
        return job
    record = output_provenance(job.target)
    changes = RunSettings.of(options).changes_since(record) if record is not None else None
    if changes and all(change.startswith("cells: ") for change in changes):
        return replace(job, cells_only=True)
    return job


def _cells_missing(job: Job, options: RunOptions, record: dict) -> bool:
    """Cells asked, the labels made with these very settings, but their cells file is not there."""
    if options.cells_channel is None or cells_path(job.target).exists() or job.target.suffix.lower() == ".zarr":
        return False
    return not RunSettings.of(options).changes_since(record)


__all__ = ["iter_jobs", "run_batch", "run_jobs"]
