"""The training loop with tiny networks: cancel keeps the best checkpoint, time budget, weight averaging."""

from __future__ import annotations

import numpy as np
import pytest

from helpers import synthetic_nuclei
from napari_unet_seg.core.training.data import TrainingPair
from napari_unet_seg.core.training.evaluation import evaluate_pairs
from napari_unet_seg.core.training.finetune import starting_model
from napari_unet_seg.core.training.loop import TrainConfig, train
from napari_unet_seg.core.training.split import split_validation

TINY = dict(depth=2, width=4)


def _fast(**kw) -> TrainConfig:
    return TrainConfig(**{"max_steps": 6, "crop_size": 48, "batch_size": 2, "eval_every": 3, **kw})


def test_cancel_keeps_the_best_weights_seen():
    image, labels = synthetic_nuclei((300, 300), n=40)
    model = starting_model("none", **TINY)
    train_pairs, val_pairs = split_validation([TrainingPair(image, labels)], scribbles=False)
    steps = []

    def cancel() -> bool:
        return len(steps) >= 7

    result = train(model, train_pairs, _fast(max_steps=100), val_pairs=val_pairs, progress=steps.append, cancel=cancel)
    assert result.cancelled and result.steps == 7
    assert result.best_scores is not None
    scored = [h for h in result.history if "ap50" in h]
    start, trained = scored[0], [h for h in scored if h["step"] > 0]
    best = max(trained, key=lambda h: (h["ap50_90"], h["ap50"], h["dice"], h["step"]))
    if start["step"] == 0 and not best["ap50_90"] > start["ap50_90"]:
        best = start  # the starting weights stay unless beaten outright
    assert result.best_scores["step"] == best["step"]
    # the returned model really is that checkpoint
    again = evaluate_pairs(model, val_pairs)
    assert again["ap50"] == pytest.approx(best["ap50"]) and again["dice"] == pytest.approx(best["dice"], abs=1e-6)
    assert again["ap50_90"] == pytest.approx(best["ap50_90"])


def test_the_first_preview_comes_after_the_first_step_then_every_preview_every_steps():
    image, labels = synthetic_nuclei((96, 96))
    model = starting_model("none", **TINY)
    steps, shown = [], []
    train(model, [TrainingPair(image, labels)], _fast(max_steps=7, preview_every=3), progress=steps.append,
          preview=lambda net: shown.append(len(steps)))
    assert shown == [0, 2, 5]  # during steps 1, 3 and 6 (a report follows each): a short budget still shows one


def test_time_budget_stops_training():
    image, labels = synthetic_nuclei((96, 96))
    model = starting_model("none", **TINY)
    result = train(model, [TrainingPair(image, labels)], _fast(max_steps=10_000, max_seconds=1.0))
    assert result.steps < 10_000 and result.seconds < 5


def test_weight_average_follows_the_moving_average_formula():
    import torch

    from napari_unet_seg.core.training.loop import WeightAverage

    net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2))
    start = {k: v.clone() for k, v in net.state_dict().items()}
    average = WeightAverage(net, decay=0.99)
    with torch.no_grad():
        net[0].weight.add_(1.0)
        net[1].num_batches_tracked.fill_(7)
    average.update(net)  # first update: decay ramps to 2/11
    expected = start["0.weight"] + (1 - 2 / 11) * 1.0
    assert torch.allclose(average.state["0.weight"], expected)
    assert int(average.state["1.num_batches_tracked"]) == 7
    with average.swapped_in(net):
        assert torch.allclose(net[0].weight, expected)
    assert torch.allclose(net[0].weight, start["0.weight"] + 1.0)  # own weights are back


def test_averaged_weights_are_what_training_returns():
    image, labels = synthetic_nuclei((96, 96))
    pairs = [TrainingPair(image, labels)]
    plain = starting_model("none", **TINY)
    averaged = starting_model("none", **TINY)
    averaged.net.load_state_dict(plain.net.state_dict())
    train(plain, pairs, _fast())
    train(averaged, pairs, _fast(ema_decay=0.9))
    differs = [not np.allclose(a.detach(), b.detach())
               for a, b in zip(plain.net.parameters(), averaged.net.parameters())]
    assert any(differs)


def test_trained_weights_replace_the_starting_ones_only_when_strictly_better():
    import torch

    from napari_unet_seg.core.training.loop import BestWeights

    net = torch.nn.Linear(1, 1)
    best = BestWeights()
    best.offer(net, {"ap50": 0.8, "dice": 0.9}, step=0)
    with torch.no_grad():
        net.weight.fill_(7.0)
    best.offer(net, {"ap50": 0.8, "dice": 0.95}, step=40)  # a tie on the main score: the parent stays
    assert best.scores["step"] == 0 and best.state["weight"].item() != 7.0
    best.offer(net, {"ap50": 0.85, "dice": 0.9}, step=80)
    assert best.scores["step"] == 80
    best.offer(net, {"ap50": 0.85, "dice": 0.92}, step=120)  # among trained weights, ties go to the later
    assert best.scores["step"] == 120


