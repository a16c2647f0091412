"""The model in use: the one Train last put in use, which Segment, Batch and the next round start on.

Train says "Segment uses it" when a round is worth keeping (or when the user
goes back to a model in the history). Docks open at that moment are switched
at once; this remembers the choice for the docks opened later in the same
viewer, and in the project, so that napari started again tomorrow starts on
the model the loop had reached, not on the built-in one.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from weakref import WeakKeyDictionary

from napari.utils.notifications import show_info, show_warning

from ..core.training.project import Project, current_project_dir

_IN_USE: WeakKeyDictionary[Any, Path] = WeakKeyDictionary()
_SAID_GONE: set[Path] = set()  # each missing model in use is said once per session, not by every dock


def set_model_in_use(viewer: Any, path: str | Path, project_dir: str | os.PathLike | None = None) -> None:
    """Remember ``path`` as the model docks of ``viewer`` start on, and in the project (None: the one Train used
    last)."""
    _IN_USE[viewer] = Path(path)
    try:
        Project(project_dir or current_project_dir()).set_in_use(path)
    except (OSError, ValueError):  # an unwritable or damaged project: the viewer remembers it still
        pass


def model_in_use(viewer: Any, project_dir: str | os.PathLike | None = None) -> Path | None:
    """The model Train last put in use in ``viewer``, else the one the project (None: the one Train used last)
    last put in use, while its file is there; None otherwise (docks start on the built-in model)."""
    path = _IN_USE.get(viewer)
    if path is not None and path.is_file():
        return path
    try:
        project = Project(project_dir or current_project_dir())
        return project.in_use or _found_again(project)
    except (OSError, ValueError):
        return None


def _found_again(project: Project) -> Path | None:
    """The model in use whose file is gone, found again: renamed or moved in the model folder (its history rows
    and the project follow it), else the newest better model of the history (said once, either way)."""
    gone = project.in_use_recorded
    if gone is None or gone.is_file():
        return None
    moved, _ = project.locate_in_use()
    if moved is not None:
        show_info(f"The model in use, '{gone.stem}', is now '{moved.stem}' ({moved}): the docks start on it, and "
                  "its rows in Train's History follow it.")
        return moved
    earlier = project.latest_better()
    if earlier is not None and gone not in _SAID_GONE:
        _SAID_GONE.add(gone)
        show_warning(f"The model in use, '{gone.stem}', is gone ({gone} no longer exists): the docks start on "
                     f"'{earlier.stem}', the newest better model of this project's History, instead. Put it back, "
                     "or choose another model there.")
    return earlier


def say_if_gone(viewer: Any, fallback: str, project_dir: str | os.PathLike | None = None) -> None:
    """Warn (once) when the model in use was deleted, renamed or moved: a dock starting on ``fallback`` instead
    must not do so in silence, the next day least of all."""
    if model_in_use(viewer, project_dir) is not None:
        return
    path = _IN_USE.get(viewer)
    if path is None:
        try:
            path = Project(project_dir or current_project_dir()).in_use_recorded
        except (OSError, ValueError):
            return
    if path is None or path.is_file() or path in _SAID_GONE:
        return
    _SAID_GONE.add(path)
    show_warning(f"The model in use, '{path.stem}', is gone ({path} no longer exists): the docks start on "
                 f"'{fallback}' instead. Put it back, or choose another model in Train's History.")
