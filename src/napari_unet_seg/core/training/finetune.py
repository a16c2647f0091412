"""Fine-tuning as users ask for it, shared by the Train widget and ``unet-seg train``.

Pick a starting model (built-in, user model or scratch), check the annotations
against it, hold out part of the annotation for validation when there is
enough, train with defaults that need no tuning, check the result for the
classic failure (predicts nothing or everything) and write the lineage into
the model's metadata. Saving is left to the caller, which knows where.
"""

from __future__ import annotations

import copy
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from .augment import AugmentConfig
from ..model.modelfile import SUFFIX, Model, new_model, save_model
from ..model.registry import available_models, load_model
from ..inference.postprocess import logits_to_labels
from ..inference.preprocess import PreparedImage
from .evaluation import evaluate_pairs
from ..inference.tiling import predict_tiled
from ..model.lock import exclusive
from .loop import PreparedPair, StepReport, TrainConfig, TrainingPair, TrainResult, predict_annotated, train

SCRATCH_NAMES = ("none", "scratch", "")


def is_scratch(init: str | Path | None) -> bool:
    return init is None or str(init).strip().lower() in SCRATCH_NAMES


def starting_model(
    init: str | Path | None, *, task: str = "instances", classes: int | None = None,
    depth: int = 4, width: int = 16, in_channels: int = 1,
) -> Model:
    """A private copy of a named/file model, or a new one when ``init`` is none."""
    if is_scratch(init):
        return new_model(task, in_channels=in_channels, num_classes=classes, depth=depth, base_channels=width)
    base = load_model(init)  # cached and shared: never train it in place
    with exclusive(base.net):  # not mid-way through another thread's inference (eval mode, channels_last)
        net = copy.deepcopy(base.net)
    return Model(net=net, metadata=copy.deepcopy(base.metadata), name=base.name, path=base.path)


def check_pairs(model: Model, pairs: Sequence[TrainingPair], *, scribbles: bool) -> None:
    """Refuse annotations the model cannot learn from, with a one-line reason."""
    if not pairs:
        raise ValueError("nothing to train on: give at least one annotated image")
    if scribbles and model.task == "instances":
        raise ValueError("scribbles train semantic (class) models; start from scratch with a number of classes "
                         "or from a semantic model")
    n_classes = len(model.class_names)
    for pair in pairs:
        labels = np.asarray(pair.labels)
        name = f" in {pair.name}" if pair.name else ""
        if labels.size and labels.min() < 0:
            raise ValueError(f"labels{name} contain negative values")
        annotated = np.ones(labels.shape, bool) if pair.valid is None else np.asarray(pair.valid) > 0
        if scribbles:
            annotated &= labels > 0
        if not annotated.any():
            raise ValueError(f"nothing is annotated{name}: paint some labels (or draw the region) first")
        if model.task == "semantic":
            top = int(labels[annotated].max())
            allowed = n_classes if scribbles else n_classes - 1
            if top > allowed:
                hint = f"scribble values go up to {n_classes} (1 = background)" if scribbles else \
                    f"class ids go up to {n_classes - 1} (0 = background)"
                raise ValueError(f"label value {top}{name} is too large for a {n_classes}-class model: {hint}")