def test_instance_models_are_judged_by_ap50_90_so_an_ap50_tie_can_be_broken():
    import torch

    from napari_unet_seg.core.training.loop import BestWeights

    net = torch.nn.Linear(1, 1)
    best = BestWeights()
    best.offer(net, {"ap50_90": 0.68, "ap50": 0.94, "dice": 0.93}, step=0)
    best.offer(net, {"ap50_90": 0.68, "ap50": 0.96, "dice": 0.93}, step=40)  # AP50-90 ties: the parent stays
    assert best.scores["step"] == 0
    # a gain too small for the verdict to show (0.952 vs 0.952) is no gain: such a model, put in use in a
    # newcomer's trial, made unseen images worse
    best.offer(net, {"ap50_90": 0.6802, "ap50": 0.99, "dice": 0.93}, step=60)
    assert best.scores["step"] == 0
    best.offer(net, {"ap50_90": 0.72, "ap50": 0.92, "dice": 0.94}, step=80)  # outlines fit better on the whole
    assert best.scores["step"] == 80 and best.score == 0.72
    best.offer(net, {"ap50_90": 0.72, "ap50": 0.90, "dice": 0.99}, step=120)  # a tie goes to AP50 before Dice
    assert best.scores["step"] == 80

    by_ap50 = BestWeights(judge="ap50")  # the built-in model's recipe (scripts/train_nuclei.py)
    by_ap50.offer(net, {"ap50_90": 0.68, "ap50": 0.94, "dice": 0.93}, step=0)
    by_ap50.offer(net, {"ap50_90": 0.72, "ap50": 0.92, "dice": 0.94}, step=80)
    assert by_ap50.scores["step"] == 0 and by_ap50.score == 0.94
    with pytest.raises(ValueError, match="unknown judge 'ap5090'"):
        BestWeights(judge="ap5090")


def test_a_perfect_tie_lets_the_trained_weights_replace_the_parent():
    import torch

    from napari_unet_seg.core.training.loop import BestWeights

    net = torch.nn.Linear(1, 1)
    best = BestWeights()
    best.offer(net, {"ap50_90": 1.0, "ap50": 1.0, "dice": 0.98}, step=0)  # a strip the parent gets entirely right
    best.offer(net, {"ap50_90": 0.93, "ap50": 1.0, "dice": 0.99}, step=40)  # an outline worse: the parent stays
    assert best.scores["step"] == 0
    with torch.no_grad():
        net.weight.fill_(7.0)
    best.offer(net, {"ap50_90": 1.0, "ap50": 1.0, "dice": 0.97}, step=80)  # also perfect: replaces it, lower Dice
    assert best.scores["step"] == 80 and best.state["weight"].item() == 7.0  # and all
    best.offer(net, {"ap50_90": 1.0, "ap50": 1.0, "dice": 0.96}, step=120)  # among trained weights, the usual key
    assert best.scores["step"] == 80
    best.offer(net, {"ap50_90": 1.0, "ap50": 1.0, "dice": 0.975}, step=160)
    assert best.scores["step"] == 160

    lost = BestWeights()  # weights that lose a held-out object never replace a perfect parent
    lost.offer(net, {"ap50_90": 1.0, "ap50": 1.0, "dice": 0.98}, step=0)
    lost.offer(net, {"ap50_90": 0.0, "ap50": 0.0, "dice": 0.2}, step=40)
    assert lost.scores["step"] == 0
    imperfect = BestWeights()  # below a perfect score a tie still keeps the parent
    imperfect.offer(net, {"ap50_90": 0.9, "ap50": 0.95, "dice": 0.9}, step=0)
    imperfect.offer(net, {"ap50_90": 0.9, "ap50": 0.95, "dice": 0.99}, step=40)
    assert imperfect.scores["step"] == 0


def test_earlier_rounds_are_checked_by_ap50_so_refined_old_outlines_are_not_forgetting():
    import torch

    from napari_unet_seg.core.training.loop import BestWeights

    net = torch.nn.Linear(1, 1)
    best = BestWeights()
    old = {"ap50_90_earlier": 0.70, "ap50_earlier": 0.90, "dice_earlier": 0.9}
    best.offer(net, {"ap50_90": 0.60, "ap50": 0.80, "dice": 0.9, **old}, step=0)
    outlines_moved = {"ap50_90_earlier": 0.66, "ap50_earlier": 0.90, "dice_earlier": 0.9}  # every old object found
    best.offer(net, {"ap50_90": 0.65, "ap50": 0.80, "dice": 0.9, **outlines_moved}, step=40)
    assert best.scores["step"] == 40 and best.forgot == 0
    lost_one = {"ap50_90_earlier": 0.75, "ap50_earlier": 0.85, "dice_earlier": 0.9}  # an old object lost
    best.offer(net, {"ap50_90": 0.70, "ap50": 0.85, "dice": 0.9, **lost_one}, step=80)
    assert best.scores["step"] == 40 and best.forgot == 1


