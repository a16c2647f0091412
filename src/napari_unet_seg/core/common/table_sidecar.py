"""The JSON beside an objects table (``img_objects.json`` for ``img_objects.csv``): what made the table.

Kept apart from the table so the CSV stays plain (``pandas.read_csv`` reads it
as it is); its presence marks the table as this package's. Here, below both
the measurements that write it and the provenance reader that reads it.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

NAMESPACE = "napari_unet_seg"
KIND = "objects table"


def sidecar_path(path: str | os.PathLike) -> Path:
    """The JSON beside a table (``img_objects.csv`` -> ``img_objects.json``): what the table was made from."""
    return Path(path).with_suffix(".json")


def table_comments(path: str | os.PathLike) -> dict[str, str]:
    """The comments the JSON beside a table of ours holds ({} when there is none of ours)."""
    record = read_sidecar(sidecar_path(path))
    if record is None or record.get("table") != Path(path).name:
        return {}
    comments = record.get("comments")
    return {str(k): str(v) for k, v in comments.items()} if isinstance(comments, Mapping) else {}


def read_sidecar(path: Path) -> dict[str, Any] | None:
    """The record of a JSON this package wrote beside a table, else None (absent, unreadable or the user's)."""
    try:
        with open(path, encoding="utf-8") as f:
            held = json.load(f)
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    record = held.get(NAMESPACE) if isinstance(held, dict) else None
    return record if isinstance(record, dict) and record.get("kind") == KIND else None


def table_sha256(path: str | os.PathLike) -> str | None:
    """The SHA-256 of a table file as written (None when it cannot be read)."""
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return None
