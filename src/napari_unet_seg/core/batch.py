"""Segmenting many files: one result per file, failures reported and skipped.

The same :func:`~.pipeline.segment` runs here as in the widget, so batch
outputs equal interactive results.
"""

from __future__ import annotations

import csv
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

from .imageio import ImageReadError, read_image, write_labels_tiff
from .modelfile import Model, ModelFileError, load_model
from .pipeline import segment
from .tiling import Cancelled

SUMMARY_NAME = "summary.csv"


@dataclass(frozen=True)
class SegmentOptions:
    """Settings shared by every file of a batch."""

    model: str | None = None
    device: str = "auto"
    precision: str = "auto"
    tile_size: int | None = None
    batch_size: int | None = None
    diameter: float | None = None


@dataclass
class FileResult:
    """One row of ``summary.csv``."""

    file: str
    status: str  # "ok", "failed" or "skipped"
    objects: int = 0
    mean_area: float = 0.0
    seconds: float = 0.0
    message: str = ""
    output: str = ""


def output_path(source: Path, outdir: Path, root: Path | None = None) -> Path:
    """Where the labels of ``source`` go: ``OUTDIR/[subfolders/]<stem>_labels.tif``, always inside OUTDIR."""
    relative_parent = Path()
    if root is not None:
        try:
            relative_parent = source.parent.resolve().relative_to(root.resolve())
        except ValueError:
            relative_parent = Path()
    name = f"{source.stem}_labels.tif"
    target = (outdir / relative_parent / name).resolve()
    if outdir.resolve() not in target.parents:
        target = outdir.resolve() / name
    return target


def summarize_labels(labels: np.ndarray) -> tuple[int, float]:
    """Number of objects and mean object area (px) over all planes."""
    counts = np.bincount(labels.ravel().astype(np.int64))[1:]
    counts = counts[counts > 0]
    return int(len(counts)), float(counts.mean()) if len(counts) else 0.0


def segment_file(
    path: Path,
    model: Model,
    options: SegmentOptions,
    target: Path,
    *,
    progress: Callable[[int, int], None] | None = None,
    cancel: Callable[[], bool] | None = None,
) -> FileResult:
    """Segment one file and write its labels; a user-caused failure becomes a failed row."""
    start = time.perf_counter()
    try:
        image = read_image(path)
        labels = segment(
            image.data, model, rgb=image.rgb, diameter=options.diameter, tile_size=options.tile_size,
            batch_size=options.batch_size, device=options.device, precision=options.precision,
            progress=progress, cancel=cancel,
        )
        write_labels_tiff(target, labels, image.pixel_size)
    except Cancelled:
        raise
    except (ImageReadError, ValueError, MemoryError, OSError) as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return FileResult(str(path), "failed", seconds=time.perf_counter() - start, message=message)
    objects, area = summarize_labels(labels)
    return FileResult(str(path), "ok", objects, round(area, 2), round(time.perf_counter() - start, 3), "", str(target))


def run_batch(
    paths: Iterable[Path],
    outdir: Path,
    options: SegmentOptions = SegmentOptions(),
    *,
    root: Path | None = None,
    on_result: Callable[[FileResult], None] | None = None,
    cancel: Callable[[], bool] | None = None,
) -> list[FileResult]:
    """Segment every file into ``outdir`` and write ``summary.csv``; never stops on a bad file."""
    model = load_model(options.model)
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    results = []
    for path in paths:
        if cancel is not None and cancel():
            break
        try:
            result = segment_file(Path(path), model, options, output_path(Path(path), outdir, root), cancel=cancel)
        except Cancelled:
            break
        results.append(result)
        if on_result is not None:
            on_result(result)
    write_summary(results, outdir)
    return results


def write_summary(results: list[FileResult], outdir: Path) -> Path:
    """Write ``summary.csv`` atomically."""
    path = Path(outdir) / SUMMARY_NAME
    tmp = path.with_name(f".{path.name}.{os.getpid()}.partial")
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=[fld.name for fld in fields(FileResult)])
        writer.writeheader()
        for result in results:
            writer.writerow(asdict(result))
    os.replace(tmp, path)
    return path


__all__ = ["FileResult", "ModelFileError", "SegmentOptions", "output_path", "run_batch", "segment_file", "write_summary"]
