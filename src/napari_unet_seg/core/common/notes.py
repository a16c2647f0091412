"""Sentences for the user from deep inside a run (e.g. "the window was raised"), without a list passed down.

A run opens :func:`collecting_notes`; code anywhere below it, in the same
thread or task, calls :func:`add_note`. Outside a collector a note goes
nowhere, so low-level functions stay usable on their own. The pipeline puts
what it collected in ``SegmentResult.notes``, which the widget shows and the
CLI prints.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_NOTES: ContextVar[dict[Hashable, str] | None] = ContextVar("napari_unet_seg_notes", default=None)


@contextmanager
def collecting_notes() -> Iterator[dict[Hashable, str]]:
    """Collect the notes added inside the block (their texts are the dict's values, in order)."""
    notes: dict[Hashable, str] = {}
    token = _NOTES.set(notes)
    try:
        yield notes
    finally:
        _NOTES.reset(token)


def add_note(text: str, key: Hashable | None = None) -> None:
    """Tell the user ``text`` once per ``key`` (default: the text itself) in the current collector, if any."""
    notes = _NOTES.get()
    if notes is not None:
        notes.setdefault(text if key is None else key, text)
