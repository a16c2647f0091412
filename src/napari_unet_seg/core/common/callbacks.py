"""How long work reports progress and hears "cancel", without knowing who listens (napari, a CLI, a test).

Every slow core function takes ``progress(done, total)`` and ``cancel() -> bool``;
a true ``cancel()`` makes it raise :class:`Cancelled` at its next check.
"""

from __future__ import annotations

from collections.abc import Callable

ProgressCallback = Callable[[int, int], None]
CancelCallback = Callable[[], bool]


class Cancelled(Exception):
    """Raised when the user's cancel callback says stop."""


def raise_if_cancelled(cancel: CancelCallback | None) -> None:
    """The one cancel check: raise :class:`Cancelled` when ``cancel()`` says so."""
    if cancel is not None and cancel():
        raise Cancelled("cancelled")


def part_progress(progress: ProgressCallback | None, index: int, count: int) -> ProgressCallback | None:
    """Progress of part ``index`` of ``count`` equal parts (planes, blocks) as progress of the whole."""
    if progress is None:
        return None

    def report(done: int, total: int) -> None:
        progress(index * total + done, count * total)

    return report
