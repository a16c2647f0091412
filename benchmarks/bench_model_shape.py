"""Accuracy vs speed of U-Net shapes under the same training budget on this CPU.

    python benchmarks/bench_model_shape.py --seconds 450 [--device auto]

Each shape (depth, width) is trained from scratch with the built-in model's
recipe (scripts/train_nuclei.py: dsb2018 train split, same augmentation,
bf16 + channels_last, one thread) for the same wall-clock budget, then scored
by AP50 / Dice on the held-out *train* images (val is never used) with the
default post-processing, and timed on a 1024x1024 image. Equal time, not
equal steps, is the question a CPU user faces: a wider net learns more per
step but takes fewer steps.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

from train_nuclei import holdout_split, load_split, typical_diameter

from napari_unet_seg import segment
from napari_unet_seg.core.training.augment import AugmentConfig
from napari_unet_seg.core.training.metrics import matching_accuracy, dice
from napari_unet_seg.core.model.modelfile import new_model
from napari_unet_seg.core.inference.tiling import predict_tiled
from napari_unet_seg.core.model.devices import describe_device, resolve_device, resolve_precision
from napari_unet_seg.core.training.loop import TrainConfig, train

SHAPES = [(4, 8), (4, 16), (3, 32), (4, 24)]


def seconds_per_megapixel(model, device: str = "auto") -> float:
    image = np.random.default_rng(0).random((1, 1024, 1024), dtype=np.float32)
    predict_tiled(model.net, image[:, :256, :256], device=device)  # warm-up
    start = time.perf_counter()
    predict_tiled(model.net, image, device=device)  # logits back on the host: the GPU has finished
    return (time.perf_counter() - start) / 1.048576


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("../shared/data/dsb2018"))
    parser.add_argument("--seconds", type=float, default=450, help="training budget per shape")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--shapes", default=",".join(f"{d}x{w}" for d, w in SHAPES), help="e.g. 4x16,3x32")
    parser.add_argument("--device", default="auto", help="auto (cuda, then mps, then cpu), cpu, cuda or mps")
    args = parser.parse_args()
    device = resolve_device(args.device)
    print(f"device: {describe_device(device)}; precision {resolve_precision('auto', device)}", flush=True)
    torch.set_num_threads(args.threads)
    shapes = [tuple(int(v) for v in s.split("x")) for s in args.shapes.split(",")]
    train_pairs, held = holdout_split(load_split(args.data, "train"), 24, 0)
    augment = AugmentConfig(scale_range=(0.45, 2.4), dim_range=(0.1, 0.6), max_noise=0.05)
    print(f"torch {torch.__version__}, {args.threads} thread(s), {args.seconds:.0f} s of training per shape")
    print("| depth, width | parameters | file (fp32) | steps in budget | held-out AP50 | held-out Dice | s / Mpx |")
    print("|---|---|---|---|---|---|---|")
    for depth, width in shapes:
        torch.manual_seed(0)
        model = new_model("instances", depth=depth, base_channels=width)
        model.metadata["object_diameter"] = typical_diameter(train_pairs)
        config = TrainConfig(
            max_steps=100000, max_seconds=args.seconds, crop_size=256, batch_size=8, learning_rate=1e-3,
            augment=augment, eval_every=100000, eval_initial=False, seed=0, num_threads=args.threads,
            device=args.device,
        )
        result = train(model, train_pairs, config)
        preds = [segment(p.image, model, device=args.device) for p in held]
        ap = np.mean([matching_accuracy(p.labels, q) for p, q in zip(held, preds)])
        dc = np.mean([dice(p.labels, q) for p, q in zip(held, preds)])
        params = sum(p.numel() for p in model.net.parameters())
        speed = seconds_per_megapixel(model, args.device)
        print(f"| {depth}, {width} | {params / 1e6:.2f} M | {params * 4 / 1e6:.1f} MB | {result.steps} "
              f"| {ap:.3f} | {dc:.3f} | {speed:.2f} |", flush=True)


if __name__ == "__main__":
    main()
