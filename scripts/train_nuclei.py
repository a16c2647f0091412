"""Train the built-in ``nuclei`` model on the dsb2018 train split (and, with ``--extra-data``, s-bsst265).

    python scripts/train_nuclei.py --data ../shared/data/dsb2018 \
        --out src/napari_unet_seg/models/nuclei.safetensors --max-seconds 4200
    python scripts/train_nuclei.py --init <model> --extra-data ../shared/data/s-bsst265 --robust ...

The recipe (every argument and the seed) is written into the model file's
metadata. The ``val`` split is never used here; checkpoints are chosen on a
held-out part of ``train``. s-bsst265 keeps a fixed validation split
(``BSST_VAL``, whole images, every preparation) that is never trained on
(``scripts/evaluate_builtin.py`` reports it) and three images held out to
choose checkpoints (``BSST_HOLDOUT``). ``--robust`` adds the augmentations of
issue 19 (empty and saturated bands, nucleoli, anisotropy, defocus).
"""

from __future__ import annotations

import argparse
import copy
import csv
import json
import sys
import time
from pathlib import Path

import numpy as np
import tifffile
import torch
from skimage.measure import regionprops

from napari_unet_seg.core.training.augment import AugmentConfig
from napari_unet_seg.core.model.builtin_credits import builtin_credits
from napari_unet_seg.core.model.modelfile import load_model_file, new_model, save_model
from napari_unet_seg.core.inference.preprocess import denoise_setting
from napari_unet_seg.core.training.loop import StepReport, TrainConfig, train
from napari_unet_seg.core.training.data import TrainingPair
from napari_unet_seg.core.model.widen import widened


def load_split(data: Path, split: str) -> list[tuple[dict, TrainingPair]]:
    with open(data / "index.csv") as f:
        rows = [r for r in csv.DictReader(f) if r["split"] == split]
    out = []
    for row in rows:
        image = tifffile.imread(data / "images" / f"{row['name']}.tif")
        labels = tifffile.imread(data / "labels" / f"{row['name']}.tif")
        out.append((row, TrainingPair(image, labels, rgb=image.ndim == 3, name=row["name"])))
    return out


# s-bsst265: a fixed validation split of whole images, every preparation represented (never trained on, never
# used to choose anything; reported separately), and three train images held out to choose checkpoints
BSST_VAL = ("Ganglioneuroblastoma_3", "Neuroblastoma_6", "Neuroblastoma_2", "Neuroblastoma_5", "Neuroblastoma_9",
            "normal_2", "normal_13", "normal_20", "normal_9", "normal_16")
BSST_HOLDOUT = ("Neuroblastoma_7", "normal_5", "normal_3")


def median_label_diameter(labels: np.ndarray) -> float:
    return float(np.median([r.equivalent_diameter_area for r in regionprops(np.asarray(labels))]))


def load_bsst(data: Path, split: str, weight: float) -> list[TrainingPair]:
    """s-bsst265 images of one split ("train", "holdout" or "val"), each at the network's scale (its nuclei's size).

    Its 63x nuclei are 90-240 px across; the pipeline shrinks such images to
    the model's object size, so training sees them as Segment will.
    """
    with open(data / "index.csv") as f:
        rows = list(csv.DictReader(f))
    chosen = {"val": lambda n: n in BSST_VAL, "holdout": lambda n: n in BSST_HOLDOUT,
              "train": lambda n: n not in BSST_VAL and n not in BSST_HOLDOUT}[split]
    out = []
    for row in rows:
        if not chosen(row["name"]):
            continue
        image = tifffile.imread(data / "images" / f"{row['name']}.tif")
        labels = tifffile.imread(data / "labels" / f"{row['name']}.tif")
        out.append(TrainingPair(image, labels, name=row["name"], weight=weight,
                                diameter=median_label_diameter(labels)))
    return out


def holdout_split(
    pairs: list[tuple[dict, TrainingPair]], holdout: int, seed: int
) -> tuple[list[TrainingPair], list[TrainingPair]]:
    """Train pairs, and fluorescence train images held out to choose checkpoints and post-processing."""
    rng = np.random.default_rng(seed)
    fluo = [i for i, (row, _) in enumerate(pairs) if row["kind"] == "fluorescence"]
    held = set(rng.choice(fluo, size=holdout, replace=False).tolist())
    train_pairs, val_pairs = [], []
    for i, (row, pair) in enumerate(pairs):
        if i in held:
            val_pairs.append(pair)
            continue
        # fluorescence is the main use; stained/brightfield keep the model sane on them
        pair.weight = 1.0 if row["kind"] == "fluorescence" else 0.5
        train_pairs.append(pair)
    return train_pairs, val_pairs


