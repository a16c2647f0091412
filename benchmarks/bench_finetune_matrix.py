"""Fine-tuning the built-in model on ONE image of a domain it does poorly on; scored on that domain's OTHER images.

    nice -n 5 python benchmarks/bench_finetune_matrix.py [--domains all] [--modes dense,mask] [--seconds 120] [--device auto]
        [--steps N] [--eval 6] [--native-scale] [--set FIELD=VALUE ...] [--csv results.csv]

Domains (the built-in model never trained on any of these images):
  brightfield   dsb2018 val, brightfield           stained   dsb2018 val, stained (RGB)
  tissue        s-bsst265 tissue sections, 20x     cytospin  s-bsst265 bone-marrow cytospins, 63x
  enlarged      dsb2018 val fluorescence enlarged 3x, with texture added inside the nuclei
Modes: ``dense`` (the whole image annotated), ``mask`` (only its left third annotated: ``--mask``).

Each cell runs exactly what ``unet-seg train --init nuclei`` and the Train widget run (``finetune`` with
``default_config``), on the largest image of the domain, for ``--seconds`` (or a fixed ``--steps``, for
comparisons that a busy machine must not skew), then scores Segment's result (AP at IoU 0.5 =
TP/(TP+FP+FN), and Dice) on up to ``--eval`` other images of the domain, before -> after.
``--native-scale`` trains at the images' own scale, as releases before 2026-11-29 did (for A/B).
"""

from __future__ import annotations

import argparse
import csv
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import tifffile
import torch
import torch.nn.functional as F

from napari_unet_seg.core.inference.pipeline import segment
from napari_unet_seg.core.model.devices import describe_device, resolve_device, resolve_precision
from napari_unet_seg.core.training.data import TrainingPair, resize_labels
from napari_unet_seg.core.training.finetune import default_config, finetune, starting_model
from napari_unet_seg.core.training.loop import TrainConfig
from napari_unet_seg.core.training.metrics import dice, matching_accuracy

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"  # ../shared/data beside the repository; --data


def read(folder: Path, name: str) -> tuple[np.ndarray, np.ndarray]:
    return tifffile.imread(folder / "images" / f"{name}.tif"), tifffile.imread(folder / "labels" / f"{name}.tif")


def dsb(kind: str) -> list[tuple[str, np.ndarray, np.ndarray]]:
    folder = DATA / "dsb2018"
    rows = [r for r in csv.DictReader(open(folder / "index.csv")) if r["split"] == "val" and r["kind"] == kind]
    return [(r["name"], *read(folder, r["name"])) for r in rows]


def bsst(preparations: tuple[str, ...]) -> list[tuple[str, np.ndarray, np.ndarray]]:
    folder = DATA / "s-bsst265"
    rows = [r for r in csv.DictReader(open(folder / "index.csv")) if r["preparation"] in preparations]
    return [(r["name"], *read(folder, r["name"])) for r in rows]


def enlarged() -> list[tuple[str, np.ndarray, np.ndarray]]:
    """Val fluorescence images 3x larger, nuclei given a nucleoli-like texture (a fixed random draw)."""
    rng = np.random.default_rng(7)
    out = []
    for name, image, labels in dsb("fluorescence")[:12]:
        h, w = labels.shape
        big = F.interpolate(torch.from_numpy(image.astype(np.float32))[None, None], size=(3 * h, 3 * w),
                            mode="bilinear", align_corners=False)[0, 0].numpy()
        big_labels = resize_labels(labels, (3 * h, 3 * w))
        texture = rng.normal(0, 1, big.shape).astype(np.float32)
        texture = F.avg_pool2d(torch.from_numpy(texture)[None, None], 7, 1, 3)[0, 0].numpy()
        big = big * np.where(big_labels > 0, 1 + 1.5 * texture, 1)
        out.append((name, np.clip(big, 0, 255).astype(np.uint8), big_labels))
    return out


DOMAINS = {
    "brightfield": lambda: dsb("brightfield"),
    "stained": lambda: dsb("stained"),
    "tissue": lambda: bsst(("tissue section",)),
    "cytospin": lambda: bsst(("BM cytospin",)),
    "enlarged": enlarged,
}


def scores(model, images, device: str = "auto") -> list[tuple[float, float]]:  # noqa: ANN001
    out = []
    for _, image, truth in images:
        pred = segment(image, model, rgb=image.ndim == 3, device=device)
        out.append((matching_accuracy(truth, pred), dice(truth, pred)))
    return out


