"""The training loop shared by the nuclei recipe, the Train widget and ``unet-seg train``.

Pairs of (image, labels[, valid-region]) are normalised once with the model's
own settings, then random augmented crops are drawn. The loop runs in bf16
autocast with channels_last where the hardware supports it, reports through
callbacks, stops on a step count, a time budget or ``cancel()``, and always
returns the best weights seen (by held-out score when there is held-out data).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch

from .augment import AugmentConfig, augment_intensity, flip_rotate, random_crop
from .devices import autocast, resolve_device, resolve_precision
from .losses import instance_loss, semantic_loss
from .metrics import average_precision, dice
from .modelfile import Model
from .postprocess import logits_to_labels
from .preprocess import PreparedImage
from .targets import IGNORE, instance_targets, semantic_targets
from .tiling import predict_tiled


@dataclass
class TrainingPair:
    """One annotated image. ``valid`` (optional, same H, W) marks annotated pixels."""

    image: Any
    labels: np.ndarray
    valid: np.ndarray | None = None
    rgb: bool = False
    name: str = ""
    weight: float | None = None  # sampling weight; None = proportional to area


@dataclass(frozen=True)
class TrainConfig:
    """How long and how to train; defaults suit fine-tuning on a laptop CPU."""

    max_steps: int = 400
    max_seconds: float | None = None
    crop_size: int = 256
    batch_size: int = 4
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    scribbles: bool = False
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    eval_every: int = 50
    device: str = "auto"
    precision: str = "auto"
    seed: int = 0
    num_threads: int | None = None


@dataclass
class StepReport:
    """What the loop tells its ``progress`` callback after each step."""

    step: int
    max_steps: int
    loss: float
    seconds: float
    seconds_left: float | None
    val_score: float | None = None
    best_score: float | None = None


@dataclass
class TrainResult:
    """The outcome: the model holds the best weights; history is the loss/score curve."""

    model: Model
    steps: int
    seconds: float
    history: list[dict[str, float]]
    best_score: float | None
    cancelled: bool


class _Prepared:
    """A pair normalised once, kept in memory as float32 (C, H, W)."""

    def __init__(self, pair: TrainingPair, model: Model) -> None:
        prepared = PreparedImage(
            pair.image, in_channels=model.in_channels,
            normalization_settings=model.normalization, rgb=pair.rgb,
        )
        self.image = np.asarray(prepared)
        labels = np.asarray(pair.labels)
        if labels.shape != self.image.shape[1:]:
            raise ValueError(
                f"labels {pair.name or ''} have shape {labels.shape} but the image is {self.image.shape[1:]}"
            )
        self.labels = labels.astype(np.int64)
        self.valid = None if pair.valid is None else (np.asarray(pair.valid) > 0)
        if self.valid is not None and self.valid.shape != labels.shape:
            raise ValueError("the annotated-region mask must have the same height and width as the labels")
        self.pair = pair


def _sample(prepared: _Prepared, model: Model, config: TrainConfig, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    lo, hi = config.augment.scale_range
    scale = float(np.exp(rng.uniform(math.log(lo), math.log(hi))))
    # prefer crops that contain annotation when the annotated region is small
    for _ in range(5):
        img, lab, val = random_crop(prepared.image, prepared.labels, prepared.valid, config.crop_size, scale, rng)
        if config.scribbles:
            annotated = (lab > 0) & (val > 0)
        else:
            annotated = val > 0
        if annotated.any():
            break
    if config.augment.flips:
        img, lab, val = flip_rotate([img, lab, val], rng)
    if model.task == "instances":
        if config.augment.intensity:
            img = augment_intensity(img, lab, config.augment, rng)
        return img, instance_targets(lab, val)
    if config.augment.intensity:
        img = augment_intensity(img, None, replace(config.augment, dim_objects=False, texture=False), rng)
    return img, semantic_targets(lab, val, scribbles=config.scribbles)


def loss_for(model: Model) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    return instance_loss if model.task == "instances" else semantic_loss


def evaluate_pairs(
    model: Model, pairs: Sequence[TrainingPair], *, device: str = "auto", precision: str = "auto",
    scribbles: bool = False,
) -> dict[str, float]:
    """Mean AP@0.5 and Dice (instances) or mean IoU over classes (semantic) on annotated pairs."""
    from .pipeline import predict_logits

    aps, dices, ious = [], [], []
    for pair in pairs:
        logits = predict_logits(model, pair.image, rgb=pair.rgb, device=device, precision=precision)
        pred = logits_to_labels(logits, model.task, model.postprocess)
        truth = np.asarray(pair.labels)
        if model.task == "instances":
            if pair.valid is not None:
                pred = np.where(pair.valid > 0, pred, 0)
                truth = np.where(pair.valid > 0, truth, 0)
            aps.append(average_precision(truth, pred))
            dices.append(dice(truth, pred))
        else:
            target = semantic_targets(truth, pair.valid, scribbles=scribbles)
            ious.append(mean_iou(target, pred, len(model.class_names)))
    if model.task == "instances":
        return {"ap50": float(np.mean(aps)), "dice": float(np.mean(dices))}
    return {"mean_iou": float(np.nanmean(ious))}


def mean_iou(target: np.ndarray, prediction: np.ndarray, num_classes: int) -> float:
    """Mean IoU over classes present in the annotated pixels (target IGNORE excluded)."""
    annotated = target != IGNORE
    values = []
    for c in range(num_classes):
        t = (target == c) & annotated
        p = (prediction == c) & annotated
        if t.sum() == 0:
            continue
        values.append((t & p).sum() / (t | p).sum())
    return float(np.mean(values)) if values else float("nan")


def train(
    model: Model,
    pairs: Sequence[TrainingPair],
    config: TrainConfig = TrainConfig(),
    *,
    val_pairs: Sequence[TrainingPair] = (),
    progress: Callable[[StepReport], None] | None = None,
    cancel: Callable[[], bool] | None = None,
) -> TrainResult:
    """Train ``model`` in place on ``pairs``; keep the best weights (by ``val_pairs`` when given)."""
    if not pairs:
        raise ValueError("nothing to train on: give at least one annotated image")
    rng = np.random.default_rng(config.seed)
    torch.manual_seed(config.seed)
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    prepared = [_Prepared(p, model) for p in pairs]
    weights = np.array(
        [p.pair.weight if p.pair.weight is not None else max(p.image.shape[1] * p.image.shape[2], 1) for p in prepared],
        float,
    )
    weights /= weights.sum()

    device = resolve_device(config.device)
    precision = resolve_precision(config.precision, device)
    memory_format = torch.channels_last if precision != "fp32" or device.type == "cuda" else torch.contiguous_format
    net = model.net.to(device).to(memory_format=memory_format)
    optimizer = torch.optim.AdamW(net.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    warmup = max(1, min(50, config.max_steps // 10))
    loss_fn = loss_for(model)
    best_state = copy.deepcopy(net.state_dict())
    best_score: float | None = None
    history: list[dict[str, float]] = []
    start = time.monotonic()
    cancelled = False
    step = 0
    running = None
    while step < config.max_steps:
        if cancel is not None and cancel():
            cancelled = True
            break
        elapsed = time.monotonic() - start
        if config.max_seconds is not None and elapsed >= config.max_seconds:
            break
        # cosine schedule over whichever budget (steps or seconds) runs out first
        done = step / config.max_steps
        if config.max_seconds:
            done = max(done, elapsed / config.max_seconds)
        for group in optimizer.param_groups:
            group["lr"] = config.learning_rate * min(1.0, (step + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(done, 1.0)))
        net.train()
        samples = [_sample(prepared[rng.choice(len(prepared), p=weights)], model, config, rng) for _ in range(config.batch_size)]
        x = torch.from_numpy(np.stack([s[0] for s in samples])).to(device).contiguous(memory_format=memory_format)
        y = torch.from_numpy(np.stack([s[1] for s in samples])).to(device)
        with autocast(device, precision):
            logits = net(x)
        loss = loss_fn(logits, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        step += 1
        value = float(loss.detach())
        running = value if running is None else 0.9 * running + 0.1 * value
        record: dict[str, float] = {"step": step, "loss": value, "seconds": time.monotonic() - start}
        val_score = None
        last = step == config.max_steps
        if (step % config.eval_every == 0 or last) and val_pairs:
            net.eval()
            scores = evaluate_pairs(model, val_pairs, device=str(device), precision=precision, scribbles=config.scribbles)
            val_score = scores.get("ap50", scores.get("mean_iou"))
            record.update(scores)
            if best_score is None or val_score > best_score:
                best_score = val_score
                best_state = copy.deepcopy(net.state_dict())
        elif not val_pairs:
            best_state = None  # no held-out data: the latest weights are the best we know
        history.append(record)
        if progress is not None:
            seconds = time.monotonic() - start
            per_step = seconds / step
            left = (config.max_steps - step) * per_step
            if config.max_seconds is not None:
                left = min(left, max(config.max_seconds - seconds, 0))
            progress(StepReport(step, config.max_steps, running, seconds, left, val_score, best_score))
    if best_state is not None:
        net.load_state_dict(best_state)
    net.to(memory_format=torch.contiguous_format).to("cpu").eval()
    return TrainResult(model, step, time.monotonic() - start, history, best_score, cancelled)
