"""Batch errors a caller reports without importing dask.distributed (slow to import)."""

from __future__ import annotations


class SchedulerError(RuntimeError):
    """The scheduler cannot be reached or used; the message is one clear line."""
