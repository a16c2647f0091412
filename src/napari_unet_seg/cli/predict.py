"""``unet-seg predict``: segment files and folders into OUTDIR, with ``summary.csv``, resumable."""

from __future__ import annotations

import argparse
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..core.batch.errors import SchedulerError
from ..core.batch.files import EXISTS, FileResult
from ..core.batch.jobs import find_jobs, found_in_subfolders, output_kind
from ..core.batch.output_folder import refuse_a_file
from ..core.batch.qc import pictures_of, qc_page, split_shares
from ..core.batch.runner import run_jobs
from ..core.batch.summary import skip_reasons, summary_note, summary_path
from ..core.common.errors import name_overwrite
from ..core.inference.cells import BOUNDARIES
from ..core.inference.cells_step import check_cells
from ..core.inference.frame_links import check_frame_links
from ..core.inference.object_filter import check_object_filter
from ..core.inference.object_size import rescale_factor, size_in_words
from ..core.inference.options import OUTPUTS, RunOptions
from ..core.training.project import Project, current_project_dir
from ..core.model.devices import DEVICES, PRECISIONS, resolve_device, resolve_precision
from ..core.model.registry import cached_model
from .errors import UserError, cli_wording, require_positive


def napari_uses_another_model() -> str | None:
    """When napari's docks start on a fine-tuned model (the model in use of the project Train used last), a run
    without --model, on the built-in one, gives other labels than the Batch dock: said, with the option to match."""
    try:
        project = Project(current_project_dir())
        in_use = project.in_use
    except (OSError, ValueError):
        return None
    if in_use is None:
        return None
    return (f"napari's Segment and Batch docks use '{in_use.stem}' (the model in use of project "
            f"{project.folder}); this run uses the built-in 'nuclei': --model {in_use} gives what they give")


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "predict",
        help="segment images (TIFF, PNG, JPEG, zarr) or folders of them with a model",
        description=(
            "Segment image files and folders. Writes OUTDIR/<stem>_labels.tif (same height and width as the "
            "input; multi-page TIFF stacks are segmented slice by slice and keep their slices), or "
            "OUTDIR/<stem>_labels.zarr for a zarr / OME-Zarr input (an OME-Zarr labels image, written block by "
            "block, never whole in memory), OUTDIR/<stem>_objects.csv (one row per object: position, size, shape, intensity; see "
            "`unet-seg measure`), and OUTDIR/summary.csv (file, status, objects, mean object area, seconds, message; "
            "summary-2.csv if a summary.csv that unet-seg did not write is there), and OUTDIR/qc/index.html: a page "
            "of every file's outlines over its image (OUTDIR/qc/<output>.png), its counts, and a chart of objects per "
            "file, to check a whole experiment by eye (--no-qc: none). "
            "Pixel sizes are carried over. Every output records where it came from (model and its SHA-256, settings, "
            "versions, the command that remakes it; see `unet-seg provenance`). A file that fails is reported and "
            "skipped; the exit code is 1 if any file failed. A rerun skips files whose output exists, so an "
            "interrupted batch resumes, and keeps their rows in summary.csv. A file named like an output that "
            "unet-seg did not write (a hand-made <stem>_labels.tif) is never replaced, even with --overwrite."
        ),
    )
    parser.add_argument("inputs", nargs="+", metavar="INPUT",
                        help="image files (TIFF, PNG, JPEG, zarr) or folders of them")
    parser.add_argument("-o", "--output", required=True, metavar="OUTDIR", help="folder for the label files and summary.csv")
    parser.add_argument("--pattern", default=None, metavar="GLOB",
                        help="in folders, take the files matching GLOB, e.g. '*.tif' (default: every TIFF, PNG, "
                             "JPEG and zarr); label images (*_labels.*) only if GLOB names them")
    parser.add_argument("--recursive", action="store_true",
                        help="also look in subfolders; their structure is mirrored in OUTDIR")
    parser.add_argument("--overwrite", action="store_true",
                        help="redo files whose output already exists (default: skip them, so reruns resume); "
                             "files unet-seg did not write are kept even so")
    parser.add_argument("--no-measure", action="store_true",
                        help="do not write <stem>_objects.csv (per-object measurements) beside each output")
    parser.add_argument("--no-qc", action="store_true",
                        help="do not draw the quality-control pictures (OUTDIR/qc/<output>.png and the page "
                             "OUTDIR/qc/index.html that shows them all)")
    parser.add_argument("--scheduler", default=None, metavar="ADDRESS",
                        help="run on an existing dask.distributed cluster, e.g. tcp://10.0.0.5:8786 (inputs and "
                             "OUTDIR must be on a filesystem the workers share)")
    parser.add_argument("--model", default=None, metavar="NAME|PATH",
                        help="model name (see `unet-seg models`) or .safetensors file; default: the built-in 'nuclei'")
    parser.add_argument("--device", default="auto", choices=DEVICES,
                        help="where to run: auto picks cuda, then mps, then cpu (default: auto)")
    parser.add_argument("--precision", default="auto", choices=PRECISIONS,
                        help="arithmetic precision; auto uses bf16/fp16 only where the hardware is fast at it")
    parser.add_argument("--tile-size", type=int, default=None, metavar="N",
                        help="side of the window the network sees, in pixels (default: chosen for the image and "
                             "the free memory); one that would cost over twice a whole-image pass is raised, "
                             "with a note")
    parser.add_argument("--batch-size", type=int, default=None, metavar="N",
                        help="windows per network call (default: 1 on CPU, 4 on GPU)")
    parser.add_argument("--diameter", type=float, default=None, metavar="PX",
                        help="typical object diameter in pixels; the image is rescaled to what the model knows "
                             "(default: measured on each image; nuclei ~8-250 px across need no setting)")
    parser.add_argument("--output-kind", default="instances", choices=OUTPUTS,
                        help="instances: one id per object; semantic: one id per class (an instance model's "
                             "foreground mask as 1) (default: instances)")
    parser.add_argument("--flip-average", action="store_true",
                        help="average the network over the four mirror images of each window: four network passes, "
                             "about 2.7x the time in all, for a slightly better result (see the model card)")
    parser.add_argument("--min-area", type=int, default=0, metavar="PX",
                        help="drop objects smaller than PX pixels of the image (default: 0, keep all)")
    parser.add_argument("--max-area", type=int, default=0, metavar="PX",
                        help="drop objects larger than PX pixels, e.g. clumps (default: 0, no limit)")
    parser.add_argument("--exclude-border", action="store_true",
                        help="drop objects touching the image's edge (cut by the field of view, they measure small)")
    parser.add_argument("--link-frames", action="store_true",
                        help="in a stack (T, H, W), an object keeps the id it had in the frame before while it "
                             "overlaps itself by more than half: ids that follow nuclei over time")
    parser.add_argument("--channel", type=int, default=None, metavar="K",
                        help="segment channel K alone (from 0) of multichannel or colour inputs: the nuclear stain "
                             "(default: every channel the model takes; colour is mixed into gray)")
    cells = parser.add_argument_group("whole cells", "grow each nucleus into its cell over another channel of the "
                                      "same image, as unet-seg cells does: <stem>_cells.tif (and its objects table) "
                                      "beside <stem>_labels.tif; cell k holds nucleus k")
    cells.add_argument("--cells-channel", type=int, default=None, metavar="K",
                       help="the cytoplasm or membrane stain's channel (from 0); use --channel for the nuclear one")
    cells.add_argument("--cell-boundary", choices=BOUNDARIES, default="cytoplasm",
                       help="cytoplasm: cells meet at the dim seam between them; membrane: at a bright outline; "
                            "distance: each pixel to the nearest nucleus, inside the stained area (default: cytoplasm)")
    cells.add_argument("--cell-threshold", type=float, default=None, metavar="F",
                       help="the stain counts as cell above this fraction (0-1) of its range (default: Otsu)")
    cells.add_argument("--cell-max-distance", type=float, default=None, metavar="PX",
                       help="a cell reaches at most this far from its nucleus (default: no limit)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    require_positive(args.tile_size, "--tile-size")
    require_positive(args.batch_size, "--batch-size")
    require_positive(args.diameter, "--diameter")
    if args.channel is not None and args.channel < 0:
        raise UserError(f"--channel counts from 0, so {args.channel} is no channel")
    if args.cells_channel is not None and args.cells_channel < 0:
        raise UserError(f"--cells-channel counts from 0, so {args.cells_channel} is no channel")
    if args.cells_channel is None and (args.cell_threshold is not None or args.cell_max_distance is not None
                                       or args.cell_boundary != "cytoplasm"):
        raise UserError("--cell-boundary, --cell-threshold and --cell-max-distance say how cells grow: give the cell "
                        "stain's channel with --cells-channel K")
    require_positive(args.cell_max_distance, "--cell-max-distance")
    for flag, value in (("--min-area", args.min_area), ("--max-area", args.max_area)):
        if value < 0:
            raise UserError(f"{flag} must be 0 (no limit) or more, not {value}")
    # on a cluster the workers choose their own device; locally, fail early on a missing one
    if not args.scheduler:
        # fail now, in one line, when the asked device is not here, or cannot run the asked precision (fp16 on a CPU)
        resolve_precision(args.precision, resolve_device(args.device))
    device = args.device  # as asked ("auto" picks per process): the provenance says what was asked and what ran
    model = cached_model(args.model)  # fail early and clearly on a bad model
    if args.model is None and (note := napari_uses_another_model()):
        print(f"unet-seg predict: note: {note}", file=sys.stderr)
    try:
        rescale_factor(model, args.diameter)  # and on a diameter no image could use
    except ValueError as exc:
        raise UserError(f"--diameter: {exc}") from None
    outdir = refuse_a_file(args.output)
    missing = [p for p in args.inputs if not Path(p).exists()]
    options = RunOptions(model=str(model.path) if model.path else args.model, device=device,
                             precision=args.precision, tile_size=args.tile_size, batch_size=args.batch_size,
                             diameter=args.diameter, output=args.output_kind, flip_average=args.flip_average,
                             min_area=args.min_area, max_area=args.max_area, exclude_border=args.exclude_border,
                             link_frames=args.link_frames, channel=args.channel,
                             cells_channel=args.cells_channel, cell_boundary=args.cell_boundary,
                             cell_threshold=args.cell_threshold, cell_max_distance=args.cell_max_distance)
    try:
        check_object_filter(options, model.task)
        check_frame_links(options, (), model.task)  # a stack of several axes is refused file by file
        check_cells(options, model.task)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    jobs = find_jobs(args.inputs, outdir, pattern=args.pattern, recursive=args.recursive,
                     kind=output_kind(options), qc=not args.no_qc)
    if args.no_measure:
        jobs = [replace(job, measure=False) for job in jobs]
    if not jobs:
        where = ", ".join(str(p) for p in args.inputs[:3]) + (", ..." if len(args.inputs) > 3 else "")
        deeper = 0 if args.recursive else found_in_subfolders(args.inputs, outdir, args.pattern)
        raise UserError(f"no input files found in {where}" + (f" matching {args.pattern!r}" if args.pattern else "")
                        + (f": {_images_are(deeper)} in subfolders, add --recursive to segment them" if deeper else
                           " (images are TIFF, PNG, JPEG or zarr; label images are left out unless --pattern names "
                           "them)"))
    if missing and len(missing) == len(args.inputs):
        raise UserError(f"no such file or folder: {missing[0]}")

    classes_out = model.task == "semantic" or args.output_kind == "semantic"

    def report(result: FileResult) -> None:
        if result.status == "failed":  # the file as given (in its folder), as the other lines name it
            name = Path(result.file).name
            said = result.file + result.message[len(name):] if result.message.startswith(name + ":") else \
                result.message
            print(f"unet-seg predict: {cli_wording(said)}", file=sys.stderr)
        elif result.status == "skipped":
            print(f"{result.file}: skipped, {result.output} exists")
            rest = result.message.removeprefix(name_overwrite(EXISTS, "--overwrite")).lstrip("; ")
            if rest:  # made otherwise, or not ours: say so rather than pass it off as this run's (once, not twice)
                print(f"unet-seg predict: note: {result.file}: {cli_wording(rest)}", file=sys.stderr)
        else:
            shares, rest = split_shares(result.message)
            size = size_in_words(result.objects, result.mean_area, options.diameter)
            made = (f"a class map ({shares})" if shares else "a class map" if classes_out
                    else f"{result.objects} objects" + (f" {size}" if size else ""))
            print(f"{result.file}: {made} in {result.seconds:.1f} s -> {result.output}")
            if rest:
                print(f"unet-seg predict: note: {result.file}: {cli_wording(rest)}", file=sys.stderr)

    if note := summary_note(outdir):
        print(f"unet-seg predict: note: {note}", file=sys.stderr)
    try:
        results = run_jobs(jobs, outdir, options, overwrite=args.overwrite, scheduler=args.scheduler, on_result=report,
                           overwrite_said="--overwrite", progress=SlowFileNotes())
    except SchedulerError as exc:
        raise UserError(str(exc)) from None
    except KeyboardInterrupt:  # what was kept, and how to go on: not a bare "interrupted"
        print(f"unet-seg predict: interrupted; the files finished are written, with their rows in "
              f"{summary_path(outdir)}; run the same command again to do the rest (finished files are skipped)",
              file=sys.stderr)
        return 130
    page = qc_page(outdir) if not args.no_qc and pictures_of(results, outdir) else None
    print(outcome_line(results, summary_path(outdir), page))
    return 1 if any(r.status == "failed" for r in results) else 0


class SlowFileNotes:
    """A line now and then for a file that takes long (a large image, a slow CPU), so a run is not silent for
    minutes: "big.tif: 40 % of the network's windows, 32 s so far". Called from the threads that segment."""

    FIRST, EVERY = 10.0, 15.0  # seconds: nothing for quick files; then a line every so often

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._started: dict[Any, float] = {}
        self._finished: set[Any] = set()
        self._said = float("-inf")

    def __call__(self, job: Any, done: int, total: int) -> None:
        now = time.monotonic()
        with self._lock:
            start = self._started.setdefault(job, now)
            if done >= total and now - start >= self.FIRST and job not in self._finished:
                # the last stage reports nothing: on a large image it took a minute of silence after "93 %"
                self._finished.add(job)
                line = f"{job.source}: network done, {now - start:.0f} s so far; separating the objects, writing"
            elif now - start < self.FIRST or now - self._said < self.EVERY or done >= total:
                return
            else:
                line = f"{job.source}: {100 * done // max(total, 1)} % through the network, {now - start:.0f} s so far"
            self._said = now
        print(line, flush=True)


def outcome_line(results: list[FileResult], summary: Path, page: Path | None = None) -> str:
    """The last line of a run: counts, where the summary is and, when files were skipped, why.

    "0 segmented, 3 skipped, 0 failed of 3 files; summary in res/summary.csv;
    skipped: output exists, made with other settings (model: nuclei ->
    nuclei-robust); use --overwrite to redo it". Several reasons are each
    given with their count, separated by " | ".
    """
    counts = {s: sum(r.status == s for r in results) for s in ("ok", "skipped", "failed")}
    line = (f"{counts['ok']} segmented, {counts['skipped']} skipped, {counts['failed']} failed "
            f"of {len(results)} files; summary in {summary}" + (f"; pictures in {page}" if page else ""))
    why = skip_reasons(results, "--overwrite")
    return line + (f"; skipped: {why}" if why else "")


def _images_are(n: int) -> str:
    return "1 image is" if n == 1 else f"{n} images are"
