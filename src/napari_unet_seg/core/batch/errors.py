"""Batch errors a caller reports without importing dask.distributed (slow to import)."""

from __future__ import annotations


class SchedulerError(RuntimeError):
    """The scheduler cannot be reached or used; the message is one clear line."""


class OutputFolderError(OSError):
    """The output folder cannot be used (a file of that name, read-only, full); the message is one clean line.

    An ``OSError``, so callers that report any ``OSError`` in one line keep
    doing so; built from the message alone, so it never reads "[Errno None] ...".
    """


SHUTDOWN = "cannot schedule new futures after"  # concurrent.futures: "... interpreter shutdown", "... shutdown"


def stopped_by_shutdown(exc: BaseException) -> bool:
    """Whether ``exc`` says the work was stopped, not that the file is bad: the interpreter is shutting down
    (napari closed mid-batch) or the executor the work ran on was shut down.

    Such a file is not finished, as a cancelled one is: it gets no row (no "failed"), and the run stops.
    """
    return isinstance(exc, RuntimeError) and str(exc).startswith(SHUTDOWN)
