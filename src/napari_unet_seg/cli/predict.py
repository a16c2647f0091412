"""``unet-seg predict``: segment image files into ``OUTDIR/<stem>_labels.tif`` plus ``summary.csv``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..core.batch import FileResult, SegmentOptions, run_batch
from ..core.devices import DEVICES, resolve_device
from ..core.modelfile import load_model


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "predict",
        help="segment images (TIFF, PNG, JPEG) with a model",
        description=(
            "Segment image files. Writes OUTDIR/<stem>_labels.tif (same height and width as the input; "
            "multi-page TIFF stacks are segmented slice by slice and keep their slices) and OUTDIR/summary.csv "
            "(file, status, objects, seconds, message). A file that fails is reported and skipped; the exit code "
            "is 1 if any file failed."
        ),
    )
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="image files (TIFF, PNG, JPEG)")
    parser.add_argument("-o", "--output", required=True, metavar="OUTDIR", help="folder for the label files and summary.csv")
    parser.add_argument("--model", default=None, metavar="NAME|PATH",
                        help="model name (see `unet-seg models`) or .safetensors file; default: the built-in 'nuclei'")
    parser.add_argument("--device", default="auto", choices=DEVICES,
                        help="where to run: auto picks cuda, then mps, then cpu (default: auto)")
    parser.add_argument("--tile-size", type=int, default=None, metavar="N",
                        help="side of the window the network sees, in pixels (default: chosen for the device)")
    parser.add_argument("--batch-size", type=int, default=None, metavar="N",
                        help="windows per network call (default: 1 on CPU, 4 on GPU)")
    parser.add_argument("--diameter", type=float, default=None, metavar="PX",
                        help="typical object diameter in pixels; the image is rescaled to what the model knows "
                             "(default: none, the model handles ~8-80 px)")
    parser.set_defaults(run=run)


def _positive(value: int | float | None, name: str) -> None:
    from .main import UserError

    if value is not None and value <= 0:
        raise UserError(f"{name} must be a positive number, not {value}")


def run(args: argparse.Namespace) -> int:
    _positive(args.tile_size, "--tile-size")
    _positive(args.batch_size, "--batch-size")
    _positive(args.diameter, "--diameter")
    device = resolve_device(args.device)
    model = load_model(args.model)  # fail early and clearly on a bad model
    outdir = Path(args.output)
    if outdir.exists() and not outdir.is_dir():
        from .main import UserError

        raise UserError(f"output {outdir} exists and is not a folder")
    options = SegmentOptions(model=str(model.path) if model.path else args.model, device=str(device),
                             tile_size=args.tile_size, batch_size=args.batch_size, diameter=args.diameter)

    def report(result: FileResult) -> None:
        if result.status == "failed":
            print(f"unet-seg predict: {result.message}", file=sys.stderr)
        else:
            print(f"{result.file}: {result.objects} objects in {result.seconds:.1f} s -> {result.output}")

    results = run_batch([Path(p) for p in args.inputs], outdir, options, on_result=report)
    failed = sum(r.status == "failed" for r in results)
    print(f"{len(results) - failed} of {len(results)} files segmented; summary in {outdir / 'summary.csv'}")
    return 1 if failed else 0
