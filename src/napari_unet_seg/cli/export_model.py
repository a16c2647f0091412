"""``unet-seg export-model``: a model -> a bioimage.io model package folder, through core.model_export."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..core.common.atomic import check_writable_folder
from ..core.common.errors import first_line
from ..core.model.registry import load_model
from ..core.model_export import ExportError, export_bioimageio
from ..core.model_export.bioimageio import check_package_folder, is_zip_name
from .errors import UserError


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "export-model",
        help="write a model as a bioimage.io model package (for ilastik, deepImageJ, QuPath, BiaPy...)",
        description=(
            "Write MODEL as a bioimage.io model package (spec 0.5) in the folder OUT: PyTorch state-dict weights "
            "with the network's source (unet.py), the same network as TorchScript weights (for deepImageJ and "
            "other runners without Python; --no-torchscript leaves them out), a test input and the output "
            "expected from it, a cover, a README saying what the package cannot express (automatic inversion, "
            "despiking, denoising, rescaling to the object size, and the watershed that makes labels: the package "
            "outputs probability maps), and the napari-unet-seg model file itself. OUT ending in .zip is written as "
            "one zip file. Authors and licence default to those the model file records (an imported package's). "
            "Check it with `bioimageio test OUT/rdf.yaml` (or OUT.zip). Needs the "
            "optional dependency: pip install 'napari-unet-seg[bioimageio]'. OUT is never overwritten without "
            "--overwrite."
        ),
    )
    parser.add_argument("model", metavar="MODEL", help="model name (see `unet-seg models`) or .safetensors file")
    parser.add_argument("-o", "--output", required=True, metavar="OUT",
                        help="folder to create for the package, or a .zip file (one file, as bioimage.io shares them)")
    parser.add_argument("--sample", default=None, metavar="IMAGE",
                        help="image to cut the test input and cover from, with the model's channels "
                             "(default: a shipped DSB 2018 nuclei image, for one-channel models)")
    parser.add_argument("--author", action="append", default=None, metavar="NAME",
                        help="an author of the model (repeat for several; bioimage.io requires at least one)")
    parser.add_argument("--license", default=None, metavar="SPDX",
                        help="licence of the weights, an SPDX identifier (default: the one the model file records, "
                             "e.g. from an imported package; else CC-BY-4.0)")
    parser.add_argument("--invert", default=None, choices=("yes", "no"),
                        help="for a model that inverts bright-background images automatically: whether the "
                             "package always inverts (default: what the automatic rule decides on the sample)")
    parser.add_argument("--no-torchscript", dest="torchscript", action="store_false",
                        help="leave out the TorchScript weights (deepImageJ needs them; other runners use the "
                             "state dict)")
    parser.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    output = Path(args.output)
    try:
        check_package_folder(output, overwrite=args.overwrite)  # before the model is loaded
    except ExportError as exc:
        raise UserError(str(exc)) from None
    if args.author is not None and not all(name.strip() for name in args.author):
        raise UserError("--author needs a name")
    check_writable_folder(output.absolute().parent)  # said now, naming the folder, not a temporary file at the end
    model = load_model(args.model)
    invert = None if args.invert is None else args.invert == "yes"
    authors, license = recorded_credits(model, args.author, args.license)
    try:
        export_bioimageio(model, output, sample=args.sample, authors=authors, license=license,
                          invert=invert, torchscript=args.torchscript, overwrite=args.overwrite)
    except ValueError as exc:  # ExportError, ImageReadError: the user's to fix, in one line
        raise UserError(first_line(exc)) from None
    check = output if is_zip_name(output) else output / "rdf.yaml"
    print(f"wrote {output} (bioimage.io model package; check it with: bioimageio test {check})")
    if not authors:
        parents = model.metadata.get("parent_authors")
        credited = f"; the makers of the model it was fine-tuned from ({', '.join(map(str, parents))}) are named " \
            "in its description" if isinstance(parents, list) and parents else ""
        print("unet-seg export-model: note: no --author given; the package names its author 'unknown' (set one "
              f"before uploading){credited}", file=sys.stderr)
    elif not args.author:
        print(f"unet-seg export-model: note: authors as the model file records them: {', '.join(authors)}",
              file=sys.stderr)
    if args.license is None and license != DEFAULT_LICENSE:
        print(f"unet-seg export-model: note: licence as the model file records it: {license}", file=sys.stderr)
    return 0


DEFAULT_LICENSE = "CC-BY-4.0"


def recorded_credits(model: Any, authors: list[str] | None, license: str | None) -> tuple[tuple[str, ...], str]:
    """The package's authors and licence: as given, else as the model file records them (an imported package's),
    so that exporting a colleague's model again never drops their names or relicenses it."""
    recorded = model.metadata.get("authors")
    kept = tuple(a for a in recorded if isinstance(a, str) and a.strip() and a != "unknown") \
        if isinstance(recorded, list) else ()
    recorded_license = model.metadata.get("license")
    return (tuple(authors) if authors else kept,
            license or (recorded_license if isinstance(recorded_license, str) and recorded_license else
                        DEFAULT_LICENSE))
