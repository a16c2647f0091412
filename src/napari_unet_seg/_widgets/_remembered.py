"""Choices a dock keeps from one napari session to the next: a lab runs the same batch folders and the same
training budget day after day, and typed them again at every start (newcomer trial).

Kept in one small JSON file beside the model folder, per dock; written when a
run starts (the choices that ran), read when a dock opens. A folder that is
gone is not offered again. Nothing here decides which model is used: that is
the model in use's job (:mod:`._model_in_use`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..core.model.registry import user_model_dir

FILE_NAME = "dock_choices.json"


def _path() -> Path:
    return user_model_dir().parent / FILE_NAME


def recall(dock: str) -> dict[str, Any]:
    """The choices ``dock`` made at its last run ({} when none, or the file cannot be read)."""
    try:
        every = json.loads(_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    kept = every.get(dock) if isinstance(every, dict) else None
    return kept if isinstance(kept, dict) else {}


def remember(dock: str, choices: dict[str, Any]) -> None:
    """Keep ``choices`` (JSON-ready) as ``dock``'s; a file that cannot be written costs only the memory."""
    path = _path()
    try:
        every = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except (OSError, ValueError):
        every = {}
    if not isinstance(every, dict):
        every = {}
    every[dock] = choices
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.partial")
        temporary.write_text(json.dumps(every, indent=1), encoding="utf-8")
        temporary.replace(path)
    except OSError:
        pass
