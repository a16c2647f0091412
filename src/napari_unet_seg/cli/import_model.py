"""``unet-seg import-model``: a bioimage.io package of our U-Net -> a model file, through core.model_export."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..core.common.errors import first_line
from ..core.model.registry import user_model_dir
from ..core.model_export import import_bioimageio
from ..core.training.naming import model_file_path
from .errors import UserError


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "import-model",
        help="turn a bioimage.io model package of a napari-unet-seg U-Net into a model file",
        description=(
            "Read the bioimage.io model package PACKAGE (a folder or .zip with rdf.yaml, spec 0.4 or 0.5) and, when "
            "its network is napari-unet-seg's U-Net with PyTorch state-dict weights (as `unet-seg export-model` "
            "writes), save it as a napari-unet-seg model file. No code from the package runs: the weights are read "
            "with PyTorch's safe loader, and the network is accepted only when napari-unet-seg's U-Net with them "
            "reproduces the package's test output. Its percentile normalisation and inversion come back, and its task "
            "and classes; what bioimage.io cannot express (object size, post-processing, automatic inversion, "
            "despiking) comes from the model file a package exported by napari-unet-seg attaches. Needs the optional "
            "dependency: pip install 'napari-unet-seg[bioimageio]'."
        ),
    )
    parser.add_argument("package", metavar="PACKAGE", help="the package: a folder or .zip holding rdf.yaml")
    parser.add_argument("-o", "--output", default=None, metavar="MODEL_FILE",
                        help="the .safetensors model file to write (default: NAME.safetensors in your model "
                             "folder, where `unet-seg models` and the plugin find it)")
    parser.add_argument("--name", default=None, metavar="NAME",
                        help="the model's name (default: the output file's name, or the package's name)")
    parser.add_argument("--overwrite", action="store_true", help="replace the model file if it exists")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.output is not None and Path(args.output).is_dir():
        raise UserError(f"{args.output} is a folder; give the model file's name, e.g. "
                        f"{Path(args.output) / 'my-model.safetensors'}")
    output = None if args.output is None else model_file_path(args.output)
    if output is not None and Path(args.output).suffix and output.name != Path(args.output).name:
        print(f"unet-seg import-model: note: model files are safetensors (never pickles): writing {output.name}",
              file=sys.stderr)
    try:
        result = import_bioimageio(args.package, output, name=args.name, overwrite=args.overwrite)
    except ValueError as exc:  # ImportRefused: the package or the output, the user's to fix, in one line
        raise UserError(first_line(exc)) from None
    model = result.model
    kind = "instances" if model.task == "instances" else f"semantic, {len(model.class_names)} class(es)"
    print(f"wrote {result.path} (model '{model.name}', {kind}); it reproduces the package's test output "
          f"(largest difference {result.difference:.2g})")
    for note in result.notes:
        print(f"unet-seg import-model: note: {note}", file=sys.stderr)
    if result.path.parent == user_model_dir():
        print(f"use it by name: unet-seg predict --model '{model.name}' IMAGES -o OUT")
    return 0
