"""Mistakes in a command line: printed by ``unet-seg`` as one line on stderr with exit code 2, never a traceback."""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from pathlib import Path

from ..core.common.errors import first_line, name_overwrite


class UserError(Exception):
    """A mistake in the command line or its inputs: printed as one line."""


def require_positive(value: float | None, name: str) -> None:
    """An option that must be a positive, finite number when given (nan and inf are mistakes too)."""
    if value is not None and not (math.isfinite(value) and value > 0):
        raise UserError(f"{name} must be a positive number, not {value:g}")


def cli_wording(message: str) -> str:
    """A core message as the command line says it: the core names the option "overwrite", the flag is ``--overwrite``;
    "choose the nuclear channel (its number, from 0)" is ``--channel K`` here."""
    return name_overwrite(message, "--overwrite").replace("(its number, from 0)", "with --channel K (from 0)")


def refuse_an_input(output: Path, inputs: Iterable[str | os.PathLike | None], flag: str = "-o") -> None:
    """:class:`UserError` when ``output`` is one of ``inputs``: written there, the input would be lost."""
    if output.resolve() in {Path(p).resolve() for p in inputs if p}:
        raise UserError(f"{output} is one of the inputs: give another name with {flag}")


def os_error_line(exc: OSError) -> str:
    """An ``OSError`` in one line without Python's "[Errno n]" prefix: its message, after the file it names."""
    if not exc.strerror:  # made from a message alone: str() is that message
        return first_line(exc)
    files = " -> ".join(str(f) for f in (exc.filename, exc.filename2) if f is not None)
    text = f"{files}: {exc.strerror}" if files else str(exc.strerror)
    return text.strip().splitlines()[0]
