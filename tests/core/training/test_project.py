"""The project folder remembers every pair trained on, across restarts."""

from __future__ import annotations

import json

import numpy as np
import pytest

from helpers import synthetic_nuclei
from napari_unet_seg.core.training.project import Project, default_project_dir
from napari_unet_seg.core.training.data import TrainingPair


def test_pairs_survive_a_restart(tmp_path):
    image, labels = synthetic_nuclei((64, 80))
    valid = np.zeros(labels.shape, bool)
    valid[5:40, 3:71] = True
    project = Project(tmp_path / "proj")
    project.add(TrainingPair(image, labels, valid=valid, name="a"), source="layer a")
    project.add(TrainingPair(image[::-1].copy(), labels[::-1].copy(), name="b"))
    project.record_model(tmp_path / "m.safetensors", {"ap50": 0.5})
    del project

    reopened = Project(tmp_path / "proj")  # a new session reads everything back from disk
    pairs = reopened.pairs()
    assert [p.name for p in pairs] == ["a", "b"] and len(reopened.models) == 1
    np.testing.assert_array_equal(pairs[0].image, image)
    np.testing.assert_array_equal(pairs[0].labels, labels)
    np.testing.assert_array_equal(pairs[0].valid, valid)
    assert pairs[1].valid is None and pairs[0].labels.dtype == labels.dtype


@pytest.mark.parametrize("damage", ["truncated", "emptied", "deleted"])
def test_one_damaged_correction_is_left_out_by_name_and_the_others_still_train(tmp_path, damage):
    image, labels = synthetic_nuclei((64, 80))
    project = Project(tmp_path / "proj")
    project.add(TrainingPair(image, labels, name="first"))
    key = project.add(TrainingPair(image[::-1].copy(), labels[::-1].copy(), name="second"))
    broken = tmp_path / "proj" / "pairs" / f"{key}.npz"
    if damage == "deleted":
        broken.unlink()
    else:
        broken.write_bytes(broken.read_bytes()[:100] if damage == "truncated" else b"")
    reopened = Project(tmp_path / "proj")
    assert [p.name for p in reopened.pairs()] == ["first"]
    assert len(reopened.unreadable) == 1 and "the saved correction of 'second'" in reopened.unreadable[0]
    assert str(broken) in reopened.unreadable[0] and "\n" not in reopened.unreadable[0]


def test_a_new_correction_of_the_same_image_replaces_the_old_one(tmp_path):
    image, labels = synthetic_nuclei((64, 64))
    project = Project(tmp_path)
    project.add(TrainingPair(image, labels))
    corrected = labels.copy()
    corrected[:10] = 0
    project.add(TrainingPair(image, corrected))
    assert len(project) == 1
    np.testing.assert_array_equal(Project(tmp_path).pairs()[0].labels, corrected)
    assert len(list((tmp_path / "pairs").glob("*.npz"))) == 1


def test_labels_without_objects_never_replace_a_saved_correction_of_the_same_image(tmp_path):
    from napari_unet_seg.core.training.checks import UnusableAnnotation

    image, labels = synthetic_nuclei((64, 64))
    project = Project(tmp_path)
    project.add(TrainingPair(image, labels, name="cells"))
    empty = np.zeros_like(labels)  # a never-painted layer picked by mistake
    with pytest.raises(UnusableAnnotation, match="cells has a correction with objects saved in the project"):
        project.add(TrainingPair(image, empty, name="cells"))
    region = np.zeros(labels.shape, bool)
    region[:8] = True  # a region around background only: on this image it would also lose the correction
    background = np.where(region, 0, labels)
    with pytest.raises(UnusableAnnotation):
        project.add(TrainingPair(image, background, valid=region, name="cells"))
    np.testing.assert_array_equal(Project(tmp_path).pairs()[0].labels, labels)  # kept, on disk too
    project.add(TrainingPair(image[::-1].copy(), empty, name="empty field"))  # a new image with none: a lesson
    assert len(project) == 2


def test_scribble_and_dense_pairs_are_kept_apart(tmp_path):
    image, labels = synthetic_nuclei((32, 32))
    project = Project(tmp_path)
    project.add(TrainingPair(image, labels), scribbles=False)
    project.add(TrainingPair(image + 1, labels), scribbles=True)
    assert len(project.pairs(scribbles=True)) == 1 and len(project.pairs(scribbles=False)) == 1
    project.add(TrainingPair(image + 2, labels), task="semantic")
    assert len(project.pairs(scribbles=False, task="instances")) == 1
    assert len(project.pairs(scribbles=False, task="semantic")) == 2  # untagged pairs go with any task


def test_damaged_index_is_a_clear_error(tmp_path):
    (tmp_path / "project.json").write_text("{not json")
    with pytest.raises(ValueError, match="damaged"):
        Project(tmp_path)


