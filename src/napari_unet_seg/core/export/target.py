"""Where an export goes: never over an existing file unless asked, and into a folder that can be written."""

from __future__ import annotations

import os
from pathlib import Path

from ..common.atomic import check_writable_folder


def prepare_target(path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """``path`` as a Path, after checking that it may be (over)written, before any work starts.

    Raises ``FileExistsError`` for an existing ``path`` unless ``overwrite``,
    and ``OSError`` naming the folder when its folder cannot be written; both
    in one line.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} already exists (overwrite to replace it)")
    if path.is_dir() != path.name.lower().endswith(".zarr") and path.exists():
        kind = "folder" if path.is_dir() else "file"
        raise FileExistsError(f"{path} is a {kind}; choose another name")
    check_writable_folder(path.parent if str(path.parent) else ".")
    return path
