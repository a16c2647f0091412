"""Score the built-in model on what issue 19 asks of it, with default settings.

    python scripts/evaluate_builtin.py [--model nuclei] [--sets dsb,enlarged,bsst,mosaic,bands] [--flip-average]

- ``dsb``: dsb2018 ``val`` fluorescence images (never trained on);
- ``enlarged``: the same enlarged 2x, 3x and 4x (nuclei ~30-120 px across);
- ``bsst``: the fixed s-bsst265 validation split (``train_nuclei.BSST_VAL``, never
  trained on), per preparation;
- ``mosaic``: the plugin's 4096x4096 sample mosaic (black gaps between rows of
  tiles): AP50, objects mostly on zero pixels, seconds per megapixel;
- ``tiles``: where the mosaic loses: each sample image's tiles scored inside the
  mosaic and alone (objects touching a tile's edge left out of both), and the
  mosaic rebuilt from tiles each stretched to its own percentiles;
- ``bands``: two sample images stacked with a band between them (zeros,
  saturated, constant, another background level), foreground pixels in the band.

AP50 = TP / (TP + FP + FN), one-to-one matching at IoU > 0.5. Prints Markdown.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import numpy as np
import tifffile
from skimage.segmentation import clear_border
from skimage.transform import rescale

from napari_unet_seg import load_model, segment
import napari_unet_seg._sample_data as samples
from napari_unet_seg._sample_data import _pair, make_mosaic, mosaic_tiles, sample_stems
from napari_unet_seg.core.training.metrics import matching_accuracy

sys.path.insert(0, str(Path(__file__).parent))
from train_nuclei import BSST_VAL  # noqa: E402 - the one definition of the split


FLIPS = False  # --flip-average


def enlarged(image: np.ndarray, labels: np.ndarray, factor: float) -> tuple[np.ndarray, np.ndarray]:
    img = rescale(image.astype(np.float32), factor, order=1, preserve_range=True, anti_aliasing=False)
    lab = rescale(labels, factor, order=0, preserve_range=True, anti_aliasing=False).astype(labels.dtype)
    return np.clip(img, 0, 255).astype(np.uint8), lab


def dsb_val(data: Path) -> list[tuple[str, np.ndarray, np.ndarray]]:
    with open(data / "index.csv") as f:
        rows = [r for r in csv.DictReader(f) if r["split"] == "val" and r["kind"] == "fluorescence"]
    return [(r["name"], tifffile.imread(data / "images" / f"{r['name']}.tif"),
             tifffile.imread(data / "labels" / f"{r['name']}.tif")) for r in rows]


def score(model, items) -> tuple[float, float, int]:
    """Mean AP50, seconds per megapixel, images."""
    aps, seconds, pixels = [], 0.0, 0
    for _, image, labels in items:
        start = time.perf_counter()
        predicted = segment(image, model, flip_average=FLIPS)
        seconds += time.perf_counter() - start
        pixels += image.shape[0] * image.shape[1]
        aps.append(matching_accuracy(labels, predicted))
    return float(np.mean(aps)), seconds / (pixels / 1e6), len(aps)


def bands(model) -> list[tuple[str, int, int]]:
    """(band, foreground px in the band, objects mostly in it) for two sample images stacked around a band."""
    a, _ = _pair(sample_stems()[0])
    b, _ = _pair(sample_stems()[1])
    w = min(a.shape[1], b.shape[1])
    rng = np.random.default_rng(0)
    out = []
    for name, fill in [("zeros, 176 px", np.zeros((176, w))), ("zeros, 16 px", np.zeros((16, w))),
                       ("saturated (255), 176 px", np.full((176, w), 255)),
                       ("saturated (255), 16 px", np.full((16, w), 255)),
                       ("constant grey (100), 176 px", np.full((176, w), 100)),
                       ("other background level + noise, 176 px", rng.normal(10, 2, (176, w)))]:
        band = np.clip(fill, 0, 255).astype(np.uint8)
        image = np.concatenate([a[:, :w], band, b[:, :w]], 0)
        labels = segment(image, model, flip_average=FLIPS)
        inside = np.zeros(labels.shape, bool)
        inside[a.shape[0]:a.shape[0] + len(band)] = True
        ids, area = np.unique(labels, return_counts=True)
        in_band = np.bincount(labels[inside].ravel().astype(np.int64), minlength=len(area))
        mostly = int(((in_band[ids] > area / 2) & (ids > 0)).sum())
        out.append((name, int((labels[inside] > 0).sum()), mostly))
    return out


def mosaic_tiles_report(model) -> list[str]:
    """Markdown rows: per sample image, AP50 of its tiles inside the mosaic vs alone; and a per-tile-stretched mosaic.

    Objects touching a tile's edge are left out of both scores: in the mosaic a
    nucleus cut by the tile's edge abuts another image's content, which no
    real image holds.
    """
    image, _ = make_mosaic()
    labels = segment(image, model, flip_average=FLIPS)
    inside: dict[str, list[float]] = {}
    alone: dict[str, list[float]] = {}
    for tile in mosaic_tiles():
        (h, w), y, x = tile.image.shape, tile.top, tile.left
        truth = clear_border(tile.labels.copy())
        inside.setdefault(tile.stem, []).append(
            matching_accuracy(truth, clear_border(np.array(labels[y:y + h, x:x + w]))))
        own = segment(np.ascontiguousarray(tile.image), model, flip_average=FLIPS)
        alone.setdefault(tile.stem, []).append(matching_accuracy(truth, clear_border(own)))
    rows = [f"| {stem} | {len(inside[stem])} | {np.mean(inside[stem]):.3f} | {np.mean(alone[stem]):.3f} |"
            for stem in sorted(inside)]
    stretched_pair = samples._pair

    def stretched(stem: str) -> tuple[np.ndarray, np.ndarray]:
        img, lab = stretched_pair(stem)
        low, high = np.percentile(img, [1, 99.8])
        return np.clip((img.astype(np.float32) - low) / (high - low) * 200 + 1, 0, 255).astype(np.uint8), lab

    samples._pair = stretched
    try:
        image, truth = make_mosaic()
    finally:
        samples._pair = stretched_pair
    score_stretched = matching_accuracy(truth, segment(image, model, flip_average=FLIPS))
    return rows + [f"| the mosaic of tiles each stretched to its own 1-99.8 percentiles (every object) | 1 | "
                   f"{score_stretched:.3f} | |"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None)
    parser.add_argument("--dsb", type=Path, default=Path("../shared/data/dsb2018"))
    parser.add_argument("--bsst", type=Path, default=Path("../shared/data/s-bsst265"))
    parser.add_argument("--sets", default="dsb,enlarged,bsst,mosaic,bands")
    parser.add_argument("--limit", type=int, default=0, help="score only the first N dsb images (quick looks)")
    parser.add_argument("--flip-average", action="store_true", help="Segment's flip averaging (4x the network)")
    args = parser.parse_args()
    global FLIPS
    FLIPS = args.flip_average
    sets = set(args.sets.split(","))
    model = load_model(args.model)
    print(f"model: {args.model or 'nuclei (built-in)'}{', flip averaging' if FLIPS else ''}\n")
    print("| images | n | AP50 | s / Mpx |\n|---|---|---|---|")
    dsb = dsb_val(args.dsb)[:args.limit or None] if sets & {"dsb", "enlarged"} else []
    if "dsb" in sets:
        ap, speed, n = score(model, dsb)
        print(f"| dsb2018 val fluorescence | {n} | {ap:.3f} | {speed:.2f} |", flush=True)
    if "enlarged" in sets:
        for factor in (2, 3, 4):
            ap, speed, n = score(model, [(name, *enlarged(i, lab, factor)) for name, i, lab in dsb])
            print(f"| dsb2018 val fluorescence enlarged {factor}x | {n} | {ap:.3f} | {speed:.2f} |", flush=True)
    if "bsst" in sets:
        with open(args.bsst / "index.csv") as f:
            rows = [r for r in csv.DictReader(f) if r["name"] in BSST_VAL]
        groups: dict[str, list] = {}
        for r in rows:
            item = (r["name"], tifffile.imread(args.bsst / "images" / f"{r['name']}.tif"),
                    tifffile.imread(args.bsst / "labels" / f"{r['name']}.tif"))
            groups.setdefault(r["preparation"], []).append(item)
        every = [item for items in groups.values() for item in items]
        ap, speed, n = score(model, every)
        print(f"| s-bsst265 validation split, all | {n} | **{ap:.3f}** | {speed:.2f} |", flush=True)
        for preparation, items in sorted(groups.items()):
            ap, speed, n = score(model, items)
            print(f"| s-bsst265 val: {preparation} | {n} | {ap:.3f} | {speed:.2f} |", flush=True)
    if "mosaic" in sets:
        image, truth = make_mosaic()
        start = time.perf_counter()
        labels = segment(image, model, flip_average=FLIPS)
        speed = (time.perf_counter() - start) / (image.size / 1e6)
        ids, area = np.unique(labels, return_counts=True)
        on_zero = np.bincount(labels[image == 0].ravel().astype(np.int64), minlength=len(area))
        mostly = int(((on_zero[ids] > area / 2) & (ids > 0)).sum())
        print(f"| mosaic 4096x4096 ({mostly} objects mostly on zero pixels) | 1 | {matching_accuracy(truth, labels):.3f} "
              f"| {speed:.2f} |", flush=True)
    if "tiles" in sets:
        print("\n| sample image (objects off the tile's edge) | tiles | AP50 inside the mosaic | AP50 alone |"
              "\n|---|---|---|---|")
        for row in mosaic_tiles_report(model):
            print(row, flush=True)
    if "bands" in sets:
        print("\n| band between two sample images | foreground px in the band | objects mostly in it |\n|---|---|---|")
        for name, pixels, mostly in bands(model):
            print(f"| {name} | {pixels} | {mostly} |", flush=True)


if __name__ == "__main__":
    main()
