"""Batches made ahead by worker processes are the batches the loop would make itself."""

from __future__ import annotations

import numpy as np
import pytest
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


class _WhoMadeIt(BatchMaker):
    """Also says which worker made each batch (-1: the loop's own process)."""

    def __getitem__(self, k):
        x, y = super().__getitem__(k)
        info = torch.utils.data.get_worker_info()
        return x, y, torch.tensor(-1 if info is None else info.id)


class _Failing(BatchMaker):
    def __getitem__(self, k):
        if k == 1:
            raise ValueError("a crop went wrong")
        return super().__getitem__(k)


def _like(cls, maker: BatchMaker) -> BatchMaker:
    other = cls.__new__(cls)
    other.__dict__.update(maker.__dict__)
    return other


# a 1-CPU machine warns that 2 workers are more than it has; the batches are the same
ONE_CPU = pytest.mark.filterwarnings("ignore:This DataLoader will create")


@ONE_CPU
def test_worker_processes_make_the_same_batches_in_order():
    config = TrainConfig(crop_size=40, batch_size=2, seed=1)
    maker = _like(_WhoMadeIt, _maker(config, length=6))
    here = list(batches(maker, workers=0))
    ahead = list(batches(maker, workers=2))
    assert len(here) == len(ahead) == 6
    assert {int(b[2]) for b in here} == {-1} and {int(b[2]) for b in ahead} == {0, 1}  # workers made them
    for (xa, ya, _), (xb, yb, _) in zip(here, ahead, strict=True):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)


@ONE_CPU
def test_workers_stop_when_a_batch_fails_even_while_the_error_is_kept():
    import multiprocessing

    maker = _like(_Failing, _maker(TrainConfig(crop_size=40, batch_size=2), length=6))
    with pytest.raises(ValueError, match="a crop went wrong") as caught:
        list(batches(maker, workers=2))
    assert caught.value.__traceback__ is not None  # the traceback, and the frames it holds, are still alive
    assert not multiprocessing.active_children()


def test_the_global_torch_generator_is_left_alone():
    maker = _maker(TrainConfig(crop_size=40, batch_size=2), length=2)
    draws = []
    for workers in (0, 2):
        torch.manual_seed(3)
        list(batches(maker, workers=workers))
        draws.append(torch.rand(1))
    assert torch.equal(draws[0], draws[1])


def test_a_step_count_bounded_only_by_time_trains():
    image, labels = synthetic_nuclei((96, 96))
    model = starting_model("none", **TINY)
    result = train(model, [TrainingPair(image, labels)],
                   TrainConfig(max_steps=10**20, max_seconds=0.5, crop_size=48, batch_size=2, num_threads=1))
    assert 0 < result.steps < 10**20


@ONE_CPU
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
