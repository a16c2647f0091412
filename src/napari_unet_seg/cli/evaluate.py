"""``unet-seg evaluate``: score a model on your own annotated images (AP@0.5 and Dice)."""

from __future__ import annotations

import argparse
import csv
import sys

from pathlib import Path

import numpy as np

from ..core.common.atomic import atomic_path, check_writable_folder
from ..core.imageio import ImageReadError, read_image, read_labels_image
from ..core.inference.baseline import classical_nuclei
from ..core.inference.options import RunOptions
from ..core.inference.pipeline import segment_image
from ..core.model.registry import cached_model
from ..core.common.labels_checks import looks_like_an_intensity_image
from ..core.training.metrics import dice, matching_accuracy
from .errors import UserError, refuse_an_input, require_positive


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "evaluate",
        help="score a model on annotated images (AP at IoU 0.5, foreground Dice)",
        description=(
            "Segment each image and compare with its ground-truth instance labels (0 = background, one id per "
            "object). AP@0.5 is TP/(TP+FP+FN) with one-to-one matching at IoU > 0.5, as in the 2018 Data Science "
            "Bowl. Prints one line per image and the means."
        ),
    )
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="image files")
    parser.add_argument("--labels", nargs="+", required=True, metavar="LABELS",
                        help="ground-truth label files, in the same order as the images")
    parser.add_argument("--model", default=None, metavar="NAME|PATH", help="model to score (default: nuclei)")
    parser.add_argument("--diameter", type=float, default=None, metavar="PX", help="object diameter, as in predict")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    parser.add_argument("--baseline", action="store_true",
                        help="also score the classical Gaussian + Otsu + distance-watershed pipeline")
    parser.add_argument("--csv", type=Path, default=None, metavar="FILE", help="write per-image scores to a CSV file")
    parser.add_argument("--flip-average", action="store_true", help="mirror averaging, as in predict")
    parser.add_argument("--overwrite", action="store_true", help="replace the --csv file if it exists")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    require_positive(args.diameter, "--diameter")
    if len(args.images) != len(args.labels):
        raise UserError(f"got {len(args.images)} images but {len(args.labels)} label files; give one per image")
    model = cached_model(args.model)
    if args.csv:  # before the work, not after it fails at the end; never over an input, nor a file unasked
        if args.csv.is_dir() or args.csv.suffix.lower() != ".csv":
            raise UserError(f"{args.csv} is {'a folder' if args.csv.is_dir() else 'not a .csv name'}; give a file "
                            "name ending in .csv")
        refuse_an_input(args.csv, (*args.images, *args.labels), "--csv")
        if args.csv.exists() and not args.overwrite:
            raise UserError(f"{args.csv} exists (use --overwrite to replace it)")
        check_writable_folder(args.csv.resolve().parent)
    rows = []
    for image_path, labels_path in zip(args.images, args.labels):
        if Path(image_path).resolve() == Path(labels_path).resolve() and not str(image_path).endswith(".zarr"):
            raise UserError(f"{labels_path} is given as the image and as its ground truth: give the labels file "
                            "for --labels")
        try:
            image, truth = read_image(image_path), read_labels_image(labels_path)  # an OME-Zarr: its labels
        except ImageReadError as exc:
            raise UserError(str(exc)) from None
        truth_data = np.asarray(truth.data)
        if image.stack or truth_data.shape != image.plane_shape:
            raise UserError(f"{Path(labels_path).name}: shape {truth_data.shape} does not match image {image.plane_shape}")
        if not (np.issubdtype(truth_data.dtype, np.integer) or truth_data.dtype == bool):
            raise UserError(f"{Path(labels_path).name} holds {truth_data.dtype} values; ground-truth labels are whole "
                            "numbers (0 = background, one id per object)")
        if truth_data.size and truth_data.min() < 0:
            raise UserError(f"{Path(labels_path).name} holds negative values; labels are 0 (background) or an id")
        if looks_like_an_intensity_image(truth_data):
            print(f"unet-seg evaluate: warning: {Path(labels_path).name} changes value from pixel to pixel, like an "
                  "image rather than labels: are the arguments in the right order?", file=sys.stderr)
        try:
            options = RunOptions(diameter=args.diameter, device=args.device, flip_average=args.flip_average)
            result = segment_image(image.data, options, model=model, rgb=image.rgb, image_path=image_path)
        except ValueError as exc:  # e.g. a diameter that would enlarge the image beyond reason
            raise UserError(f"{Path(image_path).name}: {exc}") from None
        for note in result.notes:  # e.g. NaN pixels: the scores are of an image read otherwise than it is stored
            print(f"unet-seg evaluate: note: {Path(image_path).name}: {note}", file=sys.stderr)
        pred = np.asarray(result.labels)
        row = {"image": str(image_path), "ap50": matching_accuracy(truth_data, pred), "dice": dice(truth_data, pred)}
        if args.baseline:
            base = classical_nuclei(image.data, rgb=image.rgb)
            row.update(baseline_ap50=matching_accuracy(truth_data, base), baseline_dice=dice(truth_data, base))
        rows.append(row)
        extra = f"  baseline AP50 {row['baseline_ap50']:.3f} Dice {row['baseline_dice']:.3f}" if args.baseline else ""
        print(f"{Path(image_path).name}: AP50 {row['ap50']:.3f} Dice {row['dice']:.3f}{extra}")
    means = {k: float(np.mean([r[k] for r in rows])) for k in rows[0] if k != "image"}
    shown = {"ap50": "AP50", "dice": "Dice", "baseline_ap50": "baseline AP50", "baseline_dice": "baseline Dice"}
    plural = "image" if len(rows) == 1 else "images"
    print("mean: " + "  ".join(f"{shown[k]} {v:.3f}" for k, v in means.items()) + f"  ({len(rows)} {plural})")
    if args.csv:
        with atomic_path(args.csv) as tmp, open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    return 0