def split_validation(
    pairs: Sequence[TrainingPair], *, scribbles: bool, fraction: float = 0.2, min_area: int = 256 * 256,
    max_held_out: int = 600 * 600,
) -> tuple[list[TrainingPair], list[TrainingPair]]:
    """Hold out the far end (``fraction``) of each large enough annotated region.

    Every image keeps teaching (the user's latest correction is never left
    out); small annotations are used whole for training, and at most
    ``max_held_out`` pixels are held out in all (scoring them costs time at
    every evaluation). Returns (train, val);
    ``val`` is empty when there is not enough annotation.
    """
    train_pairs: list[TrainingPair] = []
    val_pairs: list[TrainingPair] = []
    regions = [np.ones(np.shape(p.labels), bool) if p.valid is None else np.asarray(p.valid) > 0 for p in pairs]
    # scoring costs time at every evaluation: hold out from the largest annotations, up to a budget
    budget = max_held_out
    chosen = set()
    for i in sorted(range(len(pairs)), key=lambda i: -int(regions[i].sum())):
        area = int(regions[i].sum())
        if area >= min_area and area * fraction <= budget:
            chosen.add(i)
            budget -= area * fraction
    for i, (pair, region) in enumerate(zip(pairs, regions)):
        labels = np.asarray(pair.labels)
        if i not in chosen:
            train_pairs.append(pair)
            continue
        ys, xs = np.nonzero(region)
        axis = 0 if (ys.max() - ys.min()) > (xs.max() - xs.min()) else 1
        lo, hi = (ys.min(), ys.max() + 1) if axis == 0 else (xs.min(), xs.max() + 1)
        cut = int(hi - max(round((hi - lo) * fraction), 64))
        strip = np.zeros(labels.shape, bool)
        if axis == 0:
            strip[cut:] = True
        else:
            strip[:, cut:] = True
        held = region & strip
        if scribbles:
            values, counts = np.unique(labels[held & (labels > 0)], return_counts=True)
            if (counts >= 50).sum() < 2:  # too few scribbles there to score anything
                train_pairs.append(pair)
                continue
        train_pairs.append(replace(pair, valid=region & ~strip))
        val_pairs.append(replace(pair, valid=held, name=f"{pair.name} (held out)"))
    return train_pairs, val_pairs


def default_config(*, scratch: bool, task: str, scribbles: bool = False, max_steps: int | None = None,
                   max_seconds: float | None = 110.0) -> TrainConfig:
    """Settings that work without tuning: gentle for fine-tuning, brisk from scratch."""
    if task == "instances":
        augment = AugmentConfig(scale_range=(0.5, 2.0) if scratch else (0.7, 1.4))
    else:
        augment = AugmentConfig(scale_range=(0.8, 1.25), dim_objects=False, texture=False)
    return TrainConfig(
        max_steps=max_steps or 5000, max_seconds=max_seconds, crop_size=256 if task == "instances" else 192,
        batch_size=4, learning_rate=3e-3 if scratch else 5e-4, scribbles=scribbles, augment=augment,
        eval_every=40, eval_initial=not scratch,
    )


@dataclass
class FinetuneResult:
    """A trained model (best weights, lineage recorded) plus what the user should know about it."""

    model: Model
    train: TrainResult
    scores: dict[str, float]
    held_out: bool  # False: scores are on the training data itself
    warnings: list[str] = field(default_factory=list)


def finetune(
    model: Model, pairs: Sequence[TrainingPair], *, scribbles: bool = False, config: TrainConfig | None = None,
    base: str = "scratch", progress: Callable[[StepReport], None] | None = None,
    cancel: Callable[[], bool] | None = None, preview: Callable[[Model], None] | None = None,
) -> FinetuneResult:
    """Check, split, train, score, sanity-check and record lineage; ``model`` is trained in place."""
    check_pairs(model, pairs, scribbles=scribbles)
    if config is None:
        config = default_config(scratch=base == "scratch", task=model.task, scribbles=scribbles)
    config = replace(config, scribbles=scribbles)
    train_pairs, val_pairs = split_validation(pairs, scribbles=scribbles)
    result = train(model, train_pairs, config, val_pairs=val_pairs, progress=progress, cancel=cancel, preview=preview)
    if val_pairs and result.best_scores is not None:
        scores, held_out = {k: v for k, v in result.best_scores.items() if k != "step"}, True
    else:
        scores, held_out = evaluate_pairs(model, train_pairs, scribbles=scribbles), False
    warnings = sanity_check(model, train_pairs[:4], scribbles=scribbles)
    record_lineage(model, base=base, pairs=pairs, result=result, scores=scores, held_out=held_out,
                   config=config, scribbles=scribbles)
    return FinetuneResult(model, result, scores, held_out, warnings)