def test_default_project_sits_next_to_the_user_models_or_inside_a_chosen_model_folder(private_model_dir,
                                                                                       monkeypatch):
    assert default_project_dir().parent.parent == private_model_dir  # NAPARI_UNET_SEG_MODEL_DIR: nothing outside it
    json.dumps(str(default_project_dir()))
    earlier = private_model_dir.parent / "projects" / "default"  # where earlier releases put it: still found
    image, labels = synthetic_nuclei((64, 64))
    Project(earlier).add(TrainingPair(image, labels, name="first round"))
    assert default_project_dir() == earlier
    Project(private_model_dir / "projects" / "default").add(TrainingPair(image, labels, name="new"))
    assert default_project_dir() == private_model_dir / "projects" / "default"
    monkeypatch.delenv("NAPARI_UNET_SEG_MODEL_DIR")
    from napari_unet_seg.core.model.registry import user_model_dir

    assert default_project_dir().parent.parent == user_model_dir().parent  # the per-user data folder


def test_pairs_other_than_the_latest_corrections_are_marked_for_replay(tmp_path):
    image, labels = synthetic_nuclei((64, 64))
    project = Project(tmp_path)
    old = project.add(TrainingPair(image, labels, name="first round"))
    new = project.add(TrainingPair(image[::-1].copy(), labels[::-1].copy(), name="second round"))
    assert [p.replay for p in project.pairs()] == [False, False]
    marked = {p.name: p.replay for p in project.pairs(latest={new})}
    assert marked == {"first round": True, "second round": False}
    assert old != new


def test_one_images_scribbles_dense_objects_and_dense_classes_never_replace_each_other(tmp_path):
    """They were keyed by the image alone: a dense correction replaced the same image's scribbles, silently."""
    image, labels = synthetic_nuclei((32, 32))
    scribbles = np.where(labels > 0, 2, 1).astype(np.int64)
    project = Project(tmp_path)
    project.add(TrainingPair(image, scribbles, name="s"), scribbles=True, task="semantic")
    project.add(TrainingPair(image, labels, name="d"), scribbles=False, task="instances")
    project.add(TrainingPair(image, (labels > 0).astype(np.int64), name="c"), scribbles=False, task="semantic")
    again = Project(tmp_path)
    assert sorted(entry["name"] for entry in again.entries) == ["c", "d", "s"]
    [kept] = again.pairs(scribbles=True)
    np.testing.assert_array_equal(kept.labels, scribbles)
    assert len({entry["file"] for entry in again.entries}) == 3


def test_an_earlier_releases_scribbles_under_the_images_key_survive_a_dense_correction(tmp_path):
    image, labels = synthetic_nuclei((32, 32))
    scribbles = np.where(labels > 0, 2, 1).astype(np.int64)
    project = Project(tmp_path)
    key = project.add(TrainingPair(image, scribbles, name="s"), scribbles=True, task="semantic")
    legacy = key.removesuffix("-scribbles")  # as an earlier release saved it
    (tmp_path / "pairs" / f"{key}.npz").rename(tmp_path / "pairs" / f"{legacy}.npz")
    index = json.loads((tmp_path / "project.json").read_text())
    index["pairs"][0].update(key=legacy, file=f"pairs/{legacy}.npz")
    (tmp_path / "project.json").write_text(json.dumps(index))
    old = Project(tmp_path)
    assert old.add(TrainingPair(image, labels, name="d"), task="instances") == legacy  # objects keep the image's key
    again = Project(tmp_path)
    assert sorted(entry["name"] for entry in again.entries) == ["d", "s"]
    [kept] = again.pairs(scribbles=True)
    np.testing.assert_array_equal(kept.labels, scribbles)
    [dense] = again.pairs(scribbles=False)
    np.testing.assert_array_equal(dense.labels, labels)


def test_a_round_recorded_by_another_process_meanwhile_is_kept(tmp_path):
    """`unet-seg train --project` read the project, trained for minutes, then wrote its older copy of the index
    over a round the Train dock recorded meanwhile: that round's correction, history row and model in use."""
    cli = Project(tmp_path)  # read at the start of its round
    dock = Project(tmp_path)
    image, labels = synthetic_nuclei((48, 48), n=4, seed=1)
    key = dock.add(TrainingPair(image, labels, name="second image"))
    dock.record_model(tmp_path / "dock-round.safetensors", {"base": "nuclei", "better": True})
    dock.set_in_use(tmp_path / "dock-round.safetensors")
    cli.record_model(tmp_path / "cli-round.safetensors", {"base": "nuclei", "better": False})
    again = Project(tmp_path)
    assert [e["key"] for e in again.entries] == [key]
    assert [r["path"] for r in again.models] == [str(tmp_path / "dock-round.safetensors"),
                                                 str(tmp_path / "cli-round.safetensors")]
    assert again.in_use_recorded == tmp_path / "dock-round.safetensors"
    assert not (tmp_path / ".project.lock").exists()


