"""Objects tables as plain CSV (a header row, one row per object), what they were made from beside them.

``pandas.read_csv(path)``, R and spreadsheets read the table as it is. What
made it (the labels, the image, the pixel size, the provenance) goes into a
JSON file of the same name beside it (``img_objects.json``), which also marks
the table as ours: a batch replaces its own earlier tables but never a
user's file of the same name. Tables of earlier versions, whose ``# key:
value`` lines came first, are still read and recognised.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..common.atomic import atomic_path
from ..common.file_names import file_stem
from ..common.table_sidecar import KIND, NAMESPACE, read_sidecar, sidecar_path, table_comments, table_sha256
from .measurements import ObjectTable

MARKER = "# table: napari-unet-seg objects"  # the first line of an earlier version's table


def objects_csv_path(labels_path: str | os.PathLike) -> Path:
    """``<stem>_objects.csv`` beside a labels output (``img_labels.tif`` -> ``img_objects.csv``)."""
    path = Path(labels_path)
    name = file_stem(path.name).removesuffix("_labels")
    return path.with_name(f"{name}_objects.csv")


def write_objects_csv(path: str | os.PathLike, table: ObjectTable,
                      header_comments: Mapping[str, Any] | None = None) -> Path:
    """Write ``table`` as a plain CSV, atomically, with ``header_comments`` (key: value) in the JSON beside it.

    Floats are written in full (they read back exactly). The JSON holds the
    table's SHA-256: a table edited since (in Excel, pandas) is the user's,
    never replaced by a batch. A JSON of that name that unet-seg did not
    write is the user's too: it is kept, and the table is written alone.
    """
    path = Path(path)
    columns = list(table)
    side = sidecar_path(path)
    ours = not side.exists() or read_sidecar(side) is not None
    earlier = table_sha256(path) if ours and path.is_file() and is_objects_csv(path) else None
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(columns)
            writer.writerows(zip(*(np.asarray(table[c]).tolist() for c in columns)))
        if ours:  # the JSON before the table: a run killed between the two leaves a table still shown to be ours
            _write_sidecar(side, path.name, table_sha256(tmp), earlier, header_comments)
    return path


def _write_sidecar(side: Path, table_name: str, sha256: str | None, replaces: str | None,
                   header_comments: Mapping[str, Any] | None) -> None:
    """The JSON beside a table: its name, SHA-256 and comments; ``replaces`` is the SHA-256 of the table of ours
    it replaces, which stays ours until the new one is in place."""
    comments = {str(key): str(value) for key, value in (header_comments or {}).items()}
    record: dict[str, Any] = {"kind": KIND, "table": table_name, "sha256": sha256, "comments": comments}
    if replaces is not None and replaces != sha256:
        record["replaces"] = replaces
    try:  # also as JSON, where `unet-seg provenance` and other tools look for a record
        record["provenance"] = json.loads(comments["provenance"])
    except (KeyError, ValueError):
        pass
    with atomic_path(side) as tmp:
        Path(tmp).write_text(json.dumps({NAMESPACE: record}, indent=1, ensure_ascii=False), encoding="utf-8")


def read_objects_csv(path: str | os.PathLike) -> tuple[ObjectTable, dict[str, str]]:
    """A table written by :func:`write_objects_csv` and its comments (from the JSON beside it, or an earlier
    version's ``#`` lines)."""
    comments: dict[str, str] = dict(table_comments(path))
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
    """True when ``path`` is a table this package wrote: the JSON beside it says so (or, from an earlier
    version, its first line is the marker)."""
    path = Path(path)
    record = read_sidecar(sidecar_path(path))
    if record is not None and record.get("table") == path.name and path.is_file():
        # edited since: the user's now; "replaces": the table a run killed mid-write left, still ours
        return table_sha256(path) in {record.get("sha256"), record.get("replaces")} - {None}
    try:
        with open(path, encoding="utf-8") as f:
            return f.readline().rstrip("\r\n") == MARKER
    except (OSError, UnicodeDecodeError):
        return False


def _column(values: tuple[str, ...]) -> np.ndarray:
    for kind in (np.int64, np.float64):
        try:
            return np.array(values, dtype=kind) if values else np.zeros(0, np.float64)
        except ValueError:
            continue
    return np.array(values, dtype=object)
