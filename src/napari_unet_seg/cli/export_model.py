"""``unet-seg export-model``: a model -> a bioimage.io model package folder, through core.model_export."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..core.common.errors import first_line
from ..core.model.registry import load_model
from ..core.model_export import ExportError, export_bioimageio
from ..core.model_export.bioimageio import check_package_folder
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
            "outputs probability maps), and the napari-unet-seg model file itself. Check it with `bioimageio test OUT/rdf.yaml`. Needs the "
            "optional dependency: pip install 'napari-unet-seg[bioimageio]'. OUT is never overwritten without "
            "--overwrite."
        ),
    )
    parser.add_argument("model", metavar="MODEL", help="model name (see `unet-seg models`) or .safetensors file")
    parser.add_argument("-o", "--output", required=True, metavar="OUT", help="folder to create for the package")
    parser.add_argument("--sample", default=None, metavar="IMAGE",
                        help="image to cut the test input and cover from, with the model's channels "
                             "(default: a shipped DSB 2018 nuclei image, for one-channel models)")
    parser.add_argument("--author", action="append", default=None, metavar="NAME",
                        help="an author of the model (repeat for several; bioimage.io requires at least one)")
    parser.add_argument("--license", default="CC-BY-4.0", metavar="SPDX",
                        help="licence of the weights, an SPDX identifier (default: CC-BY-4.0)")
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
    model = load_model(args.model)
    invert = None if args.invert is None else args.invert == "yes"
    try:
        export_bioimageio(model, output, sample=args.sample, authors=tuple(args.author or ()), license=args.license,
                          invert=invert, torchscript=args.torchscript, overwrite=args.overwrite)
    except ValueError as exc:  # ExportError, ImageReadError: the user's to fix, in one line
        raise UserError(first_line(exc)) from None
    print(f"wrote {output} (bioimage.io model package; check it with: bioimageio test {output / 'rdf.yaml'})")
    if not args.author:
        print("note: no --author given; the package names its author 'unknown' (set one before uploading)")
    return 0
