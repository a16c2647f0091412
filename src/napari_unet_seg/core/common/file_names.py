"""The stem of an image or labels file name: one rule for every name an output derives from another.

Only the suffixes of image files are taken off (``.ome.zarr``, ``.tif``...):
a dot inside a name (``well.1.tif``, ``2023.05.01_A.tif``) is part of it,
so two files never map to one output name.
"""

from __future__ import annotations

import os
from pathlib import Path

IMAGE_FILE_SUFFIXES = (".ome.zarr", ".ome.tiff", ".ome.tif", ".zarr", ".tiff", ".tif", ".png", ".jpeg", ".jpg")


def file_stem(name: str) -> str:
    """``well.1_labels.ome.tif`` -> ``well.1_labels``; a name with no image suffix loses only its last one."""
    lower = name.lower()
    for suffix in IMAGE_FILE_SUFFIXES:
        if lower.endswith(suffix):
            return name[: -len(suffix)]
    stem, dot, _ = name.rpartition(".")
    return stem if dot and stem else name


def resolved(path: Path) -> Path:
    """``path`` with its links resolved; a link that leads back to itself (no file at its end) as named, absolute.

    ``Path.resolve`` raises on such a loop: one in an input folder stopped the whole batch with a traceback.
    """
    try:
        return path.resolve()
    except (RuntimeError, OSError):
        return Path(os.path.abspath(path))
