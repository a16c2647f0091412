"""Fine-tuning end to end with tiny networks: each annotation mode, continuing a saved model, private copies."""

from __future__ import annotations

import numpy as np
import pytest

from helpers import synthetic_nuclei
from napari_unet_seg.core.model.registry import available_models, cached_model, load_model, user_model_dir
from napari_unet_seg.core.training.data import TrainingPair
from napari_unet_seg.core.training.finetune import finetune, starting_model
from napari_unet_seg.core.training.loop import TrainConfig
from napari_unet_seg.core.training.naming import save_trained
from napari_unet_seg.core.training.tuning import Tuning

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


def test_continue_training_a_finetuned_model(private_model_dir):
    image, labels = synthetic_nuclei((96, 96))
    model = starting_model("none", **TINY)
    finetune(model, [TrainingPair(image, labels)], config=_fast())
    save_trained(model, private_model_dir / "round1")
    again = starting_model("round1")
    assert again.net is not cached_model("round1").net  # the cached model is never trained in place
    finetune(again, [TrainingPair(image, labels)], config=_fast(), base="round1")
    assert [run["base"] for run in again.metadata["lineage"]] == ["scratch", "round1"]
    # it describes itself as what it now is (a package or a colleague reads this), and stays one sentence per round
    again.metadata["description"] = again.metadata["origin_description"] = ""  # as a model made here starts
    finetune(again, [TrainingPair(image, labels, name="cells")], config=_fast(), base="round2")
    assert again.metadata["description"] == ("Fine-tuned from 'round2' with napari-unet-seg on 1 annotated image(s) "
                                             "(cells).")
    from napari_unet_seg.core.model_export.documentation import _scores

    again.metadata["training"].update(scores_on="held-out annotation", scores={"ap50": 0.75})
    assert "AP@0.5 = 0.750 on held-out" in _scores(again.metadata)


def _weights(net):
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


def test_starting_model_is_a_private_copy_of_the_cached_model(private_model_dir, tiny_model):
    import torch

    save_trained(tiny_model, private_model_dir / "base")
    cached = cached_model("base")
    before = _weights(cached.net)
    mine = starting_model("base")
    assert mine.net is not cached.net and mine.metadata is not cached.metadata
    assert mine.name == "base" and all(torch.equal(before[k], v) for k, v in _weights(mine.net).items())
    image, labels = synthetic_nuclei((96, 96))
    from napari_unet_seg.core.training.loop import train

    train(mine, [TrainingPair(image, labels)], _fast(max_steps=3, learning_rate=0.05))
    mine.metadata["lineage"].append({"base": "base"})
    mine.metadata["normalization"]["invert"] = True
    assert cached_model("base") is cached  # the cache still holds the untouched network
    after = _weights(cached.net)
    assert all(torch.equal(before[k], after[k]) for k in before)
    trained = _weights(mine.net)
    assert any(not torch.equal(before[k], trained[k]) for k in before)  # the copy did learn
    assert cached.metadata["lineage"] == [] and cached.metadata["normalization"]["invert"] == "auto"
    assert not cached.net.training  # still in eval mode for the next Segment press


@pytest.mark.parametrize("init", [None, "none", "None", "scratch", "", "  none "])
def test_scratch_names_start_a_new_model(init):
    from napari_unet_seg.core.training.finetune import is_scratch

    assert is_scratch(init)
    model = starting_model(init, task="semantic", classes=3, depth=2, width=4, in_channels=2)
    assert model.task == "semantic" and model.net.num_classes == 3 and model.net.depth == 2
    assert model.net.base_channels == 4 and model.in_channels == 2 and model.path is None


def test_named_models_are_not_scratch(private_model_dir):
    from napari_unet_seg.core.model.modelfile import ModelFileError
    from napari_unet_seg.core.training.finetune import is_scratch

    assert not is_scratch("nuclei") and not is_scratch("none-finetuned")
    with pytest.raises(ModelFileError, match="no model named"):
        starting_model("not-a-model")


def test_default_config_is_gentle_for_fine_tuning_and_brisk_from_scratch():
    from napari_unet_seg.core.training.finetune import default_config

    scratch = default_config(scratch=True, task="instances")
    tuning = default_config(scratch=False, task="instances")
    assert scratch.learning_rate > tuning.learning_rate
    assert (scratch.learning_rate, tuning.learning_rate) == (3e-3, 2e-4)
    assert scratch.augment.scale_range == (0.5, 2.0) and tuning.augment.scale_range == (0.7, 1.4)
    assert not scratch.eval_initial and tuning.eval_initial  # the starting weights are scored only when they are real
    assert scratch.crop_size == tuning.crop_size == 256 and scratch.max_steps == 5000
    assert scratch.max_seconds == 110.0 and not scratch.scribbles
    semantic = default_config(scratch=True, task="semantic", scribbles=True, max_steps=30, max_seconds=None)
    assert semantic.crop_size == 192 and semantic.scribbles and semantic.max_steps == 30
    assert semantic.max_seconds is None
    assert not semantic.augment.dim_objects and not semantic.augment.texture
    assert semantic.augment.scale_range == (0.8, 1.25)


