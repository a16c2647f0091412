"""Objects tables as CSV: ``# key: value`` comment lines, a header row, one row per object.

The first comment line marks the file as ours, so a batch replaces its own
earlier tables but never a user's file of the same name. Spreadsheets and
``pandas.read_csv(path, comment="#")`` read them as they are.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..common.atomic import atomic_path
from .measurements import ObjectTable

MARKER = "# table: napari-unet-seg objects"


def objects_csv_path(labels_path: str | os.PathLike) -> Path:
    """``<stem>_objects.csv`` beside a labels output (``img_labels.tif`` -> ``img_objects.csv``)."""
    path = Path(labels_path)
    name = path.name
    for suffix in (".ome.zarr", ".ome.tiff", ".ome.tif", ".zarr", ".tiff", ".tif", ".png"):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
            break
    else:
        name = path.stem
    name = name.removesuffix("_labels")
    return path.with_name(f"{name}_objects.csv")


def write_objects_csv(path: str | os.PathLike, table: ObjectTable,
                      header_comments: Mapping[str, Any] | None = None) -> Path:
    """Write ``table`` atomically, preceded by the marker and one ``# key: value`` line per comment.

    Floats are written in full (they read back exactly); a value's line
    breaks become spaces, so each comment stays one line.
    """
    path = Path(path)
    columns = list(table)
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        f.write(MARKER + "\n")
        f.writelines(f"# {_one_line(key)}: {_one_line(value)}\n" for key, value in (header_comments or {}).items())
        writer = csv.writer(f)
        writer.writerow(columns)
        writer.writerows(zip(*(np.asarray(table[c]).tolist() for c in columns)))
    return path


def read_objects_csv(path: str | os.PathLike) -> tuple[ObjectTable, dict[str, str]]:
    """A table written by :func:`write_objects_csv` and its header comments (the marker left out)."""
    comments: dict[str, str] = {}
    with open(path, newline="", encoding="utf-8") as f:
        lines = f.read().splitlines()
    body = 0
    while body < len(lines) and lines[body].startswith("#"):
        if lines[body] != MARKER:
            key, _, value = lines[body][1:].partition(":")
            comments[key.strip()] = value.strip()
        body += 1
    rows = list(csv.reader(lines[body:]))
    if not rows:
        return {}, comments
    columns = rows[0]
    values = list(zip(*rows[1:])) if len(rows) > 1 else [() for _ in columns]
    return {c: _column(v) for c, v in zip(columns, values)}, comments


def is_objects_csv(path: str | os.PathLike) -> bool:
    """True when ``path`` is a table this package wrote (its first line is the marker)."""
    try:
        with open(path, encoding="utf-8") as f:
            return f.readline().rstrip("\r\n") == MARKER
    except (OSError, UnicodeDecodeError):
        return False


def _one_line(value: Any) -> str:
    return " ".join(str(value).split())


def _column(values: tuple[str, ...]) -> np.ndarray:
    for kind in (np.int64, np.float64):
        try:
            return np.array(values, dtype=kind) if values else np.zeros(0, np.float64)
        except ValueError:
            continue
    return np.array(values, dtype=object)