def test_trained_weights_that_forget_earlier_corrections_are_turned_down():
    import torch

    from napari_unet_seg.core.training.loop import BestWeights

    net = torch.nn.Linear(1, 1)
    best = BestWeights()
    best.offer(net, {"ap50": 0.6, "dice": 0.8, "ap50_earlier": 0.9, "dice_earlier": 0.9}, step=0)
    best.offer(net, {"ap50": 0.8, "dice": 0.9, "ap50_earlier": 0.85, "dice_earlier": 0.95}, step=40)
    assert best.scores["step"] == 0 and best.forgot == 1  # better on the new ones, worse on the earlier ones
    best.offer(net, {"ap50": 0.7, "dice": 0.9, "ap50_earlier": 0.9, "dice_earlier": 0.9}, step=80)
    assert best.scores["step"] == 80 and best.forgot == 1  # as good on the earlier ones is enough
    best.offer(net, {"ap50": 0.9, "dice": 0.9, "ap50_earlier": 0.89, "dice_earlier": 0.9}, step=120)
    assert best.scores["step"] == 80 and best.forgot == 2  # a later, better-looking step must pass the check too


def test_threads_count_other_processes_not_this_ones_past_work(tmp_path, monkeypatch):
    import os

    import torch

    from napari_unet_seg.core.training import loop

    fake = tmp_path / "loadavg"
    fake.write_text("1.90 1.50 1.00 1/300 12345\n")  # busy a minute ago (us, segmenting); now only us
    assert loop.others_running(samples=2, pause=0, source=str(fake)) == 0
    fake.write_text("0.10 0.10 0.10 3/300 12345\n")  # two threads of other programs ready to run
    assert loop.others_running(samples=2, pause=0, source=str(fake)) == 2
    assert loop.others_running(source=str(tmp_path / "missing")) is None
    monkeypatch.setattr(loop, "others_running", lambda: 0)
    assert loop.choose_threads() == min(torch.get_num_threads(), os.cpu_count() or 1)
    monkeypatch.setattr(loop, "others_running", lambda: 99)
    assert loop.choose_threads() == 1
    assert loop.choose_threads(3) == 3


def test_the_built_in_models_robust_augmentations_train(monkeypatch):
    """Empty bands, nucleoli, anisotropy and defocus (scripts/train_nuclei.py --robust) reach the crops trained on."""
    from dataclasses import replace

    from napari_unet_seg.core.training import batches
    from napari_unet_seg.core.training.augment import AugmentConfig

    seen = []
    original = batches.add_empty_regions
    monkeypatch.setattr(batches, "add_empty_regions", lambda *a: seen.append(1) or original(*a))
    image, labels = synthetic_nuclei((96, 96))
    model = starting_model("none", **TINY)
    robust = AugmentConfig(empty_regions=1.0, nucleoli=1.0, anisotropy=1.25, defocus=1.0)
    result = train(model, [TrainingPair(image, labels)], replace(_fast(), augment=robust))
    assert result.steps == 6 and np.isfinite([h["loss"] for h in result.history if "loss" in h]).all()
    assert len(seen) == 6 * 2  # every crop of every step


@pytest.mark.parametrize("frozen", [True, False])
def test_frozen_batchnorm_keeps_its_statistics_while_the_weights_learn(frozen):
    import torch

    image, labels = synthetic_nuclei((96, 96))
    model = starting_model("none", **TINY)
    norms = [m for m in model.net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    before = [(m.running_mean.clone(), m.running_var.clone()) for m in norms]
    conv = next(m for m in model.net.modules() if isinstance(m, torch.nn.Conv2d)).weight.detach().clone()
    train(model, [TrainingPair(image, labels)], _fast(max_steps=3, eval_initial=False, freeze_batchnorm=frozen))
    kept = all(torch.equal(m.running_mean, mean) and torch.equal(m.running_var, var)
               for m, (mean, var) in zip(norms, before))
    assert kept == frozen
    first_conv = next(m for m in model.net.modules() if isinstance(m, torch.nn.Conv2d)).weight
    assert not torch.equal(first_conv, conv)  # the network itself still learns


def test_every_report_carries_the_parents_held_out_score():
    image, labels = synthetic_nuclei((300, 300), n=40)
    model = starting_model("none", **TINY)
    train_pairs, val_pairs = split_validation([TrainingPair(image, labels)], scribbles=False)
    reports = []
    result = train(model, train_pairs, _fast(max_steps=6), val_pairs=val_pairs, progress=reports.append)
    parent = result.history[0]
    assert parent["step"] == 0
    assert [r.parent_score for r in reports] == [parent["ap50_90"]] * len(reports)
    scored = [r for r in reports if r.val_score is not None]
    assert scored and all(r.best_score >= r.parent_score for r in scored)  # the parent is the floor