def fitted_settings(result, start: dict) -> str:  # noqa: ANN001
    """The post-processing settings the fine-tune fitted that differ from ``start``'s, or "-" when none do."""
    tuning = result.tuning
    if tuning is None or not tuning.changed:
        return "-"
    return ",".join(f"{k}={v:g}" for k, v in tuning.settings.items() if start.get(k) != v) or "-"


def with_overrides(config: TrainConfig, settings: list[str]) -> TrainConfig:
    """``config`` with FIELD=VALUE changes, each value read as the field's current type."""
    changes = {}
    for setting in settings:
        key, _, text = setting.partition("=")
        current = getattr(config, key)
        if isinstance(current, bool):
            changes[key] = text.lower() in ("1", "true", "yes")
        elif current is None:
            changes[key] = int(text) if text.isdigit() else float(text)
        else:
            changes[key] = type(current)(text)
    return replace(config, **changes)


def main() -> None:
    global DATA
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--domains", default="all")
    parser.add_argument("--modes", default="dense,mask")
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--steps", type=int, default=None, help="a fixed number of steps instead of --seconds")
    parser.add_argument("--eval", type=int, default=6, help="score on at most this many other images")
    parser.add_argument("--native-scale", action="store_true", help="train at the images' own scale (the old path)")
    parser.add_argument("--csv", type=Path, default=None)
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="change a TrainConfig field of the defaults (e.g. learning_rate=1e-3), for A/B runs")
    parser.add_argument("--data", type=Path, default=DATA, help="the folder holding dsb2018/ and s-bsst265/")
    parser.add_argument("--device", default="auto", help="auto (cuda, then mps, then cpu), cpu, cuda or mps")
    args = parser.parse_args()
    DATA = args.data
    device = resolve_device(args.device)
    domains = list(DOMAINS) if args.domains == "all" else args.domains.split(",")
    print(f"device: {describe_device(device)}; precision {resolve_precision('auto', device)}; "
          f"{'native scale (old path)' if args.native_scale else 'pipeline scale'}; changes {args.set}", flush=True)
    rows = []
    base = starting_model("nuclei")
    for domain in domains:
        images = DOMAINS[domain]()
        train_index = max(range(len(images)), key=lambda i: images[i][2].size)
        name, image, labels = images[train_index]
        others = [im for i, im in enumerate(images) if i != train_index][: args.eval]
        before = np.mean(scores(base, others, args.device), axis=0)
        for mode in args.modes.split(","):
            valid = None
            if mode == "mask":
                valid = np.zeros(labels.shape, bool)
                valid[:, : labels.shape[1] // 3] = True
            model = starting_model("nuclei")
            pair = TrainingPair(image, labels, valid, rgb=image.ndim == 3, name=name,
                                diameter=float(model.object_diameter) if args.native_scale else None)
            config = with_overrides(default_config(scratch=False, task="instances", max_steps=args.steps,
                                                   max_seconds=None if args.steps else args.seconds), args.set)
            config = replace(config, device=args.device)
            start = time.perf_counter()
            result = finetune(model, [pair], config=config, base="nuclei")
            seconds = time.perf_counter() - start
            after = np.mean(scores(model, others, args.device), axis=0)
            scale = model.metadata["lineage"][-1]["data"][0]["scale"]
            row = dict(domain=domain, mode=mode, train_image=name, scale=scale, eval_images=len(others),
                       steps=result.train.steps, seconds=round(seconds), ap50_before=round(before[0], 3),
                       ap50_after=round(after[0], 3), dice_before=round(before[1], 3), dice_after=round(after[1], 3),
                       improved_held_out=result.improved, tied=result.tied,
                       kept_step=(result.train.best_scores or {}).get("step"),
                       fitted=fitted_settings(result, base.postprocess))
            rows.append(row)
            print(" ".join(f"{k}={v}" for k, v in row.items()), flush=True)
    print("\n| domain | mode | scale | steps | s | AP50 before -> after | Dice before -> after |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['domain']} | {r['mode']} | {r['scale']} | {r['steps']} | {r['seconds']} | "
              f"{r['ap50_before']:.3f} -> {r['ap50_after']:.3f} | {r['dice_before']:.3f} -> {r['dice_after']:.3f} |")
    gains = [r["ap50_after"] - r["ap50_before"] for r in rows]
    print(f"mean AP50 gain {np.mean(gains):+.3f}; cells worse: {sum(g < 0 for g in gains)} of {len(gains)}")
    if args.csv:
        with open(args.csv, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)


if __name__ == "__main__":
    main()
