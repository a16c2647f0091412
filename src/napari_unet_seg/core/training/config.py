"""How long and how to train: one frozen dataclass shared by the loop, the batch makers and every caller."""

from __future__ import annotations

from dataclasses import dataclass, field

from .augment import AugmentConfig


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
    warmup_steps: int = 20  # short: a 2-minute CPU budget is only ~100 steps
    eval_every: int = 50
    eval_initial: bool = True  # score the starting weights, so training can never make things worse
    preview_every: int = 20
    checkpoint_every: float = 30.0  # seconds between checkpoints (when the caller asks for them)
    device: str = "auto"
    precision: str = "auto"
    seed: int = 0
    num_threads: int | None = None
    contact_weight: float = 0.0  # extra centre-map weight where objects touch (instances)
    ema_decay: float = 0.0  # > 0: score and keep an exponential moving average of the weights
    focus_errors: float = 0.0  # share of crops centred on objects the starting model got wrong (instances)
    error_weight: float = 1.0  # loss weight of those objects' pixels (1 = like any other)
    freeze_batchnorm: bool = False  # BatchNorm normalises with its stored statistics and never updates them
    judge: str = "ap50_90"  # held-out score that picks the kept weights (instances): "ap50_90" or "ap50"
    workers: int = 0  # processes that make batches ahead (beside a GPU); 0 = in the loop's thread
