"""Mistakes in a command line: printed by ``unet-seg`` as one line on stderr with exit code 2, never a traceback."""

from __future__ import annotations

import math


class UserError(Exception):
    """A mistake in the command line or its inputs: printed as one line."""


def require_positive(value: float | None, name: str) -> None:
    """An option that must be a positive, finite number when given (nan and inf are mistakes too)."""
    if value is not None and not (math.isfinite(value) and value > 0):
        raise UserError(f"{name} must be a positive number, not {value:g}")
