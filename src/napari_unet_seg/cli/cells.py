"""``unet-seg cells``: whole cells grown from a nuclei labels file over a cell stain, each with its nucleus's id."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

from ..core.batch.cells_output import cells_path
from ..core.batch.objects import intensity_of
from ..core.common.atomic import check_writable_folder
from ..core.common.labels_checks import looks_like_an_intensity_image
from ..core.imageio import (
    ImageFile,
    ImageReadError,
    read_image,
    read_labels_image,
    read_tiff_provenance,
    write_labels_tiff,
)
from ..core.inference.cells import BOUNDARIES, CellOptions, cells_note, check_cell_options, grow_cells_noted
from ..core.inference.provenance import describe_cells
from .errors import UserError, refuse_an_input, require_positive



def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "cells",
        help="grow whole cells from segmented nuclei over a cell stain (same ids: linked)",
        description=(
            "Grow each nucleus of NUCLEI (a labels file, e.g. from unet-seg predict) into its whole cell over a "
            "cytoplasm or membrane stain (--image; --channel picks one channel of a multichannel file). A cell "
            "takes its nucleus's id, so the two tables (unet-seg measure) join on 'label'. Where cells are is "
            "the stain above an automatic threshold (--threshold to set one), or --mask (e.g. a class model's "
            "output; nonzero = cell). Without --image, each nucleus takes the pixels nearest to it up to "
            "--max-distance. Writes <stem>_cells.tif beside NUCLEI unless -o says where."
        ),
    )
    parser.add_argument("nuclei", metavar="NUCLEI", help="nuclei labels: one integer id per nucleus, 0 = background")
    parser.add_argument("--image", default=None, metavar="IMAGE", help="the cell stain (same height and width)")
    parser.add_argument("--channel", type=int, default=None, metavar="K",
                        help="the stain's channel (from 0) in a multichannel IMAGE (needed there) or a colour one "
                             "(default for colour: the mean of its colours)")
    parser.add_argument("--boundary", choices=BOUNDARIES, default=None,
                        help="cytoplasm: cells are bright, dim seams between them (default with --image); "
                             "membrane: bright outlines; distance: nearest nucleus (default without --image)")
    parser.add_argument("--threshold", type=float, default=None, metavar="F",
                        help="stain level where cells start, as a fraction (0-1) of its range (default: Otsu)")
    parser.add_argument("--mask", default=None, metavar="MASK",
                        help="where cells are (nonzero), instead of a threshold")
    parser.add_argument("--max-distance", type=float, default=None, metavar="PX",
                        help="largest distance from a nucleus to its cell's edge, in pixels")
    parser.add_argument("-o", "--output", default=None, metavar="TIF",
                        help="where to write the cell labels (default: <stem>_cells.tif beside NUCLEI)")
    parser.add_argument("--overwrite", action="store_true", help="replace the output if it exists")
    parser.set_defaults(run=run)


def _read(path: str, what: str, *, labels: bool = False) -> ImageFile:
    try:
        return read_labels_image(path) if labels else read_image(path)
    except ImageReadError as exc:
        raise UserError(f"{what}: {exc}") from None


def _stain(image: ImageFile, channel: int | None, name: str, nuclei_shape: tuple[int, ...]) -> np.ndarray:
    """The image as one stain: channel ``channel`` of a multichannel image (needed), or a colour image's mean.

    Channels are read as the measurements read them (:func:`intensity_of`: a (C, Y, X) TIFF is channels).
    """
    shape, plane = tuple(image.data.shape), tuple(nuclei_shape[-2:])
    if len(nuclei_shape) == 3 and shape == plane:  # not channels: one plane for a stack
        raise UserError(f"{name} has shape {plane} but the nuclei have {nuclei_shape}: give the stain's "
                        "stack, with a plane for each plane of the nuclei")
    if shape[-2:] != plane and shape[-3:-1] != plane:  # neither channels first nor last (colour) fit the nuclei
        raise UserError(f"{name} has shape {shape} but the nuclei have {nuclei_shape}: the stain must cover the "
                        "nuclei's pixels, one for one")
    data = np.asarray(intensity_of(image, nuclei_shape))
    if data.ndim == len(nuclei_shape):
        if channel is not None:
            raise UserError(f"{name} has one channel: --channel is for multichannel or colour images")
        return data
    if channel is None:
        if image.rgb:
            return data  # colour: the mean of its channels
        raise UserError(f"{name} has {data.shape[-1]} channels: choose the cytoplasm or membrane stain's with "
                        "--channel K (from 0)")
    if not 0 <= channel < data.shape[-1]:
        raise UserError(f"--channel {channel} is out of range: {name} has channels 0 to {data.shape[-1] - 1}")
    return data[..., channel]


def run(args: argparse.Namespace) -> int:
    require_positive(args.max_distance, "--max-distance")
    nuclei = _read(args.nuclei, "NUCLEI", labels=True)
    if nuclei.rgb or nuclei.channel_axis is not None:
        raise UserError(f"{args.nuclei} is a colour or multichannel image, not labels (one integer id per pixel)")
    image = _read(args.image, "IMAGE") if args.image else None
    if image is None and args.channel is not None:
        raise UserError("--channel picks a channel of --image: give --image too")
    if args.threshold is not None and args.mask:  # taken silently, it changed nothing
        raise UserError("--threshold sets where cells are from the stain, and --mask says it already: give one of "
                        "them")
    mask = _read(args.mask, "MASK") if args.mask else None
    boundary = args.boundary or ("cytoplasm" if image is not None else "distance")
    options = CellOptions(boundary=boundary, threshold=args.threshold, max_distance=args.max_distance)
    try:
        check_cell_options(options, image is not None, mask is not None)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    output = Path(args.output) if args.output else cells_path(args.nuclei)
    if output.is_dir():
        raise UserError(f"{output} is a folder; give a file name ending in .tif")
    if output.suffix.lower() not in (".tif", ".tiff"):
        raise UserError(f"{output} does not end in .tif: the cells are written as a TIFF, so give a name like "
                        f"{output.with_suffix('.tif').name}")
    refuse_an_input(output, (args.nuclei, args.image, args.mask))
    if output.exists() and not args.overwrite:
        raise UserError(f"{output} exists (use --overwrite to replace it)")
    check_writable_folder(output.parent)
    stain = None if image is None else _stain(image, args.channel, args.image, tuple(nuclei.data.shape))
    try:
        cells, notes = grow_cells_noted(np.asarray(nuclei.data), stain,
                                        mask=None if mask is None else np.asarray(mask.data), options=options)
    except ValueError as exc:  # the file at fault by its name, not the nuclei's
        said = str(exc).replace("the cell image", str(args.image)).replace("the cell mask", str(args.mask))
        raise UserError(said if said != str(exc) else f"{args.nuclei}: {exc}") from None
    for note in notes:
        print(f"unet-seg cells: note: {note}", file=sys.stderr)
    if looks_like_an_intensity_image(nuclei.data):  # likely, not certain: said, as measure and export say it
        print(f"unet-seg cells: warning: {args.nuclei} changes value from pixel to pixel, like an image rather "
              "than labels: did you give the image as NUCLEI?", file=sys.stderr)
    nuclei_record = _provenance(args.nuclei)
    if image is not None and _segmented_from(nuclei_record, args.image, args.channel):
        print(f"unet-seg cells: warning: {args.image}{'' if args.channel is None else f' channel {args.channel}'} "
              "is the image the nuclei were segmented from: cells grow over the cytoplasm or membrane stain, so "
              "give that one (--channel K for a channel of the same file)", file=sys.stderr)
    record = describe_cells(options, nuclei_path=args.nuclei, image_path=args.image, channel=args.channel,
                            mask_path=args.mask, nuclei_record=nuclei_record)
    write_labels_tiff(output, cells, pixel_size=nuclei.pixel_size or (image.pixel_size if image else None),
                      provenance=record, stack_axis=_stack_axis(nuclei))
    print(f"{cells_note(nuclei.data, cells)} -> {output}")
    return 0


def _segmented_from(record: dict | None, image: str, channel: int | None) -> bool:
    """Whether NUCLEI's provenance says it was segmented from IMAGE (that channel of it, or all of it)."""
    source = (record or {}).get("input")
    if not source or (record.get("settings") or {}).get("channel") != channel:
        return False
    try:
        return os.path.samefile(source, image)
    except OSError:
        return False


def _stack_axis(nuclei: ImageFile) -> str:
    """A time-lapse's cells stay frames, as its nuclei file says."""
    return "T" if nuclei.stack and str(nuclei.metadata.get("axes") or "").upper()[:1] == "T" else "Z"


def _provenance(path: str) -> dict | None:
    try:
        return read_tiff_provenance(path)
    except Exception:  # noqa: BLE001 - any labels file can be grown; only ours carry a provenance
        return None
