"""The stem of an image or labels file name: one rule for every name an output derives from another.

Only the suffixes of image files are taken off (``.ome.zarr``, ``.tif``...):
a dot inside a name (``well.1.tif``, ``2023.05.01_A.tif``) is part of it,
so two files never map to one output name.
"""

from __future__ import annotations

IMAGE_FILE_SUFFIXES = (".ome.zarr", ".ome.tiff", ".ome.tif", ".zarr", ".tiff", ".tif", ".png", ".jpeg", ".jpg")


def file_stem(name: str) -> str:
    """``well.1_labels.ome.tif`` -> ``well.1_labels``; a name with no image suffix loses only its last one."""
    lower = name.lower()
    for suffix in IMAGE_FILE_SUFFIXES:
        if lower.endswith(suffix):
            return name[: -len(suffix)]
    stem, dot, _ = name.rpartition(".")
    return stem if dot and stem else name
