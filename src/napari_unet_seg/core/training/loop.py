"""The training loop shared by the nuclei recipe, the Train widget and ``unet-seg train``.

Pairs of (image, labels[, valid-region]) are normalised once with the model's
own settings, then random augmented crops are drawn. The loop runs in bf16
autocast with channels_last where the hardware supports it, reports through
callbacks, stops on a step count, a time budget or ``cancel()``, and always
returns the best weights seen (by held-out score when there is held-out data).
With ``ema_decay`` it scores and keeps a moving average of the weights instead
of the last step's. Batches come from :mod:`.batches`, made ahead by worker
processes when ``workers`` is set (beside a GPU the crops, not the network,
limit the steps per second).
"""

from __future__ import annotations

import contextlib
import copy
import math
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..model.devices import autocast, resolve_device, resolve_precision
from ..model.modelfile import Model
from .batches import BatchMaker, batches
from .config import TrainConfig
from .data import PreparedPair, TrainingPair
from .evaluation import JUDGES, main_score, replay_check_score, replay_scores, score_groups
from .focus import ErrorFocus, error_focus
from .losses import instance_loss, semantic_loss


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
    scores: dict[str, float] | None = None
    parent_score: float | None = None  # the starting weights' held-out score: what trained weights must beat


@dataclass
class TrainResult:
    """The outcome: the model holds the best weights; history is the loss/score curve."""

    model: Model
    steps: int
    seconds: float
    history: list[dict[str, float]]
    best_score: float | None
    cancelled: bool
    best_scores: dict[str, float] | None = None
    stopped_because: str = ""  # why training stopped before its budget, other than a cancel
    forgot: int = 0  # trained weights turned down because they scored worse on earlier rounds' corrections
    errors_found: int | None = None  # objects the starting model got wrong in the training data (error focus)


class WeightAverage:
    """An exponential moving average of a network's weights and BatchNorm statistics.

    The averaged weights are smoother than the last step's, so held-out scores
    are less noisy and usually higher late in training. The decay ramps up
    from 0 (``(1 + n) / (10 + n)``) so short runs are not dominated by the
    random start.
    """

    def __init__(self, net: torch.nn.Module, decay: float) -> None:
        self.decay = decay
        self.updates = 0
        self.state = {k: v.detach().clone() for k, v in net.state_dict().items()}

    @torch.no_grad()
    def update(self, net: torch.nn.Module) -> None:
        self.updates += 1
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for key, value in net.state_dict().items():
            if value.is_floating_point():
                self.state[key].lerp_(value.detach(), 1.0 - decay)
            else:  # counters such as num_batches_tracked
                self.state[key].copy_(value)

    @contextlib.contextmanager
    def swapped_in(self, net: torch.nn.Module) -> Iterator[torch.nn.Module]:
        """The net holds the averaged weights inside the block, its own weights after."""
        own = copy.deepcopy(net.state_dict())
        net.load_state_dict(self.state)
        try:
            yield net
        finally:
            net.load_state_dict(own)


def loss_for(model: Model) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    return instance_loss if model.task == "instances" else semantic_loss


def train(
    model: Model,
    pairs: Sequence[TrainingPair],
    config: TrainConfig = TrainConfig(),
    *,
    val_pairs: Sequence[TrainingPair] = (),
    progress: Callable[[StepReport], None] | None = None,
    cancel: Callable[[], bool] | None = None,
    preview: Callable[[Model], None] | None = None,
    checkpoint: Callable[[dict[str, torch.Tensor]], None] | None = None,
) -> TrainResult:
    """Train ``model`` in place on ``pairs``; keep the best weights (by ``val_pairs`` when given).

    ``checkpoint(state)`` receives the weights training would end with if it
    stopped now (the best scored, else the moving average, else the current
    ones) every ``config.checkpoint_every`` seconds, so a crash or a killed
    process loses at most that much training.

    ``preview(model)`` is called after the first step (on a laptop CPU a short
    budget may hold fewer steps than ``config.preview_every``) and then every
    ``config.preview_every`` steps, with the network in eval mode (from this
    thread), so a GUI can show the model as it learns. Cancelling stops after the current step and still returns the best
    weights seen.
    """
    if not pairs:
        raise ValueError("nothing to train on: give at least one annotated image")
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(choose_threads(config.num_threads))
    try:
        return _train(model, pairs, config, val_pairs, progress, cancel, preview, checkpoint)
    finally:
        torch.set_num_threads(previous_threads)


