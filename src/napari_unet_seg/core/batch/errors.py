"""Batch errors a caller reports without importing dask.distributed (slow to import)."""

from __future__ import annotations


class SchedulerError(RuntimeError):
    """The scheduler cannot be reached or used; the message is one clear line."""


class OutputFolderError(OSError):
    """The output folder cannot be used (a file of that name, read-only, full); the message is one clean line.

    An ``OSError``, so callers that report any ``OSError`` in one line keep
    doing so; built from the message alone, so it never reads "[Errno None] ...".
    """
