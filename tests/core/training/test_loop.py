"""Training end to end with tiny networks: each annotation mode, cancel, best checkpoint, no overwrite."""

from __future__ import annotations

import numpy as np
import pytest

from helpers import synthetic_nuclei
from napari_unet_seg.core.training.checks import check_pairs
from napari_unet_seg.core.training.finetune import finetune, starting_model
from napari_unet_seg.core.training.naming import fresh_model_name, save_trained
from napari_unet_seg.core.training.split import split_validation
from napari_unet_seg.core.model.modelfile import ModelFileError
from napari_unet_seg.core.model.registry import available_models, load_model, user_model_dir
from napari_unet_seg.core.training.evaluation import evaluate_pairs
from napari_unet_seg.core.training.loop import TrainConfig, train
from napari_unet_seg.core.training.data import TrainingPair

TINY = dict(depth=2, width=4)


def _fast(**kw) -> TrainConfig:
    return TrainConfig(**{"max_steps": 6, "crop_size": 48, "batch_size": 2, "eval_every": 3, **kw})


def _semantic_image(seed=0, shape=(96, 96)):
    """Three classes: background, bright disks (1), dim squares (2)."""
    image, labels = synthetic_nuclei(shape, n=8, seed=seed)
    classes = np.where(labels > 0, 1, 0).astype(np.uint8)
    classes[10:30, 60:90] = 2
    image = image.copy()
    image[10:30, 60:90] = 60
    return image, classes


def test_dense_instances_end_to_end(private_model_dir):
    image, labels = synthetic_nuclei((96, 96))
    model = starting_model("none", **TINY)
    seen = []
    result = finetune(model, [TrainingPair(image, labels, name="a")], config=_fast(), progress=seen.append)
    assert result.train.steps == 6 and len(seen) >= 6
    assert {"ap50", "dice"} <= result.scores.keys()
    assert not result.held_out  # a 96x96 image is too little to hold any out
    path = save_trained(model, user_model_dir() / "mine")
    assert path.stem in available_models()
    loaded = load_model(path.stem)
    assert loaded.name == "mine" and loaded.metadata["lineage"][-1]["mode"] == "dense"
    assert loaded.metadata["lineage"][-1]["data"][0]["annotated_pixels"] == 96 * 96


def test_region_limited_end_to_end_holds_out_validation():
    image, labels = synthetic_nuclei((300, 300), n=40)
    valid = np.zeros(labels.shape, bool)
    valid[:, :280] = True
    labels = labels.copy()
    labels[:, 280:] = 0  # nuclei not painted there: the region says so
    model = starting_model("none", **TINY)
    result = finetune(model, [TrainingPair(image, labels, valid=valid)], config=_fast())
    assert result.held_out
    lineage = model.metadata["lineage"][-1]
    assert lineage["mode"] == "region" and lineage["scores_on"] == "held-out annotation"


def test_scribbles_semantic_end_to_end():
    image, classes = _semantic_image()
    scribbles = np.zeros_like(classes)
    scribbles[::6] = classes[::6] + 1  # thin lines: 1 = background, 2 = disks, 3 = squares
    model = starting_model("none", task="semantic", classes=3, **TINY)
    result = finetune(model, [TrainingPair(image, scribbles)], scribbles=True, config=_fast())
    assert "mean_iou" in result.scores
    assert model.metadata["lineage"][-1]["mode"] == "scribbles"


def test_validation_split_keeps_every_image_training():
    image, labels = synthetic_nuclei((512, 512), n=10)
    small_image, small_labels = synthetic_nuclei((96, 96))
    train_pairs, val_pairs = split_validation(
        [TrainingPair(image, labels), TrainingPair(small_image, small_labels)], scribbles=False)
    assert len(train_pairs) == 2 and len(val_pairs) == 1
    held, kept = val_pairs[0].valid, train_pairs[0].valid
    assert not (held & kept).any() and (held | kept).all()
    assert 0.15 < held.mean() < 0.25


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
    best = max(scored, key=lambda h: (h["ap50"], h["dice"], h["step"]))
    assert result.best_scores["step"] == best["step"]
    # the returned model really is that checkpoint
    again = evaluate_pairs(model, val_pairs)
    assert again["ap50"] == pytest.approx(best["ap50"]) and again["dice"] == pytest.approx(best["dice"], abs=1e-6)


def test_time_budget_stops_training():
    image, labels = synthetic_nuclei((96, 96))
    model = starting_model("none", **TINY)
    result = train(model, [TrainingPair(image, labels)], _fast(max_steps=10_000, max_seconds=1.0))
    assert result.steps < 10_000 and result.seconds < 5


def test_fresh_names_never_overwrite(private_model_dir):
    image, labels = synthetic_nuclei((64, 64))
    model = starting_model("none", **TINY)
    first = save_trained(model, private_model_dir / fresh_model_name("nuclei", private_model_dir))
    second = save_trained(model, private_model_dir / fresh_model_name(first.stem, private_model_dir))
    assert (first.stem, second.stem) == ("nuclei-finetuned", "nuclei-finetuned-2")
    before = first.read_bytes()
    with pytest.raises(ModelFileError, match="already exists"):
        save_trained(model, first)
    assert first.read_bytes() == before


def test_continue_training_a_finetuned_model(private_model_dir):
    image, labels = synthetic_nuclei((96, 96))
    model = starting_model("none", **TINY)
    finetune(model, [TrainingPair(image, labels)], config=_fast())
    save_trained(model, private_model_dir / "round1")
    again = starting_model("round1")
    assert again.net is not load_model("round1").net  # the cached model is never trained in place
    finetune(again, [TrainingPair(image, labels)], config=_fast(), base="round1")
    assert [run["base"] for run in again.metadata["lineage"]] == ["scratch", "round1"]


def test_clear_errors_for_unusable_annotations():
    image, labels = synthetic_nuclei((64, 64))
    instances = starting_model("none", **TINY)
    with pytest.raises(ValueError, match="scribbles train semantic"):
        check_pairs(instances, [TrainingPair(image, labels)], scribbles=True)
    with pytest.raises(ValueError, match="nothing is annotated"):
        check_pairs(instances, [TrainingPair(image, labels, valid=np.zeros(labels.shape, bool))], scribbles=False)
    semantic = starting_model("none", task="semantic", classes=3, **TINY)
    with pytest.raises(ValueError, match="too large for a 3-class model"):
        check_pairs(semantic, [TrainingPair(image, np.full(labels.shape, 3))], scribbles=False)


def test_sanity_check_warns_when_nothing_is_found():
    from napari_unet_seg.core.training.checks import sanity_check

    image, labels = synthetic_nuclei((96, 96))
    model = starting_model("none", **TINY)
    model.net.head.weight.data.zero_()  # logits of -50 everywhere: nothing is foreground
    model.net.head.bias.data.fill_(-50)
    warnings = sanity_check(model, [TrainingPair(image, labels, name="cells")])
    assert warnings and "finds no objects on cells" in warnings[0]


def test_held_out_area_is_capped_so_scoring_stays_cheap():
    image, labels = synthetic_nuclei((256, 256), n=8)
    pairs = [TrainingPair(image, labels, name=str(i)) for i in range(10)]
    train_pairs, val_pairs = split_validation(pairs, scribbles=False, max_held_out=int(3.5 * 256 * 256 * 0.2))
    assert len(train_pairs) == 10 and len(val_pairs) == 3


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