def test_finetune_picks_the_default_config_by_its_base(monkeypatch):
    from napari_unet_seg.core.training import finetune as finetune_module

    seen = []

    class Stop(Exception):
        pass

    def capture(model, pairs, config, **kwargs):
        seen.append(config)
        raise Stop

    monkeypatch.setattr(finetune_module, "train", capture)
    image, labels = synthetic_nuclei((64, 64))
    for base in ("scratch", "nuclei"):
        with pytest.raises(Stop):
            finetune(starting_model("none", **TINY), [TrainingPair(image, labels)], base=base)
    assert [c.learning_rate for c in seen] == [3e-3, 2e-4]
    classes = np.where(labels > 0, 2, 1)
    with pytest.raises(Stop):  # a given config is kept, but always told whether the labels are scribbles
        finetune(starting_model("none", task="semantic", classes=3, **TINY), [TrainingPair(image, classes)],
                 scribbles=True, config=_fast(learning_rate=0.123))
    assert seen[-1].scribbles and seen[-1].learning_rate == 0.123 and seen[-1].max_steps == 6


def test_checkpoints_hold_a_loadable_model_while_training(tmp_path):
    """A crash or a kill loses at most one checkpoint interval: the file is a whole model at every moment."""
    from napari_unet_seg.core.model.modelfile import load_model_file
    from napari_unet_seg.core.training.loop import TrainConfig
    from napari_unet_seg.core.training.naming import checkpoint_path

    image, labels = synthetic_nuclei((64, 64), seed=3)
    model = starting_model("none", **TINY)
    where = checkpoint_path(tmp_path / "cells.safetensors")
    assert where.name == "cells-checkpoint.safetensors"
    seen = []

    def look(report):
        if where.exists():
            seen.append(load_model_file(where).metadata["checkpoint"])

    config = TrainConfig(max_steps=4, batch_size=1, crop_size=32, device="cpu", precision="fp32",
                         checkpoint_every=0.0)
    finetune(model, [TrainingPair(image, labels)], config=config, progress=look, checkpoint_to=where)
    assert len(seen) == 4 and "final model replaces it" in seen[0]


