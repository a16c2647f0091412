"""``summary.csv``: one row per file of a batch, the record a rerun resumes from."""

from __future__ import annotations

import csv
import os
from dataclasses import asdict, fields
from pathlib import Path

from ..common.atomic import atomic_path
from .files import FileResult

SUMMARY_NAME = "summary.csv"


def write_summary(results: list[FileResult], outdir: str | os.PathLike) -> Path:
    """Write ``summary.csv`` atomically."""
    path = Path(outdir) / SUMMARY_NAME
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=[fld.name for fld in fields(FileResult)])
        writer.writeheader()
        for result in results:
            writer.writerow(asdict(result))
    return path


def read_summary(outdir: str | os.PathLike) -> list[FileResult]:
    """Rows of an earlier run's ``summary.csv`` (empty if missing or unreadable)."""
    path = Path(outdir) / SUMMARY_NAME
    try:
        with open(path, newline="", encoding="utf-8") as f:
            return [FileResult(row["file"], row["status"], int(row["objects"] or 0), float(row["mean_area"] or 0),
                               float(row["seconds"] or 0), row["message"], row["output"]) for row in csv.DictReader(f)]
    except (OSError, KeyError, ValueError):
        return []