def choose_threads(requested: int | None = None) -> int:
    """All cores on an idle machine, fewer when other processes keep them busy.

    Oversubscribed OpenMP threads are disastrous: on a 2-core CPU with another
    job running, 2 threads trained ~10x slower than 1 (measured).

    The load average is not the measure: it includes this process's own
    recent work (segmenting just before training counted as "another job"
    and halved the threads on an idle machine). Other processes' runnable
    threads are counted instead, from ``/proc/loadavg``, sampled a few times.
    """
    if requested:
        return requested
    cores = os.cpu_count() or 1
    busy = others_running()
    if busy is None:
        try:
            busy = int(round(os.getloadavg()[0]))
        except (AttributeError, OSError):
            return torch.get_num_threads()
    return max(1, min(torch.get_num_threads(), cores - busy))


def others_running(samples: int = 5, pause: float = 0.01, source: str = "/proc/loadavg") -> int | None:
    """Threads of other processes ready to run now (the most seen in a few samples); None where unknown."""
    seen = []
    for _ in range(samples):
        try:
            with open(source) as f:
                running = int(f.read().split()[3].split("/")[0])
        except (OSError, ValueError, IndexError):
            return None
        seen.append(max(0, running - 1))  # this thread, reading the file, is one of them
        time.sleep(pause)
    return max(seen)


def freeze_batchnorm(net: torch.nn.Module) -> None:
    """BatchNorms in eval mode: a few crops of one image then cannot pull statistics learnt from many away."""
    for module in net.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.eval()


class BestWeights:
    """The best-scoring weights seen so far; ties go to the later (longer trained) weights.

    "Scoring" is :func:`.evaluation.main_score` with ``judge`` (AP50-90 for
    instance models by default), then AP50, then Dice. Earlier rounds are
    checked by AP50 (:func:`.evaluation.replay_check_score`).

    Except against the starting weights (step 0): trained weights replace
    them only with a main score higher by at least :data:`MIN_GAIN`, so a tie on a small
    held-out strip never swaps a working model for an untested one (on
    dsb2018 stained images such ties made the other images worse). Unless
    both score perfectly (:func:`perfect_tie`): nothing can beat a perfect
    score, and a strip the parent gets entirely right cannot tell the two
    apart, so the weights that learnt the user's corrections win. And
    never with a lower score than the starting weights' on earlier rounds'
    corrections (replay, :func:`.evaluation.score_groups`): a new round must
    not forget what the last ones taught. ``forgot`` counts the trained
    weights turned down for that alone.
    """

    def __init__(self, judge: str = "ap50_90") -> None:
        if judge not in JUDGES:  # a misspelt judge would silently fall back to AP50
            raise ValueError(f"unknown judge {judge!r}: use one of {', '.join(JUDGES)}")
        self.judge = judge
        self.score: float | None = None
        self.key: tuple[float, float, float] | None = None
        self.state: dict[str, torch.Tensor] | None = None
        self.scores: dict[str, float] | None = None
        self.parent: dict[str, float] | None = None
        self.forgot = 0

    def offer(self, net: torch.nn.Module, scores: dict[str, float], step: int) -> None:
        """Keep a copy of ``net``'s weights if ``scores`` beat (or tie) the best so far."""
        value = main_score(scores, self.judge)
        key = (value, scores.get("ap50", 0.0), scores.get("dice", 0.0))
        replaces_parent = False
        if step == 0:
            self.parent = dict(scores)
        elif self.parent is not None:
            parent = main_score(self.parent, self.judge)
            if not (value >= parent + MIN_GAIN or perfect_tie(value, parent)):
                return  # the starting weights stay unless beaten outright
            earlier, before = replay_scores(scores), replay_scores(self.parent)
            if earlier and not replay_check_score(earlier) >= replay_check_score(before):
                self.forgot += 1
                return  # better on the new corrections but worse on earlier ones: forgetting
            replaces_parent = self.scores is not None and self.scores.get("step") == 0
        if self.score is None or replaces_parent or (not math.isnan(value) and key >= self.key):
            self.score, self.key = value, key
            self.state = copy.deepcopy(net.state_dict())
            self.scores = dict(scores, step=step)


