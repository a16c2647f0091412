"""Choose the built-in model's post-processing on held-out *train* images and store it in the file.

    python scripts/tune_postprocess.py --model src/napari_unet_seg/models/nuclei.safetensors

Uses the same held-out fluorescence train images as scripts/train_nuclei.py
(never ``val``), plain and shrunk 0.4x (nuclei ~8 px across, the small end
of the range the defaults must handle), searches foreground thresholds, seed prominences, smoothing
and the smallest object size one setting at a time (coordinate ascent, from
the model's current settings, until no single change helps), and writes the
best settings plus the typical object diameter of the training data into the
model's metadata.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from evaluate_dsb import rescaled
from train_nuclei import holdout_split, load_split, typical_diameter

from napari_unet_seg.core.metrics import average_precision
from napari_unet_seg.core.modelfile import load_model_file, save_model
from napari_unet_seg.core.pipeline import predict_scaled
from napari_unet_seg.core.postprocess import logits_to_labels

GRID = {
    "foreground_threshold": (0.4, 0.5, 0.6, 0.7),
    "seed_prominence": (0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4),
    "smoothing": (0.0, 1.0, 2.0),
    "min_size": (4, 8, 16, 24, 32),
}


def coordinate_search(score, start: dict) -> tuple[float, dict, int]:
    """Best settings found by changing one setting at a time while any change helps."""
    best = {k: start.get(k, values[0]) for k, values in GRID.items()}
    cache: dict[tuple, float] = {}

    def measure(settings: dict) -> float:
        key = tuple(settings[k] for k in GRID)
        if key not in cache:
            cache[key] = score(settings)
            print(f"held-out AP50 {cache[key]:.4f}  {settings}", flush=True)
        return cache[key]

    best_ap = measure(best)
    improved = True
    while improved:
        improved = False
        for name, values in GRID.items():
            for value in values:
                trial = {**best, name: value}
                ap = measure(trial)
                if ap > best_ap + 1e-4:
                    best, best_ap, improved = trial, ap, True
    return best_ap, best, len(cache)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("../shared/data/dsb2018"))
    parser.add_argument("--model", type=Path, default=Path("src/napari_unet_seg/models/nuclei.safetensors"))
    parser.add_argument("--holdout", type=int, default=24)
    parser.add_argument("--holdout-seed", type=int, default=0, help="as given to train_nuclei.py")
    parser.add_argument("--shrink", type=float, default=0.4, help="also score the held-out images resized by this")
    args = parser.parse_args()
    model = load_model_file(args.model)
    pairs = load_split(args.data, "train")
    train_pairs, held = holdout_split(pairs, args.holdout, args.holdout_seed)
    # the object size decides which images get rescaled: set it before predicting, as it will ship
    model.metadata["object_diameter"] = typical_diameter(train_pairs)
    cases = [(p.image, p.labels, p.rgb) for p in held]
    cases += [(*rescaled(p.image, p.labels, args.shrink), p.rgb) for p in held]
    predictions = [predict_scaled(model, image, rgb=rgb) for image, _, rgb in cases]

    def score(settings: dict) -> float:
        """Mean AP50 of the plain and the shrunk images (equal numbers of each)."""
        return float(np.mean([average_precision(labels, logits_to_labels(logits, "instances", settings, scale))
                              for (_, labels, _), (logits, scale) in zip(cases, predictions)]))

    best_ap, best, tried = coordinate_search(score, model.postprocess)
    model.metadata["postprocess"] = best
    model.metadata.setdefault("training", {})["postprocess_tuning"] = {
        "held_out_train_images": len(held), "shrunk_copies": args.shrink, "ap50": round(best_ap, 4), "grid": GRID,
        "search": "coordinate ascent from the previous settings", "settings_tried": tried,
    }
    save_model(model, args.model, overwrite=True)
    print(f"saved {best} and object_diameter {model.metadata['object_diameter']} px into {args.model}")


if __name__ == "__main__":
    main()
