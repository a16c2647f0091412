"""Fine-tuning the built-in model on ONE annotated image: how much better, in how many seconds.

    nice -n 5 python benchmarks/bench_finetune.py [--model nuclei] [--seconds 110] [--kind auto] [--device auto]

1. Scores the base model (AP at IoU 0.5, foreground Dice) on every dsb2018
   ``val`` image and picks the kind (fluorescence / stained / brightfield) it
   does worst on (``--kind`` forces one).
2. Fine-tunes on the largest val image of that kind -- exactly what the Train
   widget and ``unet-seg train --init nuclei`` do, defaults and time budget
   included (a held-out strip of that image picks the best checkpoint).
3. Scores before/after on the OTHER val images of that kind (never seen in
   training). The built-in model never trained on ``val``.
"""

from __future__ import annotations

import argparse
import csv
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import tifffile

from napari_unet_seg.core.training.evaluation import main_score_name
from napari_unet_seg.core.training.finetune import default_config, finetune, starting_model
from napari_unet_seg.core.training.metrics import matching_accuracy, dice
from napari_unet_seg.core.inference.pipeline import segment
from napari_unet_seg.core.model.devices import describe_device, resolve_device, resolve_precision
from napari_unet_seg.core.training.data import TrainingPair


def load(data: Path, name: str) -> tuple[np.ndarray, np.ndarray]:
    return tifffile.imread(data / "images" / f"{name}.tif"), tifffile.imread(data / "labels" / f"{name}.tif")


def scores(model, data: Path, rows: list[dict], device: str = "auto") -> list[tuple[float, float]]:
    out = []
    for row in rows:
        image, truth = load(data, row["name"])
        pred = segment(image, model, device=device)
        out.append((matching_accuracy(truth, pred), dice(truth, pred)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("/work/shared/data/dsb2018"))
    parser.add_argument("--model", default="nuclei")
    parser.add_argument("--seconds", type=float, default=110.0)
    parser.add_argument("--kind", default="auto")
    parser.add_argument("--lr", type=float, default=None, help="override the default learning rate")
    parser.add_argument("--contact-weight", type=float, default=None, help="override the default contact weight")
    parser.add_argument("--ema", type=float, default=None, help="override the default weight averaging")
    parser.add_argument("--device", default="auto", help="auto (cuda, then mps, then cpu), cpu, cuda or mps")
    args = parser.parse_args()
    device = resolve_device(args.device)
    print(f"device: {describe_device(device)}; precision {resolve_precision('auto', device)}", flush=True)
    rows = [r for r in csv.DictReader(open(args.data / "index.csv")) if r["split"] == "val"]
    base = starting_model(args.model)
    by_kind: dict[str, list[dict]] = {}
    for row in rows:
        by_kind.setdefault(row["kind"], []).append(row)
    if args.kind == "auto":
        means = {}
        for kind, kind_rows in by_kind.items():
            if len(kind_rows) < 2:
                continue
            s = scores(base, args.data, kind_rows, args.device)
            means[kind] = float(np.mean([a for a, _ in s]))
            print(f"base model on val {kind}: AP50 {means[kind]:.3f} over {len(kind_rows)} images", flush=True)
        kind = min(means, key=means.get)
    else:
        kind = args.kind
    kind_rows = by_kind[kind]
    train_row = max(kind_rows, key=lambda r: int(r["height"]) * int(r["width"]))
    eval_rows = [r for r in kind_rows if r is not train_row]
    print(f"worst kind: {kind}; fine-tune on {train_row['name']} ({train_row['height']}x{train_row['width']}, "
          f"{train_row['n_objects']} nuclei); evaluate on the other {len(eval_rows)} {kind} val image(s)", flush=True)
    before = scores(base, args.data, eval_rows, args.device)

    model = starting_model(args.model)
    image, labels = load(args.data, train_row["name"])
    config = replace(default_config(scratch=False, task="instances", max_seconds=args.seconds), device=args.device)
    if args.lr:
        config = replace(config, learning_rate=args.lr)
    if args.contact_weight is not None:
        config = replace(config, contact_weight=args.contact_weight)
    if args.ema is not None:
        config = replace(config, ema_decay=args.ema)
    start = time.perf_counter()

    def report(r) -> None:  # noqa: ANN001
        if r.step % 20 == 0 or r.val_score is not None:
            held = f" held-out {main_score_name(r.scores or {})} {r.val_score:.3f}" if r.val_score is not None else ""
            print(f"  step {r.step} loss {r.loss:.3f} {r.seconds:.0f}s{held}", flush=True)

    result = finetune(model, [TrainingPair(image, labels, rgb=image.ndim == 3, name=train_row["name"])],
                      config=config, base=args.model, progress=report)
    seconds = time.perf_counter() - start
    after = scores(model, args.data, eval_rows, args.device)
    best = result.train.best_scores.get("step") if result.train.best_scores else "last"
    print(f"\nfine-tuning: {result.train.steps} steps, {result.train.seconds:.0f} s training, {seconds:.0f} s in all "
          f"(incl. held-out scoring, sanity check); best checkpoint: step {best}")
    print(f"{'image':<18} {'AP50 before':>12} {'AP50 after':>11} {'Dice before':>12} {'Dice after':>11}")
    for row, (ab, db), (aa, da) in zip(eval_rows, before, after):
        print(f"{row['name']:<18} {ab:>12.3f} {aa:>11.3f} {db:>12.3f} {da:>11.3f}")
    mb, ma = np.mean(before, axis=0), np.mean(after, axis=0)
    print(f"{'mean':<18} {mb[0]:>12.3f} {ma[0]:>11.3f} {mb[1]:>12.3f} {ma[1]:>11.3f}")
    print(f"warnings: {result.warnings or 'none'}")


if __name__ == "__main__":
    main()