def typical_diameter(pairs: list[TrainingPair]) -> float:
    """Median nucleus diameter (px) in the training labels: the size the model knows best."""
    diameters = [r.equivalent_diameter_area for p in pairs for r in regionprops(np.asarray(p.labels))]
    return round(float(np.median(diameters)), 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("../shared/data/dsb2018"))
    parser.add_argument("--out", type=Path, default=Path("src/napari_unet_seg/models/nuclei.safetensors"))
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--width", type=int, default=None,
                        help="base channels (default 16); with --init, a larger width grows the model (core.widen)")
    parser.add_argument("--max-steps", type=int, default=10000)
    parser.add_argument("--max-seconds", type=float, default=3900)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--crop-size", type=int, default=256)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--holdout", type=int, default=24, help="train images held out to pick the best checkpoint")
    parser.add_argument("--eval-every", type=int, default=250)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--holdout-seed", type=int, default=0, help="keep it when continuing, so held-out images stay unseen")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads for torch (1 leaves a core for other work)")
    parser.add_argument("--overwrite", action="store_true")
    parser.add_argument("--checkpoint", type=Path, default=None, help="also save each new best model here while training")
    parser.add_argument("--contact-weight", type=float, default=0.0, help="extra centre-map weight where nuclei touch")
    parser.add_argument("--ema", type=float, default=0.0, help="score and keep a moving average of the weights (e.g. 0.999)")
    parser.add_argument("--shot-noise", type=float, nargs=2, default=None, metavar=("MIN", "MAX"),
                        help="also add photon noise, MIN..MAX photons at the top of the range (e.g. 20 500)")
    parser.add_argument("--despike", type=float, default=0.25,
                        help="lower lone pixels brighter than all 8 neighbours by more than this fraction of the "
                             "intensity window (hot pixels), in training and in every use of the model; 0 = off")
    parser.add_argument("--denoise", type=float, nargs=2, default=[0.035, 0.55], metavar=("ABOVE", "SIGMA"),
                        help="smooth images whose pixel noise is above ABOVE (a fraction of the intensity window) "
                             "with a gaussian of SIGMA px, in training and in every use of the model; ABOVE 0 = off")
    parser.add_argument("--extra-data", type=Path, default=None,
                        help="also train on s-bsst265 (its fixed train part; BSST_VAL is never used)")
    parser.add_argument("--extra-weight", type=float, default=2.0,
                        help="sampling weight of each s-bsst265 image (a dsb2018 fluorescence image weighs 1)")
    parser.add_argument("--robust", action="store_true",
                        help="augment with empty/saturated bands and patches, nucleoli, anisotropy and defocus")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    parser.add_argument("--workers", type=int, default=0,
                        help="processes that make batches ahead; beside a GPU, the cores less one or two")
    parser.add_argument("--no-eval", action="store_true",
                        help="score nothing while training (choose among --snapshots afterwards); the held-out "
                             "images are still never trained on")
    parser.add_argument("--snapshots", type=Path, default=None,
                        help="every --snapshot-every seconds, save the weights training would end with in this "
                             "folder (float16, named by step)")
    parser.add_argument("--snapshot-every", type=float, default=600.0)
    parser.add_argument("--init", type=Path, default=None, help="continue training from this model file (depth/width come from it)")
    args = parser.parse_args()

    if args.workers < 0:
        parser.error("--workers takes 0 (crops made in the training loop) or more processes")
    if args.shot_noise is not None and min(args.shot_noise) <= 0:
        parser.error("--shot-noise takes two positive photon counts, e.g. 20 500")
    denoise = {"above": args.denoise[0], "sigma": args.denoise[1]} if args.denoise[0] else None
    try:
        denoise_setting({"denoise": denoise})  # the model file's own check, so both accept the same values
    except ValueError:
        parser.error("--denoise takes a noise level between 0 and 1 and a sigma up to 5 px, e.g. 0.035 0.55")
    pairs = load_split(args.data, "train")
    train_pairs, val_pairs = holdout_split(pairs, args.holdout, args.holdout_seed)
    if args.extra_data is not None:
        train_pairs += load_bsst(args.extra_data, "train", args.extra_weight)
        val_pairs += load_bsst(args.extra_data, "holdout", args.extra_weight)
    print(f"{len(train_pairs)} training images, {len(val_pairs)} held out "
          f"{'(not scored: --no-eval)' if args.no_eval else 'for checkpoint choice'}", flush=True)

    torch.manual_seed(args.seed)
    if args.init is not None:
        model = load_model_file(args.init)
        if args.width is not None and args.width != model.net.base_channels:
            model.net = widened(model.net, args.width)  # same outputs; the new channels learn from here
        base_training = model.metadata.get("training", {})
        lineage = [*model.metadata.get("lineage", []), {
            "model": model.metadata.get("name", args.init.name),
            "steps": base_training.get("steps"),
            "arguments": base_training.get("arguments"),
            "best_holdout_ap50": base_training.get("best_holdout_ap50"),
        }]
    else:
        model = new_model("instances", depth=args.depth, base_channels=args.width or 16)
        lineage = []
    shot_noise = None if args.shot_noise is None else tuple(args.shot_noise)
    # before the images are normalised for training
    model.metadata["normalization"]["despike"] = args.despike
    model.metadata["normalization"].pop("denoise", None)
    if denoise:
        model.metadata["normalization"]["denoise"] = denoise
    robust = dict(empty_regions=0.25, nucleoli=0.3, anisotropy=1.25, defocus=0.1) if args.robust else {}
    augment = AugmentConfig(scale_range=(0.45, 2.4), dim_range=(0.1, 0.6), max_noise=0.05, shot_noise=shot_noise,
                            **robust)
    config = TrainConfig(
        max_steps=args.max_steps, max_seconds=args.max_seconds, crop_size=args.crop_size,
        batch_size=args.batch_size, learning_rate=args.lr, augment=augment,
        eval_every=args.eval_every, seed=args.seed, num_threads=args.threads,
        contact_weight=args.contact_weight, ema_decay=args.ema, device=args.device, workers=args.workers,
        checkpoint_every=args.snapshot_every,
        judge="ap50",  # hundreds of held-out nuclei: AP50 resolves them, and the recipe's figures are AP50
    )
    start = time.time()
    recipe = {
        "script": "scripts/train_nuclei.py",
        "arguments": {k: str(v) for k, v in vars(args).items()},
        "data": "dsb2018 train split (2018 Data Science Bowl stage 1, corrected masks, CC0)"
                + (f"; s-bsst265 (Kromp et al. 2020, CC0) except {', '.join(BSST_VAL)} (validation)"
                   if args.extra_data else ""),
        "torch": torch.__version__,
        "wall_clock_start": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(start)),
    }
    # checkpoints carry this run's recipe and untuned settings, not the parent's (the parent is in the lineage);
    # scripts/tune_postprocess.py tunes the settings and the size band afterwards
    model.metadata.pop("auto_band", None)
    model.metadata.update(
        name="nuclei",
        description="Built-in 2D nuclei instance model (fluorescence first), trained on dsb2018 train.",
        object_diameter=(model.metadata["object_diameter"] if args.init is not None
                         else typical_diameter(train_pairs)),
        postprocess=(model.postprocess if args.init is not None  # keep the tuned settings: scores stay comparable
                     else {"foreground_threshold": 0.5, "seed_prominence": 0.2, "smoothing": 1.0, "min_size": 8}),
        training={**recipe, "checkpoint": True},
        lineage=lineage,
        **builtin_credits(bool(args.extra_data)),
    )

    def report(r: StepReport) -> None:
        if args.checkpoint and r.val_score is not None and r.val_score == r.best_score:
            model.metadata["training"].update(steps=r.step, best_holdout_ap50=r.best_score)
            save_model(model, args.checkpoint, overwrite=True)
        if r.step % 50 == 0 or r.val_score is not None:
            extra = f" held-out AP50 {r.val_score:.3f} (best {r.best_score:.3f})" if r.val_score is not None else ""
            print(f"step {r.step} loss {r.loss:.4f} {r.seconds:.0f}s{extra}", flush=True)

    reported = [0]  # the last step reported; a checkpoint comes after its step, before that step's report

    def snapshot(state: dict[str, torch.Tensor], step: int | None = None) -> None:
        step = reported[0] + 1 if step is None else step
        saved = copy.deepcopy(model)
        saved.net.load_state_dict(state)
        saved.metadata["training"].update(steps=step, snapshot=True)
        args.snapshots.mkdir(parents=True, exist_ok=True)
        path = save_model(saved, args.snapshots / f"step{step:06d}", overwrite=True, half_precision=True)
        print(f"snapshot {path}", flush=True)

    def progress(r: StepReport) -> None:
        reported[0] = r.step
        report(r)

    if args.no_eval:
        val_pairs = []
    result = train(model, [p for p in train_pairs], config, val_pairs=val_pairs, progress=progress,
                   checkpoint=snapshot if args.snapshots else None)
    if args.snapshots:
        snapshot(model.net.state_dict(), result.steps)
    model.metadata["training"] = {
        **recipe,
        "steps": result.steps,
        "seconds": round(result.seconds),
        "best_holdout_ap50": result.best_score,
        "history": [h for h in result.history if "ap50" in h],
    }
    path = save_model(model, args.out, overwrite=args.overwrite)
    print(json.dumps({"saved": str(path), "steps": result.steps, "best_holdout_ap50": result.best_score}), flush=True)


if __name__ == "__main__":
    sys.exit(main())
