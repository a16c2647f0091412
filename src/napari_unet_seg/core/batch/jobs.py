"""Which files a batch processes and where each one's labels go (always inside the output folder)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

from ..common.file_names import resolved
from ..imageio import IMAGE_SUFFIXES, is_zarr
from ..inference.options import RunOptions
from ..measure.table_csv import objects_csv_path
from ..model.modelfile import ModelFileError, ModelInfo
from ..model.registry import DEFAULT_MODEL, resolve_model_path
from .cells_output import cells_path
from .existing import output_provenance, same_file
from .output_folder import refuse_a_file
from .qc import is_qc_folder, qc_picture_path


@dataclass(frozen=True)
class Job:
    """One input file and where its labels go (always inside the output folder).

    ``measure``: also write its objects table, ``<stem>_objects.csv``, beside the labels.
    ``cells_only``: its labels are this run's already (only the cell settings differ): grow the cells again.
    ``qc``: where its quality-control picture goes (:mod:`.qc`); None: no picture.
    """

    source: Path
    target: Path
    measure: bool = True
    cells_only: bool = False
    qc: Path | None = None


LABELS_SUFFIXES = (*IMAGE_SUFFIXES, ".ome.tif", ".ome.tiff", ".ome.zarr")
OUTPUT_ENDINGS = ("_labels", "_classes", "_cells")  # objects, a class model's output, cells grown from objects


def output_ending(path: Path) -> str | None:
    """``_labels`` for ``<stem>_labels.<ext>`` (and ``_classes``, ``_cells``): None for other files."""
    name = path.name.lower()
    return next((ending for ending in OUTPUT_ENDINGS for suffix in LABELS_SUFFIXES
                 if name.endswith(f"{ending}{suffix}")), None)


def is_labels_file(path: Path) -> bool:
    """``<stem>_labels.<ext>`` (or ``_classes``, ``_cells``): our outputs and the usual name of annotations,
    never raw images to segment."""
    return output_ending(path) is not None


def _wanted(entry: Path, pattern: str | None) -> bool:
    """Images (or ``pattern`` matches), but label images only when the pattern asks for them by name.

    ``*_labels.*`` are annotations or outputs, never raw images; ``*_cells.*`` and ``*_classes.*`` are
    left out only when unet-seg wrote them (``HeLa_cells.tif`` is a fine name for a raw image).
    """
    ending = output_ending(entry)
    if ending is not None and (pattern is None or ending not in pattern.lower()) and \
            (ending == "_labels" or output_provenance(entry) is not None):
        return False
    if pattern is not None:
        return entry.match(pattern)
    return is_zarr(entry) or entry.suffix.lower() in IMAGE_SUFFIXES


def _walk(folder: Path, pattern: str | None, recursive: bool, outdir: Path) -> list[Path]:
    """Files of ``folder`` (see :func:`_wanted`), never entering the output folder or a zarr store."""
    found: list[Path] = []
    for entry in sorted(folder.iterdir(), key=lambda p: p.name):
        if entry.name.startswith(".") or resolved(entry) == outdir or is_qc_folder(entry, outdir):
            continue
        if entry.is_dir() and not is_zarr(entry):
            if recursive:
                found.extend(_walk(entry, pattern, recursive, outdir))
        elif _wanted(entry, pattern):
            found.append(entry)
    return found


def found_in_subfolders(inputs: Iterable[str | os.PathLike], outdir: str | os.PathLike,
                        pattern: str | None = None) -> int:
    """How many images the subfolders of the folders in ``inputs`` hold: what a run that found none because it did
    not look into subfolders would have found (to say so)."""
    outdir = Path(outdir).resolve()
    folders = [Path(item) for item in inputs if Path(item).is_dir() and not is_zarr(Path(item))]
    return sum(len(_walk(sub, pattern, True, outdir)) for folder in folders for sub in sorted(folder.iterdir())
               if sub.is_dir() and not sub.name.startswith(".") and not is_zarr(sub) and sub.resolve() != outdir
               and not is_qc_folder(sub, outdir))


def output_kind(options: RunOptions) -> str:
    """``labels`` (objects), or ``classes`` for a class output (a class model's, or an instance model's mask)."""
    if options.output == "semantic":
        return "classes"
    try:
        return "classes" if ModelInfo.of(resolve_model_path(options.model or DEFAULT_MODEL)).task == "semantic" \
            else "labels"
    except (ModelFileError, OSError):  # an unreadable model is refused, clearly, when it is loaded
        return "labels"


def output_name(source: Path, kind: str = "labels") -> str:
    """``<stem>_labels.tif``, or ``<stem>_labels.zarr`` for a zarr input (``_classes`` for class outputs)."""
    name = source.name
    for suffix in (".ome.zarr", ".zarr", ".ome.tiff", ".ome.tif"):
        if name.lower().endswith(suffix):
            stem = name[:-len(suffix)]
            break
    else:
        stem = source.stem
    stem = stem.replace(os.sep, "_") or "image"
    return f"{stem}_{kind}.zarr" if is_zarr(source) else f"{stem}_{kind}.tif"


def output_path(source: Path, outdir: Path, root: Path | None = None, kind: str = "labels") -> Path:
    """Where the labels of ``source`` go: ``OUTDIR/[subfolders of root/]<name>``, always inside OUTDIR."""
    outdir = Path(outdir).resolve()
    relative_parent = Path()
    if root is not None:
        try:
            relative_parent = resolved(source.parent).relative_to(resolved(Path(root)))
        except ValueError:
            relative_parent = Path()
    target = resolved(outdir / relative_parent / output_name(source, kind))
    if outdir not in target.parents:
        target = outdir / output_name(source, kind)
    return target


def find_jobs(
    inputs: Iterable[str | os.PathLike], outdir: str | os.PathLike, *, pattern: str | None = None,
    recursive: bool = False, kind: str = "labels", qc: bool = True,
) -> list[Job]:
    """Expand files and folders into jobs; folders mirror their subfolders into ``outdir``.

    In a folder, ``pattern`` (a glob such as ``*.tif``) selects files; without
    one, every TIFF, PNG, JPEG and zarr is taken. Label images
    (``*_labels.tif``, ``*_labels.zarr``...) are skipped unless the pattern
    names them (``*_labels.tif``). An output folder that is a file is
    refused before anything is looked at. Files named explicitly are
    always attempted, so a bad one is reported rather than ignored. A file given
    more than once (see :func:`input_key`) is one job. Two inputs
    that would write the same output are told apart by their suffix. ``kind``
    names the outputs: ``<stem>_labels`` (objects) or ``<stem>_classes``
    (see :func:`output_kind`), so a class model's run never replaces objects.
    With ``qc``, each job also draws its picture into ``OUTDIR/qc`` (:mod:`.qc`).
    """
    outdir = refuse_a_file(outdir).resolve()
    jobs: list[Job] = []
    found: dict[str, int] = {}  # each file once, however it was named: its place in ``jobs``
    in_folder: set[int] = set()  # the places of files found in a folder (not named one by one)
    for item in inputs:
        item = Path(item)
        if item.is_dir() and not is_zarr(item):
            for path in _walk(item, pattern, recursive, outdir):
                _add_once(jobs, found, in_folder, Job(path, output_path(path, outdir, item, kind)), True)
        else:
            _add_once(jobs, found, in_folder, Job(item, output_path(item, outdir, kind=kind)), False)
    seen: set[Path] = set()  # outputs, and the files beside them (a.tif and a.zarr: one a_objects.csv, a_cells.tif)
    unique = []
    for job in jobs:
        if outdir in resolved(job.source).parents and is_labels_file(job.source) and \
                (output_ending(job.source) == "_labels" or output_provenance(job.source) is not None):
            continue  # our own output, found because OUTDIR is inside an input folder
        target = _own_target(job, kind, seen)
        seen.update((target, *_beside(target)))
        unique.append(replace(job, target=target, qc=qc_picture_path(target, outdir) if qc else None))
    return unique


def _own_target(job: Job, kind: str, seen: set[Path]) -> Path:
    """The output name of ``job``: ``<stem>_labels``, or told apart by the input's suffix and then a number
    (``<stem>_tif_labels``, ``<stem>_tif2_labels``) from the other outputs of this run (``seen``) and from outputs
    already in the folder made from another image of the same name that still exists.

    An output this image made in an earlier run is its name again, whichever
    inputs that run had: a rerun of one of two same-named images finds its own
    labels, and overwrite never replaces the other image's.
    """
    suffix = job.source.suffix.lstrip(".").lower() or "file"
    chosen, n = None, -1
    while True:
        n += 1
        tag = "" if n == 0 else suffix if n == 1 else f"{suffix}{n}"
        candidate = job.target.with_name(job.target.name.replace(f"_{kind}", f"_{tag}_{kind}", 1)) if tag \
            else job.target
        if {candidate, *_beside(candidate)} & seen:
            continue
        if not candidate.exists():
            chosen = chosen or candidate
            if n > 0:  # names are given in turn: none further on
                return chosen
            continue
        made_from = (output_provenance(candidate) or {}).get("input")
        if isinstance(made_from, str) and same_file(made_from, job.source.absolute()):
            return candidate  # this image's, from an earlier run
        if not (isinstance(made_from, str) and Path(made_from).exists()):
            chosen = chosen or candidate  # the user's file, or made from an image since moved (perhaps this one)


def input_key(path: Path) -> str:
    """What makes two inputs the same file: the path with links, ``.`` and ``..`` resolved (case folded where the
    system folds it), so ``dup/calib.tif``, ``./dup/../dup/calib.tif`` and a link to it are one file."""
    return os.path.normcase(str(resolved(Path(path))))


def _add_once(jobs: list[Job], found: dict[str, int], in_folder: set[int], job: Job, from_folder: bool) -> None:
    """Add ``job`` unless its file is in ``jobs`` already: one file given twice (a folder and a file in it, the same
    file typed twice or through a link, overlapping globs) is segmented, written and counted once.

    The first time it was given decides its place in the list and the name it is reported by; its output goes
    where a folder puts it, if a folder gave it (the outermost folder, its subfolders mirrored), so it is where a
    run of that folder alone puts and finds it.
    """
    key = input_key(job.source)
    place = found.get(key)
    if place is None:
        found[key] = len(jobs)
        jobs.append(job)
        if from_folder:
            in_folder.add(len(jobs) - 1)
    elif from_folder and (place not in in_folder or len(job.target.parts) > len(jobs[place].target.parts)):
        jobs[place] = replace(jobs[place], target=job.target)
        in_folder.add(place)


def _beside(target: Path) -> tuple[Path, ...]:
    """The files a run may write beside an output: its objects table, its cells and their table."""
    cells = cells_path(target)
    return objects_csv_path(target), cells, objects_csv_path(cells)