def sanity_check(model: Model, pairs: Sequence[TrainingPair], *, scribbles: bool = False) -> list[str]:
    """Warn when the model predicts nothing, or everything, on its own training images."""
    warnings = []
    for pair in pairs:
        pred, truth, valid = predict_annotated(model, PreparedPair(pair, model))
        annotated = np.ones(truth.shape, bool) if valid is None else valid
        if scribbles:
            annotated = annotated & (truth > 0)
        name = pair.name or "a training image"
        if model.task == "instances":
            predicted, true = (pred > 0)[annotated].mean(), (truth > 0)[annotated].mean()
            if predicted < 0.001 and true > 0.01:
                warnings.append(f"the model finds no objects on {name}; train longer or check the labels")
            elif predicted > 0.97 and true < 0.9:
                warnings.append(f"the model marks almost everything as object on {name}; check the labels")
        else:
            true_ids = truth[annotated] - 1 if scribbles else truth[annotated]
            found = np.unique(pred[annotated])
            if len(np.unique(true_ids)) > 1 and len(found) == 1:
                warnings.append(f"the model predicts only '{model.class_names[int(found[0])]}' on {name}; "
                                "train longer or annotate more")
    return warnings


def record_lineage(model: Model, *, base: str, pairs: Sequence[TrainingPair], result: TrainResult,
                   scores: dict[str, float], held_out: bool, config: TrainConfig, scribbles: bool) -> None:
    """Append this training run to the model's lineage: base model, data, steps, scores."""
    data = []
    for pair in pairs:
        labels = np.asarray(pair.labels)
        annotated = np.ones(labels.shape, bool) if pair.valid is None else np.asarray(pair.valid) > 0
        if scribbles:
            annotated &= labels > 0
        data.append({"name": pair.name, "shape": list(labels.shape), "annotated_pixels": int(annotated.sum())})
    run: dict[str, Any] = {
        "base": base,
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "mode": "scribbles" if scribbles else ("region" if any(p.valid is not None for p in pairs) else "dense"),
        "data": data,
        "steps": result.steps,
        "seconds": round(result.seconds, 1),
        "cancelled": result.cancelled,
        "scores": {k: round(float(v), 4) for k, v in scores.items()},
        "scores_on": "held-out annotation" if held_out else "training data",
        "config": {"learning_rate": config.learning_rate, "crop_size": config.crop_size,
                   "batch_size": config.batch_size, "max_steps": config.max_steps, "max_seconds": config.max_seconds},
    }
    model.metadata["lineage"] = list(model.metadata.get("lineage", [])) + [run]
    model.metadata["training"] = {**run, "history": [h for h in result.history if len(h) > 3]}


_SUFFIX = re.compile(r"-finetuned(-\d+)?$")


def fresh_model_name(base: str, folder: Path) -> str:
    """``<base>-finetuned``, then ``-2``, ``-3``...: never the name of an existing model or file."""
    stem = _SUFFIX.sub("", base or "model") + "-finetuned"
    taken = set(available_models())
    name, n = stem, 1
    while name in taken or (folder / f"{name}.safetensors").exists():
        n += 1
        name = f"{stem}-{n}"
    return name


class RegionPredictor:
    """Predicts labels on a window of one image, normalised as the whole image (for live previews)."""

    def __init__(self, image: Any, model: Model, *, rgb: bool = False) -> None:
        self.prepared = PreparedImage(image, in_channels=model.in_channels,
                                      normalization_settings=model.normalization, rgb=rgb)

    def __call__(self, model: Model, box: tuple[int, int, int, int], margin: int = 32) -> np.ndarray:
        """Labels for ``box`` = (y0, y1, x0, x1), predicted with ``margin`` px of context."""
        _, h, w = self.prepared.shape
        y0, y1, x0, x1 = box
        cy0, cy1, cx0, cx1 = max(y0 - margin, 0), min(y1 + margin, h), max(x0 - margin, 0), min(x1 + margin, w)
        window = self.prepared[:, cy0:cy1, cx0:cx1]
        logits = predict_tiled(model.net, window)
        labels = logits_to_labels(logits, model.task, model.postprocess)
        return labels[y0 - cy0:y1 - cy0, x0 - cx0:x1 - cx0]


def save_trained(model: Model, path: str | Path) -> Path:
    """Save under ``path`` (never over an existing file), naming the model after its file."""
    path = Path(path)
    if path.suffix != SUFFIX:
        path = path.with_name(path.name + SUFFIX)
    model.metadata["name"] = path.stem
    saved = save_model(model, path)
    model.name, model.path = path.stem, saved
    return saved
