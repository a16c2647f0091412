"""Error text for people: one line, never a traceback."""

from __future__ import annotations

import re

# the core's word for the option as a word in a sentence: not "overwritten", "--overwrite" or a path's ".../overwrite/"
_OVERWRITE_WORD = re.compile(r"(?<=[\s(])overwrite(?=[\s);,:]|\.?$|\.\s)")


def first_line(exc: BaseException, limit: int | None = None) -> str:
    """The first line of an exception's message (its type's name when it has none), at most ``limit`` characters."""
    lines = str(exc).strip().splitlines()
    line = lines[0] if lines else type(exc).__name__
    return line[:limit] if limit else line


def name_overwrite(message: str, spelling: str) -> str:
    """A core message with its option "overwrite" as the caller's interface spells it.

    The core serves the command line (``--overwrite``) and the widgets (a
    "redo finished files" tick box) alike, so it cannot know the spelling.
    """
    return _OVERWRITE_WORD.sub(spelling, message)
