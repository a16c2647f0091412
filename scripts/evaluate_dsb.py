"""Score a model (and the classical baseline) on the dsb2018 ``val`` split.

    python scripts/evaluate_dsb.py --data ../shared/data/dsb2018 [--model nuclei]

Besides the plain val images it runs stress variants of the fluorescence
images that users' data look like: nuclei rescaled (0.4x to 2.5x, i.e. ~8 to
~80 px across), every other nucleus made 10x dimmer than its neighbours,
16-bit data with uneven background and noise, a 12-bit camera with hot
pixels, and low light (photon noise: 50 and 20 photons at the brightest pixel). Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

import numpy as np
import tifffile
from skimage.transform import rescale

from napari_unet_seg import load_model, segment
from napari_unet_seg.core.inference.baseline import classical_nuclei
from napari_unet_seg.core.training.metrics import matching_accuracy, dice


def rescaled(image: np.ndarray, labels: np.ndarray, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """An 8-bit image and its labels resized together, as if taken at another magnification."""
    channels = -1 if image.ndim == 3 else None
    img = rescale(image.astype(np.float32), scale, order=1, preserve_range=True, anti_aliasing=scale < 1,
                  channel_axis=channels)
    lab = rescale(labels, scale, order=0, preserve_range=True, anti_aliasing=False).astype(labels.dtype)
    return img.astype(np.uint8), lab


def variants(image: np.ndarray, labels: np.ndarray, rng: np.random.Generator, camera_rng: np.random.Generator):
    """(name, image, labels) stress variants of one fluorescence image.

    The camera variants draw from their own generator, so adding them left the older variants' noise unchanged.
    """
    yield "plain", image, labels
    for scale in (0.4, 2.5):
        yield f"scale {scale}x", *rescaled(image, labels, scale)
    background = np.percentile(image, 5)
    dim = image.astype(np.float32)
    odd = (labels % 2 == 1) & (labels > 0)
    dim[odd] = background + (dim[odd] - background) * 0.1
    yield "every other nucleus 10x dimmer", dim.astype(np.uint8), labels
    h, w = image.shape
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    uneven = image.astype(np.float32) * 200 + 3000 * (0.5 + xx + 0.5 * yy) + rng.normal(0, 400, image.shape)
    yield "16-bit, uneven background, noise", np.clip(uneven, 0, 65535).astype(np.uint16), labels
    yield "12-bit, 0.1 % hot pixels", hot_pixels(image, labels, camera_rng), labels
    yield "low light (50 photons, Poisson)", low_light(image, 50, camera_rng), labels
    yield "very low light (20 photons, Poisson)", low_light(image, 20, camera_rng), labels


def low_light(image: np.ndarray, photons: float, rng: np.random.Generator) -> np.ndarray:
    """The image as a photon-counting camera would record it with ``photons`` at the brightest pixel (Poisson)."""
    fifty = image.astype(np.float32) / max(float(image.max()), 1.0) * 50  # 50 photons at the brightest
    return rng.poisson(fifty * (photons / 50) + 0.05 * photons).astype(np.uint16)  # a 5 % background glow


def hot_pixels(image: np.ndarray, labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A 12-bit camera image with 0.1 % hot pixels, 1-3x the nuclei's 99th percentile, clipped at 4095."""
    out = image.astype(np.uint16) * 16
    hot = rng.random(image.shape) < 0.001
    bright = np.percentile(out[labels > 0], 99) if (labels > 0).any() else out.max()
    out[hot] = np.clip(bright * rng.uniform(1, 3, int(hot.sum())), 0, 4095)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("../shared/data/dsb2018"))
    parser.add_argument("--model", default=None)
    parser.add_argument("--no-baseline", action="store_true")
    args = parser.parse_args()
    model = load_model(args.model)
    with open(args.data / "index.csv") as f:
        rows = [r for r in csv.DictReader(f) if r["split"] == "val"]
    rng, camera_rng = np.random.default_rng(0), np.random.default_rng(1)
    scores: dict[tuple[str, str], list[list[float]]] = {}
    seconds = []
    for row in rows:
        image = tifffile.imread(args.data / "images" / f"{row['name']}.tif")
        labels = tifffile.imread(args.data / "labels" / f"{row['name']}.tif")
        cases = variants(image, labels, rng, camera_rng) if row["kind"] == "fluorescence" else [("plain", image, labels)]
        for name, img, lab in cases:
            rgb = img.ndim == 3
            start = time.perf_counter()
            pred = segment(img, model, rgb=rgb)
            if name == "plain":
                seconds.append((time.perf_counter() - start) / (img.shape[0] * img.shape[1] / 1e6))
            row_scores = [matching_accuracy(lab, pred), dice(lab, pred)]
            if not args.no_baseline:
                base = classical_nuclei(img, rgb=rgb)
                row_scores += [matching_accuracy(lab, base), dice(lab, base)]
            scores.setdefault((row["kind"], name), []).append(row_scores)
    print(f"model: {model.name} ({model.path})")
    columns = ["AP50", "Dice"] + ([] if args.no_baseline else ["baseline AP50", "baseline Dice"])
    print("| images | n | " + " | ".join(columns) + " |")
    print("|---|---|" + "---|" * len(columns))
    for (kind, name), values in scores.items():
        means = " | ".join(f"{m:.3f}" for m in np.mean(values, axis=0))
        print(f"| {kind}, {name} | {len(values)} | {means} |")
    print(f"\nmodel speed on plain val images: {np.median(seconds):.2f} s per megapixel (median)")


if __name__ == "__main__":
    main()