# A gain the verdict can show (it prints three decimals). Smaller ones are outline jitter on the same objects:
# in a newcomer's trial, AP50-90 0.9518 vs 0.9516 on the sample image was called "better" (0.952 vs 0.952),
# put in use, and made 12 unseen images worse (AP50 0.883 -> 0.873).
MIN_GAIN = 1e-3


def perfect_tie(value: float, parent: float) -> bool:
    """Both scores perfect: the held-out annotation is too easy to tell the weights apart.

    A strictly higher score is then impossible, so requiring one would keep
    the parent whatever training learnt. Measured on s-bsst265 cytospins,
    whose 5-nucleus held-out strip the built-in model gets entirely right:
    the trained weights that also got it right were better on every one of
    the other images' runs (AP50 0.693 -> 0.717-0.759, 4 runs; see
    benchmarks/RESULTS.md), while weights that lost any held-out object
    (a third of a brightfield image taught one to see no nuclei) are still
    turned down.
    """
    return parent >= 1.0 and value >= 1.0


def learning_rate(config: TrainConfig, step: int, elapsed: float) -> float:
    """Linear warm-up, then a cosine decay over whichever budget (steps or seconds) runs out first."""
    warmup = max(1, min(config.warmup_steps, config.max_steps // 10))
    done = step / config.max_steps
    if config.max_seconds:
        done = max(done, elapsed / config.max_seconds)
    ramp = min(1.0, (step + 1) / warmup)
    return config.learning_rate * ramp * 0.5 * (1 + math.cos(math.pi * min(done, 1.0)))


class Trainer:
    """One training run: the data, the network on its device, the optimiser, the best weights so far."""

    def __init__(self, model: Model, pairs: Sequence[TrainingPair], config: TrainConfig,
                 val_pairs: Sequence[TrainingPair]) -> None:
        self.model, self.config = model, config
        torch.manual_seed(config.seed)
        self.prepared = [PreparedPair(p, model) for p in pairs]
        self.val_prepared = [PreparedPair(p, model) for p in val_pairs]
        weights = np.array(
            [p.pair.weight if p.pair.weight is not None else max(_annotated_area(p), 1) for p in self.prepared], float,
        )
        self.weights = weights / weights.sum()
        self.device = resolve_device(config.device)
        self.precision = resolve_precision(config.precision, self.device)
        # channels_last suits oneDNN's and cuDNN's convolutions: on a 2-core CPU without bf16, a training step of
        # the built-in model took 7.5 s contiguous and 2.9-4.9 s channels_last (fp32, batch 8 of 256 x 256)
        self.memory_format = torch.channels_last if self.device.type in ("cpu", "cuda") else torch.contiguous_format
        self.net = model.net.to(self.device).to(memory_format=self.memory_format)
        self.optimizer = torch.optim.AdamW(self.net.parameters(), lr=config.learning_rate,
                                           weight_decay=config.weight_decay)
        self.loss_fn = loss_for(model)
        # fp16 (GPUs without bf16) needs its loss scaled, or small gradients round to zero; bf16 and fp32 do not
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.device.type == "cuda" and self.precision == "fp16")
        self.best = BestWeights(config.judge)
        self.average = WeightAverage(self.net, config.ema_decay) if config.ema_decay > 0 else None
        self.focus = self.find_errors()
        maker = BatchMaker(self.prepared, self.focus, self.weights, model.task, config, config.max_steps)
        self.stream = batches(maker, config.workers, pin_memory=self.device.type == "cuda")

    def find_errors(self, budget: int = 8_000_000) -> list[ErrorFocus | None]:
        """Each pair's errors by the starting weights (:mod:`.focus`), for instance models when asked for.

        Finding them means segmenting the annotation once: pairs that do not
        fit in what is left of ``budget`` annotated pixels (largest first)
        are sampled uniformly.
        """
        config = self.config
        wanted = config.focus_errors > 0 or config.error_weight != 1.0
        if not wanted or self.model.task != "instances" or config.scribbles:
            return [None] * len(self.prepared)
        self.net.eval()
        out: list[ErrorFocus | None] = [None] * len(self.prepared)
        for i in sorted(range(len(self.prepared)), key=lambda i: -_annotated_area(self.prepared[i])):
            if _annotated_area(self.prepared[i]) > budget:
                continue  # too big to segment first: sampled uniformly (smaller pairs still get their focus)
            budget -= _annotated_area(self.prepared[i])
            out[i] = error_focus(self.model, self.prepared[i], error_weight=config.error_weight,
                                 device=str(self.device), precision=self.precision)
        self.net.to(memory_format=self.memory_format)
        return out

    def evaluate(self, step: int) -> dict[str, float]:
        """Score the current (or averaged) weights on held-out data; remember them if they are the best."""
        averaged = self.average is not None and step > 0
        with self.average.swapped_in(self.net) if averaged else contextlib.nullcontext():
            self.net.eval()
            scores = score_groups(self.model, self.val_prepared, device=str(self.device), precision=self.precision,
                                  scribbles=self.config.scribbles)
            self.net.to(memory_format=self.memory_format)
            self.best.offer(self.net, scores, step)
        return scores

    def step(self, step: int, elapsed: float) -> float:
        """One optimiser step on a fresh batch of augmented crops; returns the loss.

        A non-finite loss changes nothing (the weights stay the last good
        ones) and is returned as is, so the caller can stop.
        """
        config, net = self.config, self.net
        for group in self.optimizer.param_groups:
            group["lr"] = learning_rate(config, step, elapsed)
        net.train()
        if config.freeze_batchnorm:
            freeze_batchnorm(net)
        x, y = next(self.stream)  # batch number ``step``
        x = x.to(self.device, non_blocking=True).contiguous(memory_format=self.memory_format)
        y = y.to(self.device, non_blocking=True)
        with autocast(self.device, self.precision):
            logits = net(x)
        loss = self.loss_fn(logits, y)
        if not torch.isfinite(loss.detach()):
            return float(loss.detach())
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)  # skipped, and the scale lowered, when scaled gradients overflowed
        self.scaler.update()
        if self.average is not None:
            self.average.update(net)
        return float(loss.detach())

    def show(self, preview: Callable[[Model], None]) -> None:
        """Hand the model, in eval mode, to a preview callback (from this thread)."""
        self.net.eval()
        with torch.inference_mode():
            preview(self.model)
        self.net.to(memory_format=self.memory_format)

    def kept_weights(self, step: int) -> dict[str, torch.Tensor]:
        """The weights training would end with now: the best scored, else the average, else the current ones."""
        if self.best.state is not None:
            return self.best.state
        if self.average is not None and step:
            return self.average.state
        return self.net.state_dict()

    def finish(self, step: int) -> None:
        """Leave the best weights (else the average) in the model, on the CPU, in eval mode; stop the workers."""
        self.stream.close()
        self.net.load_state_dict(self.kept_weights(step))
        self.net.to(memory_format=torch.contiguous_format).to("cpu").eval()