def test_a_lock_left_by_a_killed_process_does_not_stop_the_project(tmp_path, monkeypatch):
    import os
    import time

    from napari_unet_seg.core.training import project as project_module

    (tmp_path / ".project.lock").touch()
    old = time.time() - 60
    os.utime(tmp_path / ".project.lock", (old, old))
    start = time.monotonic()
    Project(tmp_path).set_in_use(tmp_path / "m.safetensors")
    assert time.monotonic() - start < 1 and Project(tmp_path).in_use_recorded == tmp_path / "m.safetensors"
    (tmp_path / ".project.lock").touch()  # a live one, held too long: not waited for past LOCK_WAIT
    monkeypatch.setattr(project_module, "LOCK_WAIT", 0.2)
    Project(tmp_path).set_in_use(tmp_path / "n.safetensors")
    assert Project(tmp_path).in_use_recorded == tmp_path / "n.safetensors"


def test_a_class_model_put_in_use_leaves_the_objects_model_in_use_for_docks_that_start_on_their_own(tmp_path):
    """After a class round, napari started again began Segment, Batch and Layers > Segment on the class model:
    class maps instead of nuclei. Each kind now has its own model in use."""
    from helpers import brightness_class_model, threshold_model

    from napari_unet_seg import save_model

    objects = save_model(threshold_model(), tmp_path / "objects.safetensors")
    classes = save_model(brightness_class_model(), tmp_path / "classes.safetensors")
    project = Project(tmp_path / "project")
    project.set_in_use(objects)
    project.set_in_use(classes)
    again = Project(tmp_path / "project")
    assert again.in_use == objects and again.in_use_classes == classes
    legacy = json.loads((tmp_path / "project" / "project.json").read_text())
    legacy["in_use"] = legacy.pop("in_use_classes")  # as an earlier release recorded a class round
    (tmp_path / "project" / "project.json").write_text(json.dumps(legacy))
    earlier = Project(tmp_path / "project")
    assert earlier.in_use is None and earlier.in_use_classes == classes


def test_an_annotation_left_out_stops_training_is_kept_and_comes_back(tmp_path):
    """Another project's image saved here by mistake came back in every later round: it can be left out now."""
    project = Project(tmp_path / "project")
    first = project.add(TrainingPair(*synthetic_nuclei((48, 48), n=4, seed=1), name="mine"))
    wrong_image, wrong_labels = synthetic_nuclei((48, 48), n=6, seed=9)
    wrong = project.add(TrainingPair(wrong_image, wrong_labels, name="another project's"))
    project.leave_out(wrong)
    again = Project(tmp_path / "project")
    assert [p.name for p in again.pairs()] == ["mine"] and len(again) == 2  # kept, not trained on
    assert (tmp_path / "project" / "pairs" / f"{wrong}.npz").exists()
    again.leave_out(wrong, False)
    assert [p.name for p in Project(tmp_path / "project").pairs()] == ["mine", "another project's"]
    again.leave_out(wrong)
    relabelled = wrong_labels.copy()
    relabelled[relabelled == 1] = 0
    again.add(TrainingPair(wrong_image, relabelled, name="corrected anew"))  # its image corrected again: it trains
    pairs = Project(tmp_path / "project").pairs()
    assert [p.name for p in pairs] == ["mine", "corrected anew"]
    np.testing.assert_array_equal(pairs[1].labels, relabelled)  # not merged with the left-out one
    kept = list((tmp_path / "project" / "pairs" / "left-out").iterdir())
    assert [p.name for p in kept] == [f"{wrong}-1.npz"]  # the left-out file is kept aside, not overwritten
    assert first in {e["key"] for e in Project(tmp_path / "project").entries}


def test_the_fallback_for_a_model_in_use_that_is_gone_is_the_newest_round_the_loop_would_use(tmp_path):
    """A round that kept its parent's weights with post-processing fitted is put in use too (most CPU rounds)."""
    for name in ("kept-weights", "better", "fitted", "not-better"):
        (tmp_path / f"{name}.safetensors").write_bytes(b"x")
    project = Project(tmp_path / "project")
    for name, record in (("better", {"improved": True}), ("fitted", {"improved": False, "fitted": True}),
                         ("not-better", {"improved": False})):
        project.record_model(tmp_path / f"{name}.safetensors", {"parent": "nuclei", **record})
    assert project.latest_better() == tmp_path / "fitted.safetensors"
    (tmp_path / "fitted.safetensors").unlink()
    assert project.latest_better() == tmp_path / "better.safetensors"
