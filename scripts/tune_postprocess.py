"""Choose the built-in model's post-processing on held-out *train* images and store it in the file.

    python scripts/tune_postprocess.py --model src/napari_unet_seg/models/nuclei.safetensors

Uses the same held-out fluorescence train images as scripts/train_nuclei.py
(never ``val``), tries a small grid of foreground thresholds, seed
prominences and smoothing, and writes the best settings plus the typical
object diameter of the training data into the model's metadata.
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import numpy as np
from train_nuclei import holdout_split, load_split, typical_diameter

from napari_unet_seg.core.metrics import average_precision
from napari_unet_seg.core.modelfile import load_model_file, save_model
from napari_unet_seg.core.pipeline import predict_logits
from napari_unet_seg.core.postprocess import instance_labels

GRID = {
    "foreground_threshold": (0.4, 0.5, 0.6),
    "seed_prominence": (0.05, 0.1, 0.2, 0.3, 0.4),
    "smoothing": (0.0, 1.0, 2.0),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("../shared/data/dsb2018"))
    parser.add_argument("--model", type=Path, default=Path("src/napari_unet_seg/models/nuclei.safetensors"))
    parser.add_argument("--holdout", type=int, default=24)
    parser.add_argument("--holdout-seed", type=int, default=0, help="as given to train_nuclei.py")
    args = parser.parse_args()
    model = load_model_file(args.model)
    pairs = load_split(args.data, "train")
    train_pairs, held = holdout_split(pairs, args.holdout, args.holdout_seed)
    # the object size decides which images get rescaled: set it before predicting, as it will ship
    model.metadata["object_diameter"] = typical_diameter(train_pairs)
    logits = [predict_logits(model, p.image, rgb=p.rgb) for p in held]
    results = []
    for values in itertools.product(*GRID.values()):
        settings = dict(zip(GRID, values))
        ap = np.mean([average_precision(p.labels, instance_labels(lg, **settings)) for p, lg in zip(held, logits)])
        results.append((ap, settings))
    results.sort(key=lambda r: -r[0])
    for ap, settings in results[:5]:
        print(f"held-out AP50 {ap:.3f}  {settings}")
    best_ap, best = results[0]
    model.metadata["postprocess"] = {**best, "min_size": 8}
    model.metadata.setdefault("training", {})["postprocess_tuning"] = {
        "held_out_train_images": len(held), "ap50": round(float(best_ap), 4), "grid": GRID,
    }
    save_model(model, args.model, overwrite=True)
    print(f"saved {best} and object_diameter {model.metadata['object_diameter']} px into {args.model}")


if __name__ == "__main__":
    main()
