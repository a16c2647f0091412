"""Which files a batch processes and where each one's labels go (always inside the output folder)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

from ..imageio import IMAGE_SUFFIXES, is_zarr
from ..measure.table_csv import objects_csv_path
from .output_folder import refuse_a_file


@dataclass(frozen=True)
class Job:
    """One input file and where its labels go (always inside the output folder).

    ``measure``: also write its objects table, ``<stem>_objects.csv``, beside the labels.
    """

    source: Path
    target: Path
    measure: bool = True


LABELS_SUFFIXES = (*IMAGE_SUFFIXES, ".ome.tif", ".ome.tiff", ".ome.zarr")


def is_labels_file(path: Path) -> bool:
    """``<stem>_labels.<ext>``: our outputs and the usual name of annotations, never raw images to segment."""
    name = path.name.lower()
    return any(name.endswith(f"_labels{suffix}") for suffix in LABELS_SUFFIXES)


def _wanted(entry: Path, pattern: str | None) -> bool:
    """Images (or ``pattern`` matches), but label images only when the pattern asks for them by name."""
    if is_labels_file(entry) and (pattern is None or "_labels" not in pattern.lower()):
        return False
    if pattern is not None:
        return entry.match(pattern)
    return is_zarr(entry) or entry.suffix.lower() in IMAGE_SUFFIXES


def _walk(folder: Path, pattern: str | None, recursive: bool, outdir: Path) -> list[Path]:
    """Files of ``folder`` (see :func:`_wanted`), never entering the output folder or a zarr store."""
    found: list[Path] = []
    for entry in sorted(folder.iterdir(), key=lambda p: p.name):
        if entry.name.startswith(".") or entry.resolve() == outdir:
            continue
        if entry.is_dir() and not is_zarr(entry):
            if recursive:
                found.extend(_walk(entry, pattern, recursive, outdir))
        elif _wanted(entry, pattern):
            found.append(entry)
    return found


def output_name(source: Path) -> str:
    """``<stem>_labels.tif``, or ``<stem>_labels.zarr`` for a zarr input."""
    name = source.name
    for suffix in (".ome.zarr", ".zarr", ".ome.tiff", ".ome.tif"):
        if name.lower().endswith(suffix):
            stem = name[:-len(suffix)]
            break
    else:
        stem = source.stem
    stem = stem.replace(os.sep, "_") or "image"
    return f"{stem}_labels.zarr" if is_zarr(source) else f"{stem}_labels.tif"


def output_path(source: Path, outdir: Path, root: Path | None = None) -> Path:
    """Where the labels of ``source`` go: ``OUTDIR/[subfolders of root/]<name>``, always inside OUTDIR."""
    outdir = Path(outdir).resolve()
    relative_parent = Path()
    if root is not None:
        try:
            relative_parent = source.parent.resolve().relative_to(Path(root).resolve())
        except ValueError:
            relative_parent = Path()
    target = (outdir / relative_parent / output_name(source)).resolve()
    if outdir not in target.parents:
        target = outdir / output_name(source)
    return target


def find_jobs(
    inputs: Iterable[str | os.PathLike], outdir: str | os.PathLike, *, pattern: str | None = None,
    recursive: bool = False,
) -> list[Job]:
    """Expand files and folders into jobs; folders mirror their subfolders into ``outdir``.

    In a folder, ``pattern`` (a glob such as ``*.tif``) selects files; without
    one, every TIFF, PNG, JPEG and zarr is taken. Label images
    (``*_labels.tif``, ``*_labels.zarr``...) are skipped unless the pattern
    names them (``*_labels.tif``). An output folder that is a file is
    refused before anything is looked at. Files named explicitly are
    always attempted, so a bad one is reported rather than ignored. Two inputs
    that would write the same output are told apart by their suffix.
    """
    outdir = refuse_a_file(outdir).resolve()
    jobs: list[Job] = []
    for item in inputs:
        item = Path(item)
        if item.is_dir() and not is_zarr(item):
            for path in _walk(item, pattern, recursive, outdir):
                jobs.append(Job(path, output_path(path, outdir, item)))
        else:
            jobs.append(Job(item, output_path(item, outdir)))
    seen: set[Path] = set()  # outputs, and the objects tables beside them (a.tif and a.zarr: one a_objects.csv)
    tried: dict[tuple[Path, str], int] = {}  # the last number tried per name and suffix: linear, however many clash
    unique = []
    for job in jobs:
        if outdir in job.source.resolve().parents and is_labels_file(job.source):
            continue  # our own output, found because OUTDIR is inside an input folder
        target = job.target
        suffix = job.source.suffix.lstrip(".").lower() or "file"
        while target in seen or objects_csv_path(target) in seen:  # told apart by their suffix, then by a number
            n = tried[job.target, suffix] = tried.get((job.target, suffix), 0) + 1
            tag = suffix if n == 1 else f"{suffix}{n}"
            target = job.target.with_name(job.target.name.replace("_labels", f"_{tag}_labels", 1))
        seen.update((target, objects_csv_path(target)))
        unique.append(replace(job, target=target))
    return unique
