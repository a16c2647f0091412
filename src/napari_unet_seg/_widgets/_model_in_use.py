"""The model Train last put in use, per viewer: a Segment or Batch dock opened afterwards starts on it too.

Train says "Segment uses it" when a round is worth keeping (or when the user
goes back to a model in the history). Docks open at that moment are switched
at once; this remembers the choice for the docks opened later in the same
viewer, so the words stay true whichever dock was open.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from weakref import WeakKeyDictionary

_IN_USE: WeakKeyDictionary[Any, Path] = WeakKeyDictionary()


def set_model_in_use(viewer: Any, path: str | Path) -> None:
    """Remember ``path`` as the model docks of ``viewer`` should start on."""
    _IN_USE[viewer] = Path(path)


def model_in_use(viewer: Any) -> Path | None:
    """The model Train last put in use in ``viewer``, while its file is still there; None otherwise."""
    path = _IN_USE.get(viewer)
    return path if path is not None and path.is_file() else None