def test_the_verdict_names_the_score_that_judged_and_shows_ap50_beside_it():
    from napari_unet_seg.core.training.finetune import FinetuneResult
    from napari_unet_seg.core.training.loop import TrainResult

    parent = {"ap50_90": 0.683, "ap50": 0.939, "dice": 0.928, "wrong_objects": 3.0}
    trained = {"ap50_90": 0.725, "ap50": 0.920, "dice": 0.935, "wrong_objects": 4.0, "step": 80}

    def result(best, first=parent, judge="ap50_90"):
        train = TrainResult(None, 160, 120.0, [], best.get(judge), False, best)
        return FinetuneResult(None, train, dict(best), held_out=True, parent_scores=dict(first), judge=judge)

    better = result(trained)
    assert better.improved
    text = better.verdict("nuclei")
    assert text.startswith("better than 'nuclei' on the held-out annotation: AP50-90 0.725 vs 0.683 (+0.042), "
                           "AP50 0.920 vs 0.939, Dice 0.935 vs 0.928")  # said plainly even when AP50 went the other way
    worse_outlines = result(dict(trained, dice=0.837), dict(parent, dice=0.855)).verdict("nuclei")
    assert "AP50 0.920 vs 0.939, Dice 0.837 vs 0.855" in worse_outlines  # better objects, looser outlines: said
    assert "AP50-90 0.725" in better.score_text() and "AP50 0.920" in better.score_text()
    unscored = result(dict(parent, step=0)).verdict("nuclei")
    assert unscored.startswith("no trained weights were scored before training stopped, so the weights of 'nuclei' "
                               "were kept (AP50-90 0.683 on the held-out annotation)")
    kept = result(dict(parent, step=0))
    kept.train.history = [dict(parent, step=0), {"step": 40, "loss": 0.5, "ap50_90": 0.61, "ap50": 0.97},
                          {"step": 80, "loss": 0.4, "ap50_90": 0.66, "ap50": 0.95}]
    assert kept.verdict("nuclei").startswith(  # the trained weights' best, so a higher AP50 is not a riddle
        "the trained weights were not better than 'nuclei' on the held-out annotation (the best, step 80: AP50-90 "
        "0.660 vs 0.683, AP50 0.950 vs 0.939), so the new model keeps the weights of 'nuclei'")
    assert better.worth_using and not kept.worth_using  # the parent unchanged gives the user nothing
    unjudged = FinetuneResult(None, TrainResult(None, 1, 1.0, [], None, False, None), {}, held_out=False)
    assert unjudged.improved is None and unjudged.worth_using  # nothing held out: a full run is used
    unjudged.train.cancelled = True  # a Cancel after one step, with nothing to judge it by: the user decides
    assert not unjudged.worth_using
    assert "fitted" not in kept.history_record("nuclei")
    kept.tuning = Tuning({"seed_prominence": 0.1}, 0.8, 0.9, changed=True)
    assert kept.worth_using  # the parent's weights with settings fitted to the annotation do
    record = kept.history_record("nuclei")  # so the history says why Segment uses a model that "lost"
    assert record["improved"] is False and record["fitted"] is True and record["parent"] == "nuclei"
    # the parent's scores on this round's held-out part: the history compares each row with them
    assert better.history_record("nuclei")["parent_ap50_90"] == 0.683 and "parent_wrong_objects" not in record
    earlier = {"ap50_90_earlier": 0.7, "ap50_earlier": 0.9, "dice_earlier": 0.9}
    with_replay = result({**trained, **earlier}, first={**parent, **earlier}).verdict("nuclei")
    assert "; and no worse on earlier corrections (AP50 0.900 vs 0.900)" in with_replay
    # settings fitted over this round's and earlier annotations may cost this round's part: said, not a riddle
    from napari_unet_seg.core.training.tuning import FitStep

    refit = result({**parent, **earlier, "step": 0}, first={**parent, **earlier})
    refit.scores = {**parent, "ap50_90": 0.60, "ap50": 0.913}  # the final model's, after the fit
    refit.tuning = Tuning({"seed_prominence": 0.05}, 0.871, 0.881, changed=True,
                          steps=(FitStep({"seed_prominence": 0.05}, "held-out", 0.871, 0.881),))
    said = refit.verdict("nuclei")
    assert "seed prominence 0.05 (AP50 on the held-out parts of this round's and earlier annotations 0.871 -> " \
           "0.881)" in said
    assert said.endswith("; on this round's held-out part alone the new model scores AP50-90 0.600 vs 0.683 for "
                         "'nuclei': the settings suit all your annotations together better, this one less")
    by_ap50 = result(dict(trained, ap50=0.95), judge="ap50").verdict("nuclei")
    assert "AP50 0.950 vs 0.939 (+0.011)" in by_ap50 and "AP50-90" not in by_ap50
    perfect = {"ap50_90": 1.0, "ap50": 1.0, "dice": 0.98, "wrong_objects": 0.0}
    tie = result(dict(perfect, dice=0.97, step=120), first=perfect)
    assert tie.improved and tie.tied and not better.tied
    assert tie.verdict("nuclei").startswith(
        "as good as 'nuclei' on the held-out annotation, which both get entirely right (AP50-90 1.000)")


def test_a_class_painted_nowhere_is_said_before_the_first_step_and_kept_in_the_result():
    image, classes = _semantic_image()
    classes[classes == 2] = 0  # the squares left unpainted: class 2 has nothing to learn from
    model = starting_model("none", task="semantic", classes=3, class_names=["disk", "square"], **TINY)
    events = []
    result = finetune(model, [TrainingPair(image, classes)], config=_fast(),
                      progress=lambda report: events.append(("step", report.step)),
                      warn=lambda text: events.append(("warn", text)))
    said = [text for kind, text in events if kind == "warn"]
    assert said == ["'square' (id 2) is annotated nowhere: the model will not learn it"]
    assert events.index(("warn", said[0])) < min(i for i, (kind, _) in enumerate(events) if kind == "step")
    assert said[0] in result.warnings  # the verdict still lists it for whoever comes back later


def test_a_cancelled_run_returns_a_complete_result_that_says_so():
    # from Python, only metadata["training"]["cancelled"] told a cancelled run from a finished one
    import napari_unet_seg as api

    image, labels = synthetic_nuclei((96, 96))
    model = starting_model("none", **TINY)
    steps = []
    result = api.finetune(model, [api.TrainingPair(image, labels)], config=_fast(max_steps=50),
                          progress=steps.append, cancel=lambda: len(steps) >= 2)
    assert isinstance(result, api.FinetuneResult) and result.cancelled and result.train.steps < 50
    done = api.finetune(starting_model("none", **TINY), [api.TrainingPair(image, labels)], config=_fast())
    assert not done.cancelled
