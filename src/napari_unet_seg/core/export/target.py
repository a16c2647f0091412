"""Where an export goes: never over an existing file unless asked, and into a folder that can be written."""

from __future__ import annotations

import os
from pathlib import Path

from ..common.atomic import check_writable_folder
from .stamp import NAMESPACE


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
    if path.is_dir() and not is_our_export(path):  # a folder is replaced whole: never one of the user's own
        raise FileExistsError(f"{path} is a folder napari-unet-seg did not export (the user's own store?): it is "
                              "kept, even with overwrite; choose another name")
    check_writable_folder(path.parent if str(path.parent) else ".")
    return path


EXPORT_MARK = {NAMESPACE: {"export": "ome-zarr"}}  # in an OME-Zarr export's labels group: ours to replace


def is_our_export(folder: Path) -> bool:
    """Whether ``folder`` is an OME-Zarr this package exported (its mark, or the provenance an earlier version
    put in its labels group)."""
    for attrs in (folder / ".zattrs", folder / "zarr.json", folder / "labels" / ".zattrs"):
        try:
            text = attrs.read_text(encoding="utf-8")
        except OSError:
            continue
        if f'"{NAMESPACE}"' in text:
            return True
    try:
        return any(f'"{NAMESPACE}"' in (group / ".zattrs").read_text(encoding="utf-8")
                   for group in (folder / "labels").iterdir() if (group / ".zattrs").is_file())
    except OSError:
        return False


# what each format's file is called: a ROI set is a zip, QuPath reads .geojson (and .json), OME-Zarr is a zarr folder
FORMAT_SUFFIXES = {"imagej": (".zip",), "geojson": (".geojson", ".json"), "ome-zarr": (".ome.zarr", ".zarr")}
FORMAT_NAMES = {"imagej": "a ROI set (.zip)", "geojson": "GeoJSON (.geojson)",
                "ome-zarr": "an OME-Zarr folder (.ome.zarr)"}


def has_format_suffix(path: str | os.PathLike, fmt: str) -> bool:
    """Whether ``path``'s name ends as a ``fmt`` file's does (any case)."""
    return Path(path).name.lower().endswith(FORMAT_SUFFIXES[fmt])


def with_format_suffix(path: str | os.PathLike, fmt: str) -> Path:
    """``path``, with the format's usual suffix added when its name lacks one (a save dialog's bare "cells").

    A file named otherwise is opened by no tool as that format: Fiji reads a
    ROI set named ``cells`` as nothing at all.
    """
    path = Path(path)
    return path if has_format_suffix(path, fmt) else path.with_name(path.name + FORMAT_SUFFIXES[fmt][0])

