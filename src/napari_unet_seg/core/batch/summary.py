"""``summary.csv``: one row per file of a batch, the record a rerun resumes from."""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Iterable
from dataclasses import asdict, fields
from pathlib import Path

from ..common.atomic import atomic_path, remove
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


def append_row(result: FileResult, outdir: str | os.PathLike) -> None:
    """Add one row as a file finishes (the run's end rewrites the whole summary, atomically)."""
    with open(Path(outdir) / SUMMARY_NAME, "a", newline="", encoding="utf-8") as f:
        csv.DictWriter(f, fieldnames=[fld.name for fld in fields(FileResult)]).writerow(asdict(result))


def merged_rows(previous: list[FileResult], current: list[FileResult]) -> list[FileResult]:
    """Earlier rows of other outputs, then this run's rows: a rerun on part of a folder keeps the rest."""
    mine = {r.output or r.file for r in current} | {r.file for r in current}
    return [r for r in previous if (r.output or r.file) not in mine and r.file not in mine] + current


PARTIAL = re.compile(r"^\..+\.(\d+)\.partial$")  # our temporary names: .<name>.<pid>.partial


def clean_partials(folders: Iterable[str | os.PathLike]) -> list[Path]:
    """Remove what a killed run left in ``folders`` (``.<name>.<pid>.partial`` of a process now gone).

    Only the folders the batch writes to are looked at (not inside zarr
    stores), and only names of exactly that form: nothing else is touched.
    """
    removed = []
    for folder in {Path(f) for f in folders}:
        if not folder.is_dir():
            continue
        for path in folder.iterdir():
            match = PARTIAL.match(path.name)
            if match and not _alive(int(match.group(1))):
                remove(path)
                removed.append(path)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_summary(outdir: str | os.PathLike) -> list[FileResult]:
    """Rows of an earlier run's ``summary.csv``, the last row of each output winning (empty if unreadable).

    A row cut short by a killed run is skipped, not the whole file.
    """
    path = Path(outdir) / SUMMARY_NAME
    rows: dict[str, FileResult] = {}
    try:
        with open(path, newline="", encoding="utf-8") as f:
            for row in csv.DictReader(f):
                if None in row.values() or None in row:  # cut short, or spilling over: not a whole row
                    continue
                try:
                    result = FileResult(row["file"], row["status"], int(row["objects"] or 0),
                                        float(row["mean_area"] or 0), float(row["seconds"] or 0), row["message"],
                                        row["output"], row.get("settings") or "")
                except (KeyError, TypeError, ValueError):
                    continue
                rows.pop(result.output or result.file, None)
                rows[result.output or result.file] = result
    except (OSError, UnicodeDecodeError, csv.Error):
        return []
    return list(rows.values())
