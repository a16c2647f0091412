"""Local (block) percentile normalisation against the one window per image: tried, not kept (model card).

    python scripts/experiment_local_normalisation.py [--variants "128,-1" "256,0.15" "512,0.15,3"]

Each variant is ``block,floor[,neighbours]``: percentiles in blocks of
``block`` px, interpolated between block centres; ``floor`` < 0 keeps the
whole image's span (only the low end is local), else the local span is
floored at ``floor`` x the whole image's; ``neighbours`` > 1 takes the
largest span of that many blocks around. The image is normalised so before
``segment()``, whose own window then changes little. Scored on tuning images
only, never on a validation split: 60 dsb2018 ``train`` fluorescence images,
the s-bsst265 images outside ``BSST_VAL``, and the sample mosaic.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

import numpy as np
import tifffile
from scipy import ndimage as ndi

from napari_unet_seg import load_model, segment
from napari_unet_seg._sample_data import make_mosaic
from napari_unet_seg.core.training.metrics import matching_accuracy

sys.path.insert(0, str(Path(__file__).parent))
from train_nuclei import BSST_VAL  # noqa: E402 - the one definition of the split


def local_normalise(image: np.ndarray, block: int, floor: float, neighbours: int = 1,
                    low_q: float = 1.0, high_q: float = 99.8) -> np.ndarray:
    image = image.astype(np.float32)
    height, width = image.shape
    ny, nx = -(-height // block), -(-width // block)
    low = np.zeros((ny, nx), np.float32)
    high = np.zeros((ny, nx), np.float32)
    for i in range(ny):
        for j in range(nx):
            low[i, j], high[i, j] = np.percentile(image[i * block:(i + 1) * block, j * block:(j + 1) * block],
                                                  [low_q, high_q])
    whole_low, whole_high = np.percentile(image, [low_q, high_q])
    whole_span = max(whole_high - whole_low, 1e-6)
    span = high - low
    if neighbours > 1:
        span = ndi.maximum_filter(span, size=neighbours, mode="nearest")
    span = np.maximum(span, floor * whole_span) if floor >= 0 else np.full_like(span, whole_span)
    rows = (np.arange(height, dtype=np.float32) + 0.5) / block - 0.5
    cols = (np.arange(width, dtype=np.float32) + 0.5) / block - 0.5
    grid = np.meshgrid(rows, cols, indexing="ij")
    low_map = ndi.map_coordinates(low, grid, order=1, mode="nearest")
    span_map = ndi.map_coordinates(span, grid, order=1, mode="nearest")
    return (image - low_map) / span_map


def tuning_sets(dsb: Path, bsst: Path) -> tuple[list, list]:
    with open(dsb / "index.csv") as f:
        rows = [r for r in csv.DictReader(f) if r["split"] == "train" and r["kind"] == "fluorescence"][:60]
    dsb_items = [(tifffile.imread(dsb / "images" / f"{r['name']}.tif"),
                  tifffile.imread(dsb / "labels" / f"{r['name']}.tif")) for r in rows]
    with open(bsst / "index.csv") as f:
        rows = [r for r in csv.DictReader(f) if r["name"] not in BSST_VAL]
    bsst_items = [(tifffile.imread(bsst / "images" / f"{r['name']}.tif"),
                   tifffile.imread(bsst / "labels" / f"{r['name']}.tif"), r["preparation"]) for r in rows]
    return dsb_items, bsst_items


def scores(model, normalise, dsb_items, bsst_items, mosaic) -> dict:
    start = time.perf_counter()
    out = {"dsb": np.mean([matching_accuracy(lab, segment(normalise(img), model)) for img, lab in dsb_items])}
    by_preparation: dict[str, list[float]] = {}
    for img, lab, preparation in bsst_items:
        by_preparation.setdefault(preparation, []).append(matching_accuracy(lab, segment(normalise(img), model)))
    out["bsst"] = np.mean([a for values in by_preparation.values() for a in values])
    out.update({name: np.mean(values) for name, values in by_preparation.items()})
    image, truth = mosaic
    out["mosaic"] = matching_accuracy(truth, segment(normalise(image), model))
    out = {name: round(float(value), 4) for name, value in out.items()}
    out["seconds"] = round(time.perf_counter() - start)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None)
    parser.add_argument("--dsb", type=Path, default=Path("../shared/data/dsb2018"))
    parser.add_argument("--bsst", type=Path, default=Path("../shared/data/s-bsst265"))
    parser.add_argument("--variants", nargs="*", default=["128,-1", "256,-1", "512,-1", "128,0.15", "256,0.15",
                                                         "512,0.15", "512,0.15,3"])
    args = parser.parse_args()
    model = load_model(args.model)
    dsb_items, bsst_items = tuning_sets(args.dsb, args.bsst)
    mosaic = make_mosaic()
    print("one window per image", json.dumps(scores(model, lambda x: x, dsb_items, bsst_items, mosaic)), flush=True)
    for variant in args.variants:
        block, floor, *more = variant.split(",")
        settings = (int(block), float(floor), int(more[0]) if more else 1)
        result = scores(model, lambda x, s=settings: local_normalise(x, *s), dsb_items, bsst_items, mosaic)
        print(variant, json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
