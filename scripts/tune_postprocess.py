"""Choose the built-in model's post-processing on held-out *train* images and store it in the file.

    python scripts/tune_postprocess.py --model src/napari_unet_seg/models/nuclei.safetensors

Uses the same held-out fluorescence train images as scripts/train_nuclei.py
(never ``val``), at their own size and resized 0.4x and 2.5x (median nuclei
~8 to ~48 px across, the largest ~120 px: the range the defaults must handle),
and at their own size in low light (50 and 20 photons at the brightest pixel,
Poisson noise: resizing a noisy image changes its noise, so rescaling choices
must be scored on noisy images too). Searches foreground
threshold, seed prominence, smoothing, smallest object size and lowest
centre-map peak, one setting at a time (coordinate ascent from the model's
current settings, until no single change helps), and writes the best settings
into the model's metadata.

The automatic rescaling is part of what is tuned, and each candidate is scored
exactly as it will ship: whether an image is rescaled (and by how much) is
decided per candidate from the measuring pass. Besides the post-processing
settings, the search covers the object diameter the network is run at
(``object_diameter``, multiples of the training data's median) and the band of
measured sizes that are left at their own scale (``auto_band``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from evaluate_dsb import low_light, rescaled
from train_nuclei import holdout_split, load_split, typical_diameter

from napari_unet_seg.core.training.metrics import matching_accuracy
from napari_unet_seg.core.model.modelfile import Model, load_model_file, save_model
from napari_unet_seg.core.inference.object_size import needs_rescale, rescale_factor
from napari_unet_seg.core.inference.prediction import NetworkPrediction, measure_diameter, predict_network
from napari_unet_seg.core.inference.postprocess import DEFAULTS
from napari_unet_seg.core.inference.preprocess import PreparedImage

POSTPROCESS = ("foreground_threshold", "seed_prominence", "smoothing", "min_size", "min_peak")
GRID = {
    "foreground_threshold": (0.4, 0.5, 0.6, 0.7),
    "seed_prominence": (0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4),
    "smoothing": (0.0, 1.0, 2.0),
    "min_size": (4, 8, 16, 24, 32),
    "min_peak": (0.0, 0.2, 0.3, 0.4),
    "diameter_factor": (1.0, 1.1, 1.2, 1.3, 1.4, 1.6),  # object_diameter = factor x the training data's median
    "band_low": (0.6, 0.75, 0.85, 0.9, 1.0),
    "band_high": (1.0, 1.2, 1.4, 1.7, 2.0),  # a band of 1.0-1.0 rescales every image to object_diameter
}


def candidate(model: Model, settings: dict, training_diameter: float) -> Model:
    """The model as it would ship with these settings (same network, new metadata)."""
    metadata = {**model.metadata, "postprocess": {k: settings[k] for k in POSTPROCESS},
                "object_diameter": round(settings["diameter_factor"] * training_diameter, 1),
                "auto_band": [settings["band_low"], settings["band_high"]]}
    return Model(model.net, metadata, model.name, model.path)


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
    parser.add_argument("--half", action="store_true", help="store the weights as float16 (scored as stored)")
    parser.add_argument("--holdout-seed", type=int, default=0, help="as given to train_nuclei.py")
    parser.add_argument("--scales", type=float, nargs="+", default=[1.0, 0.4, 2.5],
                        help="score the held-out images resized by each of these (equal weight)")
    parser.add_argument("--photons", type=float, nargs="*", default=[50, 20],
                        help="also score the held-out images (own size) in low light, with this many photons at the "
                             "brightest pixel (Poisson noise), so settings that help clean images cannot cost noisy ones")
    args = parser.parse_args()
    model = load_model_file(args.model)
    half = args.half or model.metadata.get("weights_dtype") == "float16"
    if half:  # score the weights exactly as they will be stored
        with torch.no_grad():
            for tensor in model.net.state_dict().values():
                if tensor.is_floating_point():
                    tensor.copy_(tensor.half())
    if model.task != "instances":
        sys.exit(f"tune_postprocess: {args.model} is a {model.task} model; only instance models are tuned here")
    pairs = load_split(args.data, "train")
    train_pairs, held = holdout_split(pairs, args.holdout, args.holdout_seed)
    training_diameter = typical_diameter(train_pairs)
    model.metadata["object_diameter"] = model.object_diameter or training_diameter  # e.g. a fresh checkpoint
    cases = [(*(rescaled(p.image, p.labels, s) if s != 1 else (p.image, p.labels)), p.rgb)
             for s in args.scales for p in held]
    camera = np.random.default_rng(args.holdout_seed + 1)
    cases += [(low_light(p.image, n, camera), p.labels, False) for n in args.photons for p in held if not p.rgb]
    # the measuring pass: every image at its own scale (an explicit diameter equal to the model's means no resize)
    own_scale = [predict_network(model, image, rgb=rgb, diameter=model.object_diameter) for image, _, rgb in cases]
    diameters = [measure_diameter(model, PreparedImage(image, in_channels=model.in_channels,
                                                       normalization_settings=model.normalization, rgb=rgb))
                 for image, _, rgb in cases]  # the pipeline's own measuring pass (central crop of large images)
    rescaled_predictions: dict[tuple[int, float], NetworkPrediction] = {}

    def score(settings: dict) -> float:
        """Mean AP50 over all the resized copies, each segmented as segment() would."""
        shipped = candidate(model, settings, training_diameter)
        aps = []
        for i, ((image, labels, rgb), prediction, measured) in enumerate(zip(cases, own_scale, diameters)):
            if needs_rescale(shipped, measured):
                key = (i, round(rescale_factor(shipped, measured), 4))
                if key not in rescaled_predictions:
                    rescaled_predictions[key] = predict_network(shipped, image, rgb=rgb, diameter=measured)
                prediction = rescaled_predictions[key]
            aps.append(matching_accuracy(labels, prediction.labels(shipped)))
        return float(np.mean(aps))

    low, high = model.auto_band
    start = {**DEFAULTS, **model.postprocess, "band_low": low, "band_high": high,
             "diameter_factor": round(model.object_diameter / training_diameter, 1)}
    best_ap, best, tried = coordinate_search(score, start)
    model.metadata.update(candidate(model, best, training_diameter).metadata)
    model.metadata.setdefault("training", {})["training_diameter"] = training_diameter
    model.metadata["training"]["postprocess_tuning"] = {
        "held_out_train_images": len(held), "scales": args.scales, "photons": args.photons,
        "ap50": round(best_ap, 4), "grid": GRID,
        "search": "coordinate ascent from the previous settings, rescaling decided per candidate",
        "settings_tried": tried,
    }
    save_model(model, args.model, overwrite=True, half_precision=half)
    print(f"saved {model.postprocess}, object_diameter {model.object_diameter} px and auto_band "
          f"{model.metadata['auto_band']} into {args.model}")


if __name__ == "__main__":
    main()
