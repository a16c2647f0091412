"""Post-processing fitted to the user's annotation: adopted only when clearly better, recorded in the model."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import grey_dilation

from helpers import bright_and_dim_nuclei, oracle_logits, synthetic_nuclei, threshold_model
from napari_unet_seg.core.inference import prediction
from napari_unet_seg.core.training.data import PreparedPair, TrainingPair
from napari_unet_seg.core.training.finetune import finetune
from napari_unet_seg.core.training.loop import TrainConfig
from napari_unet_seg.core.training.metrics import matching_accuracy
from napari_unet_seg.core.training.tuning import annotation_to_fit, annotated_objects, tune_postprocess


def perfect_network(monkeypatch, image, labels, logits=None):
    """The network answers any crop of ``image`` with ``logits`` (default: a perfect model's) for that crop."""
    logits = oracle_logits(labels) if logits is None else logits
    model = threshold_model()
    full = np.asarray(PreparedPair(TrainingPair(image, labels), model).image)

    def predict(net, array, **kwargs):
        array = np.asarray(array)
        h, w = array.shape[-2:]
        for y, x in np.argwhere(full[0] == array[0, 0, 0]):
            if y + h <= full.shape[1] and x + w <= full.shape[2] and np.array_equal(full[:, y:y + h, x:x + w], array):
                return logits[:, y:y + h, x:x + w]
        raise AssertionError("not a crop of the image")

    monkeypatch.setattr(prediction, "predict_tiled", predict)


@pytest.fixture
def touching(monkeypatch):
    """Touching nuclei and a network that answers with a perfect model's logits for them."""
    image, labels = synthetic_nuclei((256, 256), n=60, radius=(7, 10), seed=3, touching=True)
    assert labels.max() >= 45
    perfect_network(monkeypatch, image, labels)
    return image, labels


def test_seeds_that_merge_touching_nuclei_are_refitted(touching):
    image, labels = touching
    model = threshold_model()
    model.metadata["postprocess"] = {"foreground_threshold": 0.5, "seed_prominence": 0.9, "min_size": 8}
    tuning = tune_postprocess(model, [PreparedPair(TrainingPair(image, labels), model)], device="cpu")
    assert tuning.changed and tuning.after == 1.0 and tuning.before < 0.9
    assert tuning.settings["seed_prominence"] < 0.9 and tuning.settings["min_size"] == 8  # other settings kept


def test_settings_that_already_work_are_kept(touching):
    image, labels = touching
    model = threshold_model()
    model.metadata["postprocess"] = {"foreground_threshold": 0.45, "seed_prominence": 0.15}
    tuning = tune_postprocess(model, [PreparedPair(TrainingPair(image, labels), model)], device="cpu")
    assert not tuning.changed and tuning.settings == model.postprocess


def test_a_strip_of_a_few_nuclei_is_too_small_to_fit_anything(touching):
    image, labels = touching
    model = threshold_model()
    model.metadata["postprocess"] = {"foreground_threshold": 0.5, "seed_prominence": 0.9}
    few = np.zeros(labels.shape, bool)
    few[:60, :60] = True  # a corner with a handful of nuclei
    assert tune_postprocess(model, [PreparedPair(TrainingPair(image, labels, few), model)], device="cpu") is None


def test_class_models_and_no_held_out_data_are_left_alone(tiny_model):
    assert tune_postprocess(tiny_model, []) is None
    tiny_model.metadata["task"] = "semantic"
    image, labels = synthetic_nuclei((32, 32))
    assert tune_postprocess(tiny_model, [PreparedPair(TrainingPair(image, labels), tiny_model)]) is None


def test_finetune_stores_the_fitted_settings_and_says_so(monkeypatch):
    big = synthetic_nuclei((480, 480), n=320, radius=(6, 9), seed=4, touching=True)  # a strip of 40+ held out
    perfect_network(monkeypatch, *big)
    model = threshold_model()
    model.metadata["postprocess"] = {"foreground_threshold": 0.5, "seed_prominence": 0.9}
    config = TrainConfig(max_steps=1, batch_size=1, crop_size=32, eval_every=1, device="cpu", precision="fp32",
                         learning_rate=0.0)
    result = finetune(model, [TrainingPair(*big, name="tiled")], config=config, base="parent")
    assert result.held_out and result.tuning is not None and result.tuning.changed
    assert model.postprocess["seed_prominence"] < 0.9
    assert model.metadata["lineage"][-1]["postprocess_fitted"]["changed"] is True
    seeds = [step for step in result.tuning.steps if "seed_prominence" in step.changed]
    assert len(seeds) == 1 and seeds[0].on == "held-out" and seeds[0].after > seeds[0].before
    verdict = result.verdict("parent")
    assert "post-processing was fitted to your annotation: " in verdict
    assert f"(AP50 on the held-out part {seeds[0].before:.3f} -> {seeds[0].after:.3f})" in verdict
    assert "post-processing fitted to it" in result.scores_where()  # the headline score is not an unbiased one


def test_dim_nuclei_left_out_of_the_annotation_are_left_out(monkeypatch):
    image, everything, bright = bright_and_dim_nuclei()
    perfect_network(monkeypatch, image, everything)  # the network finds every nucleus, dim ones too
    model = threshold_model()
    tuning = tune_postprocess(model, [PreparedPair(TrainingPair(image, bright), model)], device="cpu")
    assert tuning.changed and tuning.before < 0.6 and tuning.after == 1.0
    assert 0.35 < tuning.settings["min_brightness"] <= 1.0  # between the dim nuclei (~0.35) and the bright (~1)


def test_dim_nuclei_that_were_annotated_are_kept(monkeypatch):
    image, everything, _ = bright_and_dim_nuclei()
    perfect_network(monkeypatch, image, everything)
    model = threshold_model()
    tuning = tune_postprocess(model, [PreparedPair(TrainingPair(image, everything), model)], device="cpu")
    assert not tuning.changed and "min_brightness" not in tuning.settings


def test_finetune_says_dim_objects_are_left_out_and_segment_leaves_them_out(monkeypatch, tmp_path):
    from napari_unet_seg.core.inference.pipeline import segment
    from napari_unet_seg.core.model.modelfile import load_model_file, save_model

    image, everything, bright = bright_and_dim_nuclei((480, 480), n=320, radius=(6, 9), seed=4)
    perfect_network(monkeypatch, image, everything)
    model = threshold_model()
    config = TrainConfig(max_steps=1, batch_size=1, crop_size=32, eval_every=1, device="cpu", precision="fp32",
                         learning_rate=0.0)
    said = []
    result = finetune(model, [TrainingPair(image, bright, name="dim left out")], config=config, base="parent",
                      status=said.append)
    assert said == ["fitting post-processing to your annotation..."]
    assert result.tuning is not None and model.postprocess["min_brightness"] > 0.35
    assert "objects dimmer than" in result.verdict("parent") and "left out" in result.verdict("parent")
    save_model(model, tmp_path / "m.safetensors")
    again = load_model_file(tmp_path / "m.safetensors")
    assert again.postprocess["min_brightness"] == model.postprocess["min_brightness"]
    labels = segment(image, again, device="cpu")
    assert matching_accuracy(bright, labels) > 0.95



def test_a_corrected_region_is_fitted_whole_for_brightness_not_only_its_held_out_strip(monkeypatch):
    """A third of an image annotated: its held-out strip holds too few nuclei to fit anything; the region does."""
    image, everything, bright = bright_and_dim_nuclei((480, 480), n=320, radius=(6, 9), seed=4)
    perfect_network(monkeypatch, image, everything)
    region = np.zeros(bright.shape, bool)
    region[:, :160] = True
    model = threshold_model()
    original = dict(model.postprocess)
    searched = []
    real_tune = tune_postprocess

    def recording(model, held, *, annotation, **kwargs):
        searched.append((annotated_objects(held), annotated_objects(annotation)))
        return real_tune(model, held, annotation=annotation, **kwargs)

    monkeypatch.setattr("napari_unet_seg.core.training.finetune.tune_postprocess", recording)
    config = TrainConfig(max_steps=1, batch_size=1, crop_size=32, eval_every=1, device="cpu", precision="fp32",
                         learning_rate=0.0)
    result = finetune(model, [TrainingPair(image, bright, region, name="a third")], config=config, base="parent")
    (strip, whole), = searched
    assert strip < 40 <= whole  # the strip alone could fit nothing
    assert result.tuning.changed and model.postprocess["min_brightness"] > 0.35
    assert model.postprocess == {**original, "min_brightness": model.postprocess["min_brightness"]}  # seeds kept


def test_seed_settings_are_fitted_on_the_held_out_part_only(monkeypatch, touching):
    """Seeds that merge touching nuclei: the whole annotation would refit them, a strip of a few nuclei cannot."""
    image, labels = touching
    model = threshold_model()
    model.metadata["postprocess"] = {"foreground_threshold": 0.5, "seed_prominence": 0.9}
    few = np.zeros(labels.shape, bool)
    few[:60, :60] = True
    whole = PreparedPair(TrainingPair(image, labels), model)
    assert tune_postprocess(model, [whole], device="cpu").changed  # seeds fitted where they may be
    tuning = tune_postprocess(model, [PreparedPair(TrainingPair(image, labels, few), model)], annotation=[whole],
                              device="cpu")
    assert not tuning.changed and tuning.settings["seed_prominence"] == 0.9


def test_the_latest_and_largest_corrections_are_fitted_on_first_within_the_budget():
    def pair(side, replay=False):
        return TrainingPair(np.zeros((side, side), np.uint8), np.zeros((side, side), np.uint16), replay=replay,
                            name=f"{side}{'r' if replay else ''}")

    pairs = [pair(100, replay=True), pair(50), pair(300, replay=True), pair(200)]
    chosen = annotation_to_fit(pairs, [1.0] * 4, budget=200 * 200 + 50 * 50 + 100 * 100)
    assert [p.name for p in chosen] == ["200", "50", "100r"]  # latest, largest first; 300r does not fit
    halved = annotation_to_fit(pairs, [0.5] * 4, budget=200 * 200 + 50 * 50 + 100 * 100)
    assert [p.name for p in halved] == ["200", "50", "300r", "100r"]  # counted at the network's scale
    assert [p.name for p in annotation_to_fit(pairs, [1.0] * 4, budget=1)] == ["200"]  # never nothing


@pytest.fixture
def loose_outlines(monkeypatch):
    """Nuclei the network outlines 3 px wider than the annotation, its foreground only 0.75 sure out there."""
    image, labels = synthetic_nuclei((480, 480), n=120, radius=(6, 8), seed=5)
    wide = grey_dilation(labels, size=7)  # separated nuclei: each grows by 3 px into its own ring
    logits = oracle_logits(wide)
    logits[0] = np.where(labels > 0, 8.0, np.where(wide > 0, np.log(0.75 / 0.25), -8.0))
    perfect_network(monkeypatch, image, labels, logits)
    return image, labels


def test_outlines_drawn_tighter_are_fitted_on_the_whole_annotation_when_the_parent_is_kept(loose_outlines):
    image, labels = loose_outlines
    model = threshold_model()
    model.metadata["postprocess"] = {"foreground_threshold": 0.5, "seed_prominence": 0.15}
    few = np.zeros(labels.shape, bool)
    few[:80, :80] = True  # the held-out strip: too few nuclei for the seed search
    strip, whole = PreparedPair(TrainingPair(image, labels, few), model), PreparedPair(TrainingPair(image, labels), model)
    assert annotated_objects([strip]) < 40 <= annotated_objects([whole])
    tuning = tune_postprocess(model, [strip], annotation=[whole], parent_weights=True, device="cpu")
    assert tuning.changed and tuning.before < 0.5 and tuning.after > 0.95
    assert tuning.settings == {**model.postprocess, "foreground_threshold": 0.8}  # outlines only, seeds kept
    (step,) = tuning.steps  # each step says what it changed and its AP50 where it was fitted
    assert step.changed == {"foreground_threshold": 0.8} and step.on == "all"
    assert (step.before, step.after) == (tuning.before, tuning.after)
    # trained weights have learnt the annotation's outlines where they trained: only a held-out part may say
    assert tune_postprocess(model, [strip], annotation=[whole], device="cpu").settings == model.postprocess


def test_finetune_that_keeps_the_parent_fits_its_outlines_to_the_annotation(loose_outlines):
    image, labels = loose_outlines
    model = threshold_model()
    model.metadata["postprocess"] = {"foreground_threshold": 0.5, "seed_prominence": 0.15}
    config = TrainConfig(max_steps=1, batch_size=1, crop_size=32, eval_every=1, device="cpu", precision="fp32",
                         learning_rate=0.0)  # weights that cannot beat the parent: it is kept
    result = finetune(model, [TrainingPair(image, labels, name="tight outlines")], config=config, base="parent")
    assert result.improved is False
    assert model.postprocess["foreground_threshold"] == 0.8
    assert ("then (the figures above are from before it) post-processing was fitted to your annotation: foreground "
            "threshold 0.8 (AP50 on all of your annotation 0.") in result.verdict("parent")
    from napari_unet_seg.core.training.finetune import _fit_step_text

    # with earlier rounds' corrections in the fit, its figures are not the headline's (this round's part alone)
    assert _fit_step_text(result.tuning.steps[0], earlier=True).endswith(
        f"(AP50 on all of your annotations, this round's and earlier {result.tuning.steps[0].before:.3f} -> "
        f"{result.tuning.steps[0].after:.3f})")
    assert result.scores["ap50"] > 0.95  # the held-out score is the fitted model's
    assert result.scores_where() == "the held-out annotation"  # fitted on all of it, not on the held-out part
    run = model.metadata["lineage"][-1]  # the record says which weights were kept and each fitted step
    assert run["kept_weights"] == "parent"
    assert run["postprocess_fitted"]["steps"] == [{"changed": {"foreground_threshold": 0.8}, "on": "all",
                                                   "ap50_before": round(result.tuning.before, 4),
                                                   "ap50_after": round(result.tuning.after, 4)}]
