"""Batches made ahead by worker processes are the batches the loop would make itself."""

from __future__ import annotations

import numpy as np
import torch

from helpers import synthetic_nuclei
from napari_unet_seg.core.training.batches import BatchMaker, batches
from napari_unet_seg.core.training.data import PreparedPair, TrainingPair
from napari_unet_seg.core.training.finetune import starting_model
from napari_unet_seg.core.training.loop import TrainConfig, train

TINY = dict(depth=2, width=4)


def _pairs():
    return [TrainingPair(*synthetic_nuclei((120, 96), n=12, seed=s)) for s in range(3)]


def _maker(config: TrainConfig, length: int = 5) -> BatchMaker:
    model = starting_model("none", **TINY)
    prepared = [PreparedPair(p, model) for p in _pairs()]
    weights = np.array([0.2, 0.3, 0.5])
    return BatchMaker(prepared, [None] * 3, weights, model.task, config, length)


def test_a_batch_depends_on_the_seed_and_its_number_only():
    config = TrainConfig(crop_size=40, batch_size=3, seed=4)
    maker = _maker(config)
    x2, y2 = maker[2]
    x0, _ = maker[0]
    again, _ = maker[2]  # made again, after another batch
    assert x2.shape == (3, 1, 40, 40) and y2.shape[0] == 3
    assert torch.equal(x2, again)
    assert not torch.equal(x0, x2)
    other_seed = _maker(TrainConfig(crop_size=40, batch_size=3, seed=5))
    assert not torch.equal(other_seed[2][0], x2)


def test_worker_processes_make_the_same_batches_in_order():
    config = TrainConfig(crop_size=40, batch_size=2, seed=1)
    maker = _maker(config, length=6)
    here = list(batches(maker, workers=0))
    ahead = list(batches(maker, workers=2))
    assert len(here) == len(ahead) == 6
    for (xa, ya), (xb, yb) in zip(here, ahead, strict=True):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)


def test_training_with_workers_gives_the_same_weights():
    image, labels = synthetic_nuclei((96, 96))
    results = []
    for workers in (0, 2):
        model = starting_model("none", **TINY)
        torch.manual_seed(0)
        model.net.load_state_dict(starting_model("none", **TINY).net.state_dict())
        train(model, [TrainingPair(image, labels)],
              TrainConfig(max_steps=4, crop_size=48, batch_size=2, workers=workers, num_threads=1))
        results.append(model.net.state_dict())
    for key in results[0]:
        assert torch.equal(results[0][key], results[1][key]), key


def test_checkpoints_hold_the_moving_average_when_nothing_is_held_out():
    """What a checkpoint holds is what training would return if it stopped there."""
    image, labels = synthetic_nuclei((96, 96))
    model = starting_model("none", **TINY)
    saved = []
    config = TrainConfig(max_steps=5, crop_size=48, batch_size=2, ema_decay=0.9, checkpoint_every=0.0, num_threads=1)
    train(model, [TrainingPair(image, labels)], config, checkpoint=lambda s: saved.append(
        {k: v.detach().clone().cpu() for k, v in s.items()}))
    assert len(saved) == 5
    final = model.net.state_dict()
    for key in final:
        assert torch.equal(saved[-1][key], final[key]), key
