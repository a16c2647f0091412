"""The objects table of an output a rerun keeps: one missing (deleted, or never written) is measured now.

A run killed right after writing a file's labels, or one whose disk was full
when the table was due, leaves labels of ours without ``<stem>_objects.csv``.
A rerun skips those labels (they are finished) but measures their table from
the labels as written and the input image, as the run that made them would
have, and its row says so with the totals. A table of that name the user made
is never replaced (:func:`~.objects.measure_output`), nor is anything measured
when the job says not to (``--no-measure``), for class maps, or for labels made
from another image of the same name.
"""

from __future__ import annotations

from dataclasses import replace

from ..common.errors import first_line
from ..imageio import read_image, read_labels
from ..inference.options import RunOptions
from ..inference.provenance import csv_comments, with_edits_said
from ..measure.table_csv import objects_csv_path
from .existing import output_provenance
from .files import FileResult, holds_labels_of, with_channels
from .jobs import Job, output_ending
from .objects import ObjectsOutcome, measure_output

MEASURED_NOW = "objects table measured now from the labels already there"
STALE = ("objects table not written", "no objects table")  # what an earlier row said of a table it lacked


def table_missing(job: Job) -> bool:
    """Whether ``job``'s output is one of ours, of objects, made from this image, and lacks its objects table."""
    if not job.measure or objects_csv_path(job.target).exists() or output_ending(job.target) != "_labels":
        return False
    record = output_provenance(job.target)
    if record is None:
        return False  # not ours: the user's labels are never measured into a table of ours here
    if (record.get("model") or {}).get("task", "instances") != "instances" or \
            (record.get("settings") or {}).get("output", "instances") != "instances":
        return False  # classes are not objects
    return holds_labels_of(record, job) is not False  # an output that names no image is taken for this one's


def measure_kept_output(job: Job) -> ObjectsOutcome | None:
    """Write the missing objects table of ``job``'s output (see :func:`table_missing`); None when none is due.

    Never raises: a table that cannot be made is a note, as in a run.
    """
    if not table_missing(job):
        return None
    try:
        record = with_edits_said(job.target, output_provenance(job.target) or {})  # corrected since: said so
        record.pop("labels_digest", None)  # the labels' own check, not part of what made them
        labels = read_labels(job.target)
        image = read_image(job.source)
    except Exception as exc:  # noqa: BLE001 - a file changed or gone: no table, said in the row
        return ObjectsOutcome(note=f"no objects table: {first_line(exc)}")
    if image.stack and image.data.ndim == 3 and len(labels.shape) == 2:
        image = with_channels(image, RunOptions(channel=0))  # (C, H, W) with labels of one plane: its channels
    return measure_output(labels, image, job.target, csv_comments(record))


def with_table(row: FileResult, outcome: ObjectsOutcome) -> FileResult:
    """``row`` once its output's table was measured now: the totals measured and a note saying so (or why not),
    in place of what an earlier row said of a table it lacked."""
    notes = [n for n in row.message.split("; ") if n and not n.startswith(STALE) and
             not n.endswith("kept, objects table not written")]
    notes.append(outcome.note or MEASURED_NOW)
    if outcome.objects is None:
        return replace(row, message="; ".join(notes))
    return replace(row, objects=outcome.objects, mean_area=round(outcome.mean_area, 2), message="; ".join(notes))