def _train(model: Model, pairs: Sequence[TrainingPair], config: TrainConfig, val_pairs: Sequence[TrainingPair],
           progress: Callable[[StepReport], None] | None, cancel: Callable[[], bool] | None,
           preview: Callable[[Model], None] | None,
           checkpoint: Callable[[dict[str, torch.Tensor]], None] | None = None) -> TrainResult:
    trainer = Trainer(model, pairs, config, val_pairs)
    try:
        return _run(trainer, config, progress, cancel, preview, checkpoint)
    finally:
        trainer.stream.close()  # the workers stop here too when training fails


def _run(trainer: Trainer, config: TrainConfig, progress: Callable[[StepReport], None] | None,
         cancel: Callable[[], bool] | None, preview: Callable[[Model], None] | None,
         checkpoint: Callable[[dict[str, torch.Tensor]], None] | None) -> TrainResult:
    held_out = bool(trainer.val_prepared)
    history: list[dict[str, float]] = []
    start = time.monotonic()
    if held_out and config.eval_initial:
        history.append({"step": 0, "seconds": time.monotonic() - start, **trainer.evaluate(0)})
    cancelled = False
    stopped_because = ""
    last_checkpoint = time.monotonic()
    step = 0
    running = None
    while step < config.max_steps:
        if cancel is not None and cancel():
            cancelled = True
            break
        elapsed = time.monotonic() - start
        if config.max_seconds is not None and elapsed >= config.max_seconds:
            break
        value = trainer.step(step, elapsed)
        if not math.isfinite(value):
            stopped_because = (f"the loss became {value} at step {step + 1} (training diverged); the last good "
                               "weights were kept")
            break
        step += 1
        running = value if running is None else 0.9 * running + 0.1 * value
        record: dict[str, float] = {"step": step, "loss": value, "seconds": time.monotonic() - start}
        scores = None
        if held_out and (step % config.eval_every == 0 or step == config.max_steps):
            scores = trainer.evaluate(step)
            record.update(scores)
        history.append(record)
        if preview is not None and config.preview_every and (step == 1 or step % config.preview_every == 0):
            trainer.show(preview)
        if checkpoint is not None and time.monotonic() - last_checkpoint >= config.checkpoint_every:
            checkpoint(trainer.kept_weights(step))  # before the report: the report can say it is saved
            last_checkpoint = time.monotonic()
        if progress is not None:
            progress(_report(step, config, running, start, scores, trainer.best))
    if held_out and step and not ({"ap50", "mean_iou"} & history[-1].keys()):
        # stopped by time or cancel between evaluations: the last weights get a chance too
        history[-1].update(trainer.evaluate(step))
        if progress is not None:
            progress(_report(step, config, running, start, history[-1], trainer.best))
    trainer.finish(step)
    best = trainer.best
    found = [f.objects for f in trainer.focus if f is not None]
    errors_found = sum(found) if found else None
    return TrainResult(trainer.model, step, time.monotonic() - start, history, best.score, cancelled, best.scores,
                       stopped_because, best.forgot, errors_found)


def _annotated_area(item: PreparedPair) -> int:
    """Annotated pixels at the network's scale: how often training draws crops from this pair."""
    if item.train_valid is not None:
        return int(item.train_valid.sum())
    return int(item.train_image.shape[1] * item.train_image.shape[2])


def _report(step: int, config: TrainConfig, running: float | None, start: float,
            scores: dict[str, float] | None, best: BestWeights) -> StepReport:
    seconds = time.monotonic() - start
    left = (config.max_steps - step) * seconds / max(step, 1)
    if config.max_seconds is not None:
        left = min(left, max(config.max_seconds - seconds, 0.0))
    value = None if scores is None else main_score(scores, config.judge)
    parent = None if best.parent is None else main_score(best.parent, config.judge)
    return StepReport(step, config.max_steps, float(running or 0.0), seconds, left, value, best.score, scores, parent)
