"""Running a batch on this machine: a reader thread prefetches while workers segment and write."""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from functools import partial

from ..inference.options import RunOptions
from ..model.modelfile import Model
from .errors import stopped_by_shutdown
from .files import FileResult, process_file, read_timed
from .jobs import Job


def local_workers() -> int:
    """Files processed at once: two overlap one file's post-processing and writing with the next one's network."""
    return 2 if (os.cpu_count() or 1) > 1 else 1


FileProgress = Callable[[Job, int, int], None]  # (file, windows done, windows in all), from the worker threads


def _after_read(job: Job, read: Future, model: Model, options: RunOptions,
                cancel: Callable[[], bool] | None, progress: FileProgress | None) -> FileResult | None:
    return process_file(job, read.result(), model, options, cancel=cancel,
                        progress=None if progress is None else partial(progress, job))


def iter_local(jobs: list[Job], model: Model, options: RunOptions, *, cancel: Callable[[], bool] | None = None,
               workers: int | None = None,
               finished_late: Callable[[Job, FileResult], None] | None = None,
               progress: FileProgress | None = None) -> Iterator[tuple[Job, FileResult]]:
    """Segment ``jobs`` on this machine; yields results as files finish.

    A reader thread loads the next file while ``workers`` threads segment and
    write: one file's post-processing and writing overlap the next file's
    network, which runs one file at a time (:func:`~..model.lock.exclusive`).
    At most ``workers + 1`` images are in memory at once. When the caller
    stops early (Ctrl-C, a closed generator), files being segmented stop at
    their network's next layer and write nothing, so the program exits at once;
    a file already past its network is written whole, and its result, which
    can no longer be yielded, goes to ``finished_late`` (so a Ctrl-C never
    leaves a finished output without its summary row). When the interpreter
    shuts down (napari closed mid-batch), files not yet started are not
    started and the run ends as a cancelled one does. ``progress`` hears how
    far each file's network is, from the threads that segment them.
    """
    workers = workers or local_workers()
    queue = deque(jobs)
    running: dict[Future, Job] = {}
    stopping = threading.Event()

    def stop() -> bool:
        return stopping.is_set() or (cancel is not None and cancel())

    with ThreadPoolExecutor(1, "unet-seg-read") as reader, ThreadPoolExecutor(workers, "unet-seg") as pool:
        try:
            while queue or running:
                stopped = stop()
                while queue and not stopped and len(running) <= workers:
                    job, read = queue[0], None
                    try:
                        read = reader.submit(read_timed, job.source)
                        started = pool.submit(_after_read, job, read, model, options, stop, progress)
                    except RuntimeError as exc:  # the interpreter is shutting down (napari closed): stop here
                        if not stopped_by_shutdown(exc):
                            raise
                        if read is not None:
                            read.cancel()
                        stopping.set()
                        break
                    running[started] = queue.popleft()
                if not running:
                    break
                done, _ = wait(list(running), timeout=0.5, return_when=FIRST_COMPLETED)
                for future in done:
                    result = future.result()
                    job = running.pop(future)
                    if result is not None:
                        yield job, result
        finally:
            stopping.set()  # a no-op after a complete run; otherwise running files stop at their next check
            for future in running:
                future.cancel()
            _report_late(running, finished_late)


def _report_late(running: dict[Future, Job], finished_late: Callable[[Job, FileResult], None] | None) -> None:
    """Wait for the files still running when the caller stopped, and pass on those that were written."""
    if finished_late is None:
        return
    for future, job in running.items():
        if future.cancelled():
            continue  # never started: nothing written
        try:
            result = future.result()  # process_file reports its errors as results; None: stopped, nothing written
        except Exception:  # noqa: BLE001 - a file that ended in an error has no output to give a row
            continue
        if result is not None:
            finished_late(job, result)
