"""``summary.csv``: one row per file of a batch, the record a rerun resumes from.

Ours is recognised by its header row (every version's begins with the same
columns), as :mod:`..measure.table_csv` recognises our objects tables by
their first line. A ``summary.csv`` with another first line is the user's:
it is kept, and the batch writes ``summary-2.csv`` (the first free or ours)
instead. A rerun keeps the rows of the files it skips: they still describe
the outputs in the folder, marked as from an earlier run.
"""

from __future__ import annotations

import csv
import os
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, fields, replace
from pathlib import Path

from ..common.atomic import atomic_path, process_alive, remove
from ..common.errors import name_overwrite
from .files import NOT_OURS, FileResult
from .qc import is_class_output

SUMMARY_NAME = "summary.csv"
COLUMNS = [fld.name for fld in fields(FileResult)]
SIGNATURE = ("file", "status", "objects", "mean_area", "seconds", "message", "output")  # how every version's begins
EARLIER_RUN = "from an earlier run"  # the mark on the kept row of a file a rerun skipped
COUNTED = "counts read from the output"  # a skipped output's note when the run that made it left no row


def is_summary_csv(path: str | os.PathLike) -> bool:
    """True when ``path`` is a summary this package wrote: its first line is our header row."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            header = next(csv.reader([f.readline()]), [])
    except (OSError, UnicodeDecodeError, csv.Error):
        return False
    return tuple(header[:len(SIGNATURE)]) == SIGNATURE


def summary_path(outdir: str | os.PathLike) -> Path:
    """Where a batch into ``outdir`` keeps its summary: ``summary.csv``, unless one there is not ours.

    Then the first ``summary-N.csv`` (N = 2, 3...) that is free or ours, so
    reruns find the same file and the user's ``summary.csv`` is never replaced.
    """
    outdir = Path(outdir)
    path, n = outdir / SUMMARY_NAME, 1
    while path.exists() and not is_summary_csv(path):
        n += 1
        path = outdir / f"summary-{n}.csv"
    return path


def summary_note(outdir: str | os.PathLike) -> str:
    """One line for the user when the summary cannot be ``summary.csv`` (it is theirs), else ``""``."""
    path = summary_path(outdir)
    if path.name == SUMMARY_NAME:
        return ""
    return f"{Path(outdir) / SUMMARY_NAME} was not written by unet-seg: kept; this batch's summary is {path}"


def write_summary(results: list[FileResult], outdir: str | os.PathLike) -> Path:
    """Write the summary (see :func:`summary_path`) atomically."""
    path = summary_path(outdir)
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        for result in results:
            writer.writerow(csv_row(result))
    return path


NOT_OURS_START = NOT_OURS.split(" (")[0]  # the message as worded for the CLI or the dock


def csv_row(result: FileResult) -> dict[str, object]:
    """A summary row as written: the object count and mean area of a class map, of a file that failed and of a
    file of the user's that holds an output's name are left empty (not 0, which says "segmented, none found")."""
    row = asdict(result)
    if result.status == "failed" or (is_class_output(result.output) and not result.objects) \
            or result.message.startswith(NOT_OURS_START):
        row["objects"] = row["mean_area"] = ""
    return row


def append_row(result: FileResult, outdir: str | os.PathLike) -> None:
    """Add one row as a file finishes, when it replaces none (the run's end rewrites the whole summary,
    atomically)."""
    with open(summary_path(outdir), "a", newline="", encoding="utf-8") as f:
        csv.DictWriter(f, fieldnames=COLUMNS).writerow(csv_row(result))


def kept_row(result: FileResult, earlier: dict[str, FileResult]) -> FileResult:
    """The summary row of ``result``: for a file skipped because its output exists, the row of the run that made it.

    That row (status, counts, seconds) still describes the output in the
    folder, so a rerun keeps it, marked as from an earlier run, instead of a
    row of zeros. Other results are their own rows.
    """
    old = earlier.get(result.output)
    if result.status == "skipped" and old is None and COUNTED in result.message:
        # the run that made it was killed before its row: the output is a finished one, as its own row would say
        return replace(result, status="ok", message=f"{EARLIER_RUN}; {result.message}")
    if result.status != "skipped" or old is None or old.file != result.file or old.status != "ok":
        return result
    if old.message.startswith(EARLIER_RUN):
        return old
    return replace(old, message=f"{EARLIER_RUN}; {old.message}" if old.message else EARLIER_RUN)


def row_keys(result: FileResult, ending: str | None = None) -> set:
    """What a row is the row of: its output; without one (a failed file), its file, also with the kind of output
    (``_labels``, ``_classes``): its run's ``ending``, or None when read back. Two rows sharing a key describe one
    output: the later replaces the earlier (:func:`merged_rows`), while a class map's row and the objects' row of
    one image both stay. A file as given may name another image in another run (``in/x.tif`` typed elsewhere), so
    rows with outputs are told apart by their output alone."""
    if result.output:
        return {result.output}
    return {result.file, (result.file, ending)}


def claimed_keys(result: FileResult, ending: str | None) -> set:
    """The keys whose earlier rows a row of this run (whose outputs end in ``ending``) replaces: its own, and
    the failed rows of its file (they name no output)."""
    return row_keys(result, ending) | {result.file, (result.file, None), (result.file, ending)}


def merged_rows(previous: list[FileResult], current: list[FileResult], touched: Iterable[str] = (),
                ending: str | None = None) -> list[FileResult]:
    """Earlier rows of other outputs, then this run's rows: a rerun on part of a folder keeps the rest.

    ``ending`` is the kind of this run's outputs (``_labels``, ``_classes``).
    ``touched`` are outputs whose earlier rows this run's rows replace though
    they name no output (a failed redo of the file that made them).
    """
    mine = {k for r in current for k in claimed_keys(r, ending)} | set(touched)
    return [r for r in previous if not row_keys(r) & mine] + current


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
            if match and not process_alive(int(match.group(1))):
                remove(path)
                removed.append(path)
    return removed


def read_summary(outdir: str | os.PathLike) -> list[FileResult]:
    """Rows of earlier runs' summaries, the last row of each output winning (empty if none or unreadable).

    Every summary of ours in ``outdir`` is read, oldest first: one written
    as ``summary-2.csv`` beside a user's ``summary.csv`` still counts once
    theirs is gone. A row cut short by a killed run is skipped, not the whole file.
    """
    rows: dict[str, FileResult] = {}
    for path in _our_summaries(Path(outdir)):
        for result in _moved_with_the_folder(_rows(path), Path(outdir)):
            rows.pop(result.output or result.file, None)
            rows[result.output or result.file] = result
    return list(rows.values())


def _moved_with_the_folder(rows: list[FileResult], outdir: Path) -> list[FileResult]:
    """Rows of a results folder copied or moved elsewhere, their outputs found in ``outdir`` now.

    Outputs are recorded by absolute path. Those outside ``outdir`` are placed
    under it as they lay under the summary's old folder (the common folder of
    those outputs), where a file of that name is there; the others stay as
    they were (their rows then name outputs the rerun does not find).
    """
    here = outdir.resolve()  # as the jobs name their outputs
    away = {Path(r.output) for r in rows if r.output and here not in Path(r.output).parents}
    if not away:
        return rows
    try:
        old = Path(os.path.commonpath([str(p.parent) for p in away]))
    except ValueError:  # different drives
        return rows
    moved = []
    for row in rows:
        output = Path(row.output) if row.output else None
        if output is not None and output in away and old in output.parents:
            now = here / output.relative_to(old)
            if now.exists():
                row = replace(row, output=str(now))
        moved.append(row)
    return moved


def _our_summaries(outdir: Path) -> list[Path]:
    """``summary.csv`` and ``summary-N.csv`` files of ours in ``outdir``, oldest first (the current one last)."""
    current = summary_path(outdir)
    found = [p for p in outdir.glob("summary*.csv") if re.fullmatch(r"summary(-\d+)?\.csv", p.name)
             and p != current and is_summary_csv(p)]
    found.sort(key=lambda p: p.stat().st_mtime)
    return [*found, current] if current.exists() else found


def _rows(path: Path) -> list[FileResult]:
    """The whole rows of one summary file ([] if it cannot be read)."""
    out = []
    try:
        with open(path, newline="", encoding="utf-8") as f:
            for row in csv.DictReader(f):
                if None in row.values() or None in row:  # cut short, or spilling over: not a whole row
                    continue
                try:
                    out.append(FileResult(row["file"], row["status"], int(row["objects"] or 0),
                                          float(row["mean_area"] or 0), float(row["seconds"] or 0), row["message"],
                                          row["output"], row.get("settings") or ""))
                except (KeyError, TypeError, ValueError):
                    continue
    except (OSError, UnicodeDecodeError, csv.Error):
        return []
    return out


ROW_NOTES = (EARLIER_RUN, COUNTED, "objects table measured now")  # of a row, not a reason


def _reason(message: str) -> str:
    """A skipped row's message without the notes of its row (where its counts came from, a table measured now)."""
    return "; ".join(part for part in message.split("; ") if not part.startswith(ROW_NOTES)) or message


def skip_reasons(results: Iterable[FileResult], overwrite: str) -> str:
    """Why files were skipped, in one phrase for a run's last line ("" when none were).

    One reason is given as it is ("output exists, made with other settings
    (model: nuclei -> nuclei-robust); use --overwrite to redo it"); several
    each with their count, separated by " | "; a reason's notes after "; "
    (counts read back, a table measured now) are left to the summary's rows.
    ``overwrite`` is how the caller spells the option (``--overwrite``, or
    the Batch dock's tick box).
    """
    reasons = Counter(_reason(name_overwrite(r.message, overwrite)) for r in results if r.status == "skipped")
    if len(reasons) == 1:
        return next(iter(reasons))
    return " | ".join(f"{n} x {reason}" for reason, n in reasons.items())
