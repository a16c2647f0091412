"""``unet-seg export``: a labels file -> ImageJ/Fiji ROIs, QuPath GeoJSON or OME-Zarr, through core.export.

Labels that ``unet-seg predict`` (or the batch) wrote carry their provenance;
the export carries it on.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path
from typing import Any

from ..core.common.errors import first_line
from ..core.common.labels_checks import looks_like_an_intensity_image
from ..core.export import write_geojson, write_imagej_rois, write_ome_zarr
from ..core.export.target import FORMAT_NAMES, FORMAT_SUFFIXES, has_format_suffix
from ..core.imageio import ImageFile, changed_since_written, read_image, read_labels_image
from ..core.inference.provenance import marked_edited, read_provenance
from ..core.measure.table_csv import is_objects_csv, objects_csv_path, read_objects_csv
from ..core.measure.table_match import stale_table_reason
from .errors import UserError, refuse_an_input, require_positive

SUFFIXES = {"imagej": "_rois.zip", "geojson": ".geojson", "ome-zarr": ".ome.zarr"}


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "export",
        help="export a labels image as ImageJ/Fiji ROIs, QuPath GeoJSON or OME-Zarr",
        description=(
            "Export a labels image (TIFF, PNG or zarr, e.g. the <stem>_labels.tif of `unet-seg predict`). "
            "imagej: a ROI set (.zip) for Fiji's ROI Manager, one ROI per object, named by label id (stacks: "
            "the ROI's slice is set). geojson: a FeatureCollection for QuPath (File > Import objects), one "
            "detection per object, in pixel coordinates. ome-zarr: an OME-Zarr (NGFF 0.4) folder with the image "
            "(--image) and the labels as a `labels` group, with pyramids and the physical pixel size, for "
            "napari-ome-zarr, Fiji/MoBIE and QuPath. Nothing existing is overwritten without --overwrite."
        ),
    )
    parser.add_argument("labels", metavar="LABELS", help="labels image: TIFF, PNG or zarr")
    parser.add_argument("--format", required=True, choices=sorted(SUFFIXES), dest="format",
                        help="what to write")
    parser.add_argument("-o", "--output", default=None, metavar="OUT",
                        help="file or folder to write (default: beside LABELS, <stem>_rois.zip, <stem>.geojson or "
                             "<stem>.ome.zarr)")
    parser.add_argument("--image", default=None, metavar="IMAGE",
                        help="ome-zarr: the image the labels belong to (same height, width and slices)")
    parser.add_argument("--pixel-size", type=float, nargs=2, default=None, metavar=("Y", "X"),
                        help="ome-zarr: pixel size in micrometres (default: read from LABELS or IMAGE if they say)")
    parser.add_argument("--measurements", default=None, metavar="CSV",
                        help="geojson, ome-zarr: an objects table to attach to each object (default: the "
                             "<stem>_objects.csv beside LABELS, when `unet-seg predict` or `measure` wrote one)")
    parser.add_argument("--stack-axis", default=None, choices=("z", "t"),
                        help="a stack's slices are z planes or time points (default: as the labels file says, "
                             "else z)")
    parser.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.pixel_size is not None:
        for value in args.pixel_size:
            require_positive(value, "--pixel-size")
    if args.image is not None and args.format != "ome-zarr":
        raise UserError("--image is used by --format ome-zarr only")
    if args.pixel_size is not None and args.format != "ome-zarr":  # taken silently, it changed nothing
        raise UserError("--pixel-size is used by --format ome-zarr only: ImageJ ROIs and GeoJSON outlines are in "
                        "pixels (Fiji and QuPath apply the image's own calibration)")
    if args.measurements is not None and args.format == "imagej":
        raise UserError("--measurements is used by --format geojson and ome-zarr only")
    if args.stack_axis is not None and args.format == "imagej":  # ROIs carry their stack position, which is either
        raise UserError("--stack-axis is used by --format geojson and ome-zarr only (an ImageJ ROI's stack position "
                        "is the same for slices and frames)")
    labels = _read(args.labels, "labels", labels=True)
    if labels.rgb or labels.channel_axis is not None:
        raise UserError(f"{args.labels}: holds colour or several channels; labels have one value per pixel")
    output = Path(args.output) if args.output else default_output(Path(args.labels), args.format)
    refuse_an_input(output, (args.labels, args.image, args.measurements))
    if not has_format_suffix(output, args.format):  # a ROI set named .geojson is opened by no tool
        raise UserError(f"{output} does not end in {' or '.join(FORMAT_SUFFIXES[args.format])}: --format "
                        f"{args.format} writes {FORMAT_NAMES[args.format]}")
    provenance = _provenance(args.labels)
    if provenance is not None and changed_since_written(labels.data, provenance):
        provenance = marked_edited(provenance)  # corrected since: the recorded command no longer makes them
    if args.stack_axis is None:  # a time-lapse's labels (their file says T, or their frames were linked) stay frames
        linked = bool(((provenance or {}).get("settings") or {}).get("link_frames"))
        frames = linked or str(labels.metadata.get("axes") or "").lower()[:1] == "t"
        args.stack_axis = "t" if frames and labels.stack else "z"
    try:
        if args.format == "imagej":
            write_imagej_rois(output, labels.data, provenance=provenance, overwrite=args.overwrite)
        elif args.format == "geojson":
            write_geojson(output, labels.data, measurements=_measurements(args, labels.data),
                          stack_axis=args.stack_axis,
                          provenance=provenance, overwrite=args.overwrite)
        else:
            image = _read(args.image, "image") if args.image else None
            pixel_size = args.pixel_size or labels.pixel_size or (image.pixel_size if image else None)
            write_ome_zarr(output, labels.data, image.data if image else None, rgb=bool(image and image.rgb),
                           channel_axis=image.channel_axis if image else None, pixel_size=pixel_size,
                           stack_axis=args.stack_axis, measurements=_measurements(args, labels.data),
                           provenance=provenance,
                           overwrite=args.overwrite)
    except ValueError as exc:
        raise UserError(first_line(exc)) from None
    if looks_like_an_intensity_image(labels.data):  # likely, not certain: said after the refusals, export made
        print(f"unet-seg export: warning: {args.labels} changes value from pixel to pixel, like an image rather "
              "than labels: did you pick the image as labels?", file=sys.stderr)
    print(f"wrote {output}")
    return 0


def default_output(labels: Path, fmt: str) -> Path:
    """Beside the labels file: ``cells_labels.tif`` -> ``cells_labels_rois.zip``, ``.geojson``, ``.ome.zarr``."""
    stem = labels.name
    for suffix in (".tiff", ".tif", ".png", ".zarr", ".ome"):
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
    return labels.with_name(stem + SUFFIXES[fmt])


def _measurements(args: argparse.Namespace, labels: Any) -> dict | None:
    """The objects table given, else ours beside the labels if there is one, else None; a table that no longer
    describes the labels (corrected since it was measured) is refused when given, passed over (said) when found."""
    if args.measurements is None:
        path = objects_csv_path(args.labels)
        if not is_objects_csv(path):
            return None
    else:
        path = Path(args.measurements)
        if not path.is_file():
            raise UserError(f"--measurements: {path}: no such file")
    try:
        table, comments = read_objects_csv(path)
    except (UnicodeDecodeError, csv.Error):
        raise UserError(f"--measurements: {path} is not a CSV table (give the <stem>_objects.csv of "
                        "unet-seg measure, a batch or the Measurements dock)") from None
    made_from = comments.get("labels", "")
    if Path(made_from).suffix.lower() in (".tif", ".tiff", ".png", ".zarr") and \
            made_from != Path(args.labels).name:
        raise UserError(f"--measurements: {path.name} measures {made_from}, not {Path(args.labels).name}: give "
                        "the table of these labels (ids would be matched with another image's objects)")
    stale = stale_table_reason(table, labels) if table else None
    if stale is not None:
        remeasure = f"measure them again first (unet-seg measure {args.labels} --image IMAGE --overwrite)"
        if args.measurements is not None:
            raise UserError(f"--measurements: {path.name} no longer describes {Path(args.labels).name} ({stale}): "
                            f"the labels were changed after it was made; {remeasure}")
        print(f"unet-seg export: warning: {path.name} was not attached: it no longer describes the labels ({stale}); "
              f"{remeasure}", file=sys.stderr)
        return None
    return table or None


def _provenance(path: str) -> dict | None:
    """The provenance recorded in our labels file; None for labels from elsewhere (a PNG, someone else's TIFF)."""
    try:
        return read_provenance(path)
    except (ValueError, OSError):  # not a TIFF (tifffile's error is a ValueError), or unreadable metadata
        return None


def _read(path: str, what: str, *, labels: bool = False) -> ImageFile:
    try:
        return read_labels_image(path) if labels else read_image(path)
    except ValueError as exc:
        raise UserError(f"{what}: {first_line(exc)}") from None
