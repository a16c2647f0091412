"""Scribbles from scratch: a new 3-class task learned from a few painted lines in 2 minutes.

    nice -n 5 python benchmarks/bench_scribbles.py [--seconds 110] [--depth 4 --width 16] [--device auto]

A synthetic task: background (dark, noisy), class 1 = bright round blobs,
class 2 = dimmer striped patches. The training image carries scribbles only
(a short line across each object and a few strokes in the background, ~1-2 %
of its pixels; 0 = not annotated, 1 = background, k+1 = class k). The model
is scored on a *different* image with dense ground truth: mean IoU over the
3 classes (goal >= 0.85). Uses exactly the defaults of ``unet-seg train
--scribbles --init none``.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import numpy as np
from scipy import ndimage as ndi
from skimage.draw import line

from napari_unet_seg.core.training.finetune import default_config, finetune, starting_model
from napari_unet_seg.core.inference.pipeline import segment
from napari_unet_seg.core.model.devices import describe_device, resolve_device, resolve_precision
from napari_unet_seg.core.training.data import TrainingPair
from napari_unet_seg.core.training.metrics import mean_iou


def make_task(seed: int, size: int = 512) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(uint16 image, dense class ids, scribbles)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    classes = np.zeros((size, size), np.uint8)
    scribbles = np.zeros((size, size), np.uint8)
    image = rng.normal(200, 40, (size, size))
    image += 150 * np.sin(xx / size * 3 + rng.uniform(0, 6)) ** 2  # uneven background
    for _ in range(60):
        kind = 1 if rng.random() < 0.55 else 2
        cy, cx = rng.uniform(20, size - 20, 2)
        if kind == 1:
            r = rng.uniform(7, 16)
            shape = (yy - cy) ** 2 + (xx - cx) ** 2 <= r**2
        else:
            a, b = rng.uniform(10, 24, 2)
            shape = (np.abs(yy - cy) <= a) & (np.abs(xx - cx) <= b)
        if (classes[shape] > 0).any():
            continue
        classes[shape] = kind
        if kind == 1:
            image[shape] += rng.uniform(700, 1200)
        else:
            stripes = 0.5 + 0.5 * np.sin((yy + xx) / rng.uniform(2.0, 3.5))
            image[shape] += (rng.uniform(250, 450) * (0.3 + stripes))[shape]
        # a short scribble across the object's middle
        half = 5 if kind == 1 else 8
        y0, x0, y1, x1 = int(cy), int(cx - half), int(cy), int(cx + half)
        if rng.random() < 0.5:
            y0, x0, y1, x1 = int(cy - half), int(cx), int(cy + half), int(cx)
        rr, cc = line(y0, x0, y1, x1)
        scribbles[rr, cc] = kind + 1
    background = classes == 0
    far = ndi.binary_erosion(background, iterations=3)
    for _ in range(25):  # background strokes, kept away from objects
        y0, x0 = rng.integers(0, size, 2)
        ang = rng.uniform(0, np.pi)
        y1 = int(np.clip(y0 + 60 * np.sin(ang), 0, size - 1))
        x1 = int(np.clip(x0 + 60 * np.cos(ang), 0, size - 1))
        rr, cc = line(int(y0), int(x0), y1, x1)
        keep = far[rr, cc]
        scribbles[rr[keep], cc[keep]] = 1
    scribbles = ndi.grey_dilation(scribbles, size=(2, 2))  # a 2 px brush
    scribbles[classes != np.maximum(scribbles.astype(int) - 1, 0)] = 0  # never scribble across a border
    image = np.clip(image, 0, 65535).astype(np.uint16)
    return image, classes, scribbles


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=110.0)
    parser.add_argument("--encoder", default="nuclei", help="whose encoder a new model starts from ('none': random)")
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch", type=int, default=None, help="override the default batch size")
    parser.add_argument("--crop", type=int, default=None, help="override the default crop size")
    parser.add_argument("--lr", type=float, default=None, help="override the default learning rate")
    parser.add_argument("--device", default="auto", help="auto (cuda, then mps, then cpu), cpu, cuda or mps")
    args = parser.parse_args()
    device = resolve_device(args.device)
    print(f"device: {describe_device(device)}; precision {resolve_precision('auto', device)}", flush=True)
    image, _, scribbles = make_task(args.seed)
    test_image, test_classes, _ = make_task(args.seed + 100)
    annotated = (scribbles > 0).mean()
    print(f"training image 512x512, {annotated:.1%} of pixels scribbled; test image: another 512x512 (dense truth)")
    model = starting_model("none", task="semantic", classes=3, depth=args.depth, width=args.width,
                           encoder=args.encoder)
    config = default_config(scratch=True, task="semantic", scribbles=True, max_seconds=args.seconds)
    overrides = {"batch_size": args.batch, "crop_size": args.crop, "learning_rate": args.lr, "device": args.device}
    config = replace(config, **{k: v for k, v in overrides.items() if v is not None})
    print(f"batch {config.batch_size}, crop {config.crop_size}, lr {config.learning_rate}, "
          f"depth {args.depth}, width {args.width}")
    start = time.perf_counter()
    result = finetune(model, [TrainingPair(image, scribbles, name="scribbled")], scribbles=True, config=config,
                      progress=lambda r: print(f"  step {r.step} loss {r.loss:.3f} {r.seconds:.0f}s", flush=True)
                      if r.step % 50 == 0 else None)
    seconds = time.perf_counter() - start
    prediction = segment(test_image, model, device=args.device)
    miou = mean_iou(test_classes.astype(np.int64), prediction, 3)
    per_class = [((test_classes == c) & (prediction == c)).sum() / ((test_classes == c) | (prediction == c)).sum()
                 for c in range(3)]
    print("IoU per class (background, blobs, striped patches): " + ", ".join(f"{v:.3f}" for v in per_class))
    print(f"steps {result.train.steps}, training {result.train.seconds:.0f} s, total {seconds:.0f} s "
          f"(incl. validation and sanity check)")
    print(f"mean IoU on the unseen test image: {miou:.3f} (goal >= 0.85); warnings: {result.warnings or 'none'}")


if __name__ == "__main__":
    main()
