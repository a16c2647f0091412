"""``unet-seg measure``: one row per object of a labels file (and the intensities of its image) into a CSV."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ..core.batch.objects import INTENSITY, intensity_of
from ..core.common.atomic import check_writable_folder
from ..core.common.labels_checks import looks_like_an_intensity_image
from ..core.imageio import ImageFile, ImageReadError, read_image, read_labels_image
from ..core.inference.provenance import class_map_comments, csv_comments, read_provenance, records_classes
from ..core.measure.classes import check_class_map, check_class_names, class_counts, looks_like_objects
from ..core.measure.measurements import intensity_channels, measure_objects
from ..core.measure.table_csv import objects_csv_path, write_objects_csv
from .errors import UserError, require_positive


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "measure",
        help="measure every object of a labels image into a CSV table",
        description=(
            "Measure every object of a labels image (TIFF, PNG or zarr; stacks slice by slice) into a CSV: "
            "label, slice, centroid, area, perimeter, equivalent diameter, eccentricity, solidity, bounding box, "
            "and with --image the mean, median and integrated intensity of each of its channels. With --classes "
            "(a class model's output, or painted regions) each object gets the class most of its classified pixels "
            "have, its name and the share of the object it covers. With a pixel size (from the files, or "
            "--pixel-size) centroid and area are given in micrometres too. Large images "
            "are read block by block. Writes LABELS' <stem>_objects.csv unless -o says where."
        ),
    )
    parser.add_argument("labels", metavar="LABELS", help="labels image: one integer id per object, 0 = background")
    parser.add_argument("--image", action="append", default=None, metavar="IMAGE",
                        help="the image the labels were made from (same height and width): intensity columns, one "
                             "set per channel; repeat for several images (columns named after each file)")
    parser.add_argument("--classes", default=None, metavar="CLASSES",
                        help="a class map of the same size (0 = none, k = class k): a class model's output from "
                             "unet-seg predict, or regions painted in napari; adds class, class_name and "
                             "class_fraction columns")
    parser.add_argument("--class-names", default=None, metavar="NAME,NAME,...",
                        help="names of classes 1, 2, ... (default: the class model's names, when CLASSES was made "
                             "by unet-seg predict)")
    parser.add_argument("-o", "--output", default=None, metavar="CSV",
                        help="where to write the table (default: <stem>_objects.csv beside LABELS)")
    parser.add_argument("--pixel-size", type=float, nargs=2, default=None, metavar=("Y", "X"),
                        help="pixel height and width in micrometres (default: read from LABELS or IMAGE)")
    parser.add_argument("--overwrite", action="store_true", help="replace CSV if it exists")
    parser.set_defaults(run=run)


def _read(path: str, what: str, *, labels: bool = False) -> ImageFile:
    try:
        return read_labels_image(path) if labels else read_image(path)
    except ImageReadError as exc:
        raise UserError(f"{what}: {exc}") from None


def _provenance(labels: str) -> dict | None:
    """What made LABELS, when unet-seg did (the table's header says so too)."""
    try:
        return read_provenance(labels)
    except Exception:  # noqa: BLE001 - any labels file can be measured; only ours have a provenance
        return None


def _classes(args: argparse.Namespace, shape: tuple[int, ...]) -> tuple[object, list[str] | None]:
    """The class map (checked against the labels) and the classes' names, from --class-names or the file."""
    if args.classes is None:
        if args.class_names is not None:
            raise UserError("--class-names names the classes of --classes: give the class map with --classes")
        return None, None
    if _same_path(args.classes, args.labels):
        raise UserError(f"--classes {args.classes} is LABELS itself: give a class map (a class model's output, or "
                        "regions painted in napari)")
    made_by = _provenance(args.classes) or {}
    if made_by.get("kind") == "cells" or (made_by.get("model") or {}).get("task") == "instances" and \
            (made_by.get("settings") or {}).get("output", "instances") == "instances":
        raise UserError(f"{args.classes} holds objects (unet-seg made it as labels of objects), not classes: give a "
                        "class model's output (<stem>_classes.tif) or regions painted in napari")
    classes = _read(args.classes, "CLASSES", labels=True)
    if classes.rgb or classes.channel_axis is not None:
        raise UserError(f"{args.classes} is a colour or multichannel image, not a class map (one class per pixel)")
    try:
        check_class_map(classes.data, shape)
    except ValueError as exc:
        raise UserError(f"{args.classes}: {exc}") from None
    if args.class_names is not None:
        names = [name.strip() for name in args.class_names.split(",")]
        if not all(names):
            raise UserError(f"--class-names {args.class_names!r} has an empty name: give NAME,NAME,... for classes "
                            "1, 2, ...")
        try:
            check_class_names(names)
        except ValueError as exc:
            raise UserError(f"--class-names: {exc}") from None
        return classes.data, ["background", *names]
    model = made_by.get("model") or {}
    names = model.get("class_names")
    return classes.data, [str(n) for n in names] if isinstance(names, list) else None


def _column_name(path: str, taken: dict) -> str:
    """A file's stem as a column prefix, numbered when two files share it."""
    stem = Path(path).name.split(".")[0] or "image"
    name, n = stem, 2
    while name in taken:
        name, n = f"{stem}-{n}", n + 1
    return name


def run(args: argparse.Namespace) -> int:
    for value in args.pixel_size or ():
        require_positive(value, "--pixel-size")
    labels = _read(args.labels, "LABELS", labels=True)
    if labels.rgb or labels.channel_axis is not None:
        raise UserError(f"{args.labels} is a colour or multichannel image, not labels (one integer id per pixel)")
    images = {}
    image = None
    paths = args.image or []
    for path in paths:  # one image: "intensity_*" columns as in predict's tables; several: named after each file
        image = _read(path, "IMAGE")
        intensity = intensity_of(image, tuple(labels.data.shape))
        try:
            intensity_channels({INTENSITY: intensity}, tuple(labels.data.shape))
        except ValueError:
            raise UserError(f"{path} has shape {tuple(image.data.shape)} but {args.labels} has shape "
                            f"{tuple(labels.data.shape)}: they must match pixel for pixel") from None
        images[INTENSITY if len(paths) == 1 else _column_name(path, images)] = intensity
    classes, class_names = _classes(args, tuple(labels.data.shape))
    output = Path(args.output) if args.output else objects_csv_path(args.labels)
    if output.is_dir():  # before "exists": --overwrite would not help
        raise UserError(f"{output} is a folder; give a file name ending in .csv")
    if output.suffix.lower() != ".csv":  # e.g. "-o labels.tif --overwrite" would replace an image with a table
        raise UserError(f"{output} does not end in .csv: the table is written as CSV, so give a name like "
                        f"{output.with_suffix('.csv').name}")
    if output.exists() and not args.overwrite:
        raise UserError(f"{output} exists (use --overwrite to replace it)")
    if output.parent.exists() and not output.parent.is_dir():
        raise UserError(f"cannot write to {output.parent}: it exists and is not a folder")
    check_writable_folder(output.parent)  # before the work, not after
    pixel_size = tuple(args.pixel_size) if args.pixel_size else labels.pixel_size or (image and image.pixel_size)
    try:
        table = measure_objects(labels.data, images, pixel_size=pixel_size, classes=classes, class_names=class_names)
    except ValueError as exc:
        culprit = args.classes if "class map" in str(exc) else args.labels
        raise UserError(f"{culprit}: {exc}") from None
    if not len(table["label"]):
        raise UserError(f"{args.labels} holds no objects (every pixel is 0): nothing to measure, nothing written")
    if looks_like_an_intensity_image(labels.data):  # likely, not certain: said (after the refusals), table still made
        print(f"unet-seg measure: warning: {args.labels} changes value from pixel to pixel, like an image rather "
              "than labels: did you pick the image as labels?", file=sys.stderr)
    if classes is not None and looks_like_an_intensity_image(classes):
        print(f"unet-seg measure: warning: {args.classes} changes value from pixel to pixel, like an image rather "
              "than a class map: did you pick the image as --classes?", file=sys.stderr)
    elif classes is not None and looks_like_objects(table["class"]):
        print(f"unet-seg measure: warning: {args.classes} gives nearly every object a class of its own, like labels "
              "of objects rather than classes: did you give the labels as --classes?", file=sys.stderr)
    if records_classes(_provenance(args.labels)):
        print(f"unet-seg measure: warning: {args.labels} is a class model's output, so each class was measured as "
              "one object; for a class per object, give the objects' labels as LABELS and this file as --classes",
              file=sys.stderr)
    if args.class_names is not None and len(table["class"]) and int(table["class"].max()) >= len(class_names or []):
        print(f"unet-seg measure: warning: --class-names names {len(class_names or []) - 1} class(es), but "
              f"{args.classes} holds classes up to {int(table['class'].max())}: the others are called 'class K'",
              file=sys.stderr)
    comments = {"labels": Path(args.labels).name, "image": ", ".join(Path(p).name for p in paths) or "none",
                "pixel_size": f"{pixel_size[0]:g} x {pixel_size[1]:g} um" if pixel_size else "unknown",
                **({"classes": Path(args.classes).name} if args.classes else {}),
                **class_map_comments(_provenance(args.classes) if args.classes else None)}
    write_objects_csv(output, table, {**comments, **csv_comments(_provenance(args.labels))})
    slices = f" in {len(set(table['slice'].tolist()))} slices" if "slice" in table else ""
    counts = class_counts(table)
    print(f"{len(table['label'])} objects{slices}{f' ({counts})' if counts else ''} -> {output}")
    return 0



def _same_path(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False
