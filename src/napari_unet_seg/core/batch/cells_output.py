"""The cells of one batch output: ``<stem>_cells.tif`` beside ``<stem>_labels.tif``, and their objects table.

Written when the run grows cells (``RunOptions.cells_channel``), with the
provenance ``unet-seg cells`` gives cells (its command remakes them from the
labels file), so a cells file is the same whichever way it was made. A file
of that name that unet-seg did not write is the user's: it is kept, and the
row says so.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..common.errors import first_line
from ..common.file_names import file_stem
from ..imageio import ImageFile, read_labels, write_labels_tiff
from ..inference.cells import cells_note
from ..inference.cells_step import cell_options, cell_stain, grow_run_cells
from ..inference.layout import numeric_image
from ..inference.options import RunOptions
from ..inference.provenance import csv_comments, describe_cells, predict_command
from .existing import output_provenance
from .objects import measure_output

STEM_ENDINGS = ("_labels", "_nuclei")
CELL_FIELDS = ("cells_channel", "cell_boundary", "cell_threshold", "cell_max_distance")  # RunOptions


def cells_path(nuclei: str | Path) -> Path:
    """``img_labels.tif`` (or ``img_nuclei.tif``) -> ``img_cells.tif``, beside it.

    One ending only: ``ctrl_nuclei_labels.tif`` (the labels of ``ctrl_nuclei.tif``) gives
    ``ctrl_nuclei_cells.tif``, not the ``ctrl_cells.tif`` of ``ctrl.tif``'s labels.
    """
    path = Path(nuclei)
    stem = file_stem(path.name)
    ending = next((e for e in STEM_ENDINGS if stem.endswith(e)), "")
    return path.with_name(f"{stem[:len(stem) - len(ending)]}_cells.tif")


def write_cells_output(labels_path: Path, cells: np.ndarray, image: ImageFile, options: RunOptions,
                       labels_provenance: dict[str, Any], *, measure: bool, stack_axis: str = "Z") -> str:
    """Write the cells beside their labels (and their table when ``measure``); a note for the summary row."""
    path = cells_path(labels_path)
    if path.exists() and output_provenance(path) is None:
        return f"{path.name} exists and was not written by unet-seg: kept, cells not written"
    wanted = cell_options(options)
    assert wanted is not None
    record = describe_cells(wanted, nuclei_path=labels_path, image_path=image.path, channel=options.cells_channel,
                            mask_path=None, nuclei_record=labels_provenance)
    try:
        write_labels_tiff(path, cells, image.pixel_size, provenance=record, stack_axis=stack_axis)
    except OSError as exc:
        return f"cells not written: {first_line(exc)}"
    note = f"cells in {path.name}"
    if measure:
        outcome = measure_output(cells, image, path, csv_comments(record))
        note += f" ({outcome.note})" if outcome.note else ""
    return note


def regrow_cells(labels_path: Path, image: ImageFile, options: RunOptions, *, measure: bool,
                 stack_axis: str = "Z", cancel: Any = None) -> tuple[np.ndarray, np.ndarray, str]:
    """Grow the cells of existing labels again with this run's cell settings; (labels, cells, a note for the row).

    The labels keep their pixels; their provenance takes the new cell
    settings (and the command that remakes both), so the next run compares
    against what the files now hold.
    """
    labels = np.asarray(read_labels(labels_path))
    record = output_provenance(labels_path) or {}
    stain = cell_stain(numeric_image(image.data), options, rgb=image.rgb, channel_axis=image.channel_axis)
    cells = grow_run_cells(labels, stain, options, tuple(np.ndindex(*labels.shape[:-2])), cancel=cancel)
    settings = {**(record.get("settings") or {}), **{name: getattr(options, name) for name in CELL_FIELDS}}
    record = {**record, "settings": settings}
    record["command"] = predict_command(record)
    write_labels_tiff(labels_path, labels, image.pixel_size, provenance=record, stack_axis=stack_axis)
    note = write_cells_output(labels_path, cells, image, options, record, measure=measure, stack_axis=stack_axis)
    return labels, cells, f"{cells_note(labels, cells)}; cells grown again from the labels already there; {note}"
