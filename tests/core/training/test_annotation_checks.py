"""Labels that do not belong to their image are noticed and said (training) or refused (evaluate)."""

from __future__ import annotations

import numpy as np
import tifffile

from helpers import synthetic_nuclei, threshold_model
from napari_unet_seg.cli.main import main
from napari_unet_seg.core.common.labels_checks import looks_like_an_intensity_image
from napari_unet_seg.core.training.checks import annotation_warnings
from napari_unet_seg.core.training.data import TrainingPair


def test_the_right_labels_raise_no_warning_and_wrong_ones_do():
    image, labels = synthetic_nuclei((96, 128), seed=1)
    other_image, _ = synthetic_nuclei((96, 128), seed=7)
    model = threshold_model()
    assert annotation_warnings(model, TrainingPair(image, labels, name="a")) == []
    [warning] = annotation_warnings(model, TrainingPair(other_image, labels, name="b"))
    assert "no brighter than their background" in warning and "b" in warning
    [warning] = annotation_warnings(model, TrainingPair(image, image.astype(np.int64), name="c"))
    assert "like an image rather than labels" in warning
    assert not looks_like_an_intensity_image(labels) and looks_like_an_intensity_image(image)


def test_a_nuclear_channel_beside_a_cytoplasm_channel_is_not_called_another_images_labels():
    from napari_unet_seg.core.model.modelfile import new_model

    image, labels = synthetic_nuclei((96, 128), seed=1)
    other_image, _ = synthetic_nuclei((96, 128), seed=7)
    model = new_model("instances", in_channels=2, depth=2, base_channels=4)
    cytoplasm = (image.max() - image).astype(image.dtype)  # dark where the nuclei are: the mean of both is flat
    assert annotation_warnings(model, TrainingPair(np.stack([cytoplasm, image]), labels, name="two")) == []
    [warning] = annotation_warnings(model, TrainingPair(np.stack([other_image, other_image]), labels, name="x"))
    assert "no brighter than their background" in warning


def test_evaluate_refuses_float_or_negative_labels_and_warns_about_an_image(tmp_path, capsys):
    image, labels = synthetic_nuclei((64, 64), seed=2)
    tifffile.imwrite(tmp_path / "img.tif", image)
    for name, bad in (("float.tif", labels.astype(np.float32)), ("negative.tif", labels.astype(np.int32) - 1)):
        tifffile.imwrite(tmp_path / name, bad)
        assert main(["evaluate", str(tmp_path / "img.tif"), "--labels", str(tmp_path / name)]) == 2
        err = capsys.readouterr().err
        assert ("whole numbers" in err or "negative" in err) and "Traceback" not in err
    assert main(["evaluate", str(tmp_path / "img.tif"), "--labels", str(tmp_path / "." / "img.tif")]) == 2
    err = capsys.readouterr().err  # the image as its own ground truth: no score of 0 to puzzle over
    assert "is given as the image and as its ground truth" in err and err.count("\n") == 1
    tifffile.imwrite(tmp_path / "swapped.tif", image.astype(np.uint16))
    assert main(["evaluate", str(tmp_path / "img.tif"), "--labels", str(tmp_path / "swapped.tif")]) == 0
    assert "like an image rather than labels" in capsys.readouterr().err


def test_labels_of_another_image_train_one_round_but_are_never_saved_into_the_project(tmp_path):
    """Saved, they would come back in every later round and merge into every new correction of their image."""
    from napari_unet_seg.core.training.project import Project
    from napari_unet_seg.core.training.saving import save_round

    image, labels = synthetic_nuclei((96, 128), seed=1)
    other_image, _ = synthetic_nuclei((96, 128), seed=7)
    project = Project(tmp_path / "project")
    right, wrong = TrainingPair(image, labels, name="right"), TrainingPair(other_image, labels, name="wrong")
    saved = save_round(project, threshold_model(), [right, wrong], scribbles=False)
    assert [entry["name"] for entry in Project(tmp_path / "project").entries] == ["right"]
    assert saved.unsaved == ["wrong"] and "the labels of wrong look like another image's" in saved.unsaved_note()
    assert [pair.name for pair in saved.pairs] == ["right", "wrong"]  # this round still trains on both
    assert not any(pair.replay for pair in saved.pairs)
    alone = save_round(project, threshold_model(), [wrong], scribbles=False, use_project=False)
    assert alone.pairs == [wrong] and len(Project(tmp_path / "project")) == 1


def test_cli_training_on_another_images_labels_keeps_them_and_its_model_out_of_the_project(tmp_path, capsys):
    from napari_unet_seg.core.training.project import Project

    from scipy import ndimage as ndi

    image, truth = synthetic_nuclei((64, 64), seed=1)
    background = ndi.binary_erosion(truth == 0, iterations=4)
    labels = ndi.label(background & (np.add.outer(np.arange(64), np.arange(64)) % 16 < 4))[0]  # all off the nuclei
    tifffile.imwrite(tmp_path / "other.tif", image)
    tifffile.imwrite(tmp_path / "labels.tif", labels.astype(np.uint16))
    tiny = ["--init", "none", "--depth", "2", "--width", "4", "--max-steps", "2", "--project", str(tmp_path / "p")]
    code = main(["train", "--image", str(tmp_path / "other.tif"), "--labels", str(tmp_path / "labels.tif"), *tiny,
                 "-o", str(tmp_path / "m.safetensors")])
    captured = capsys.readouterr()
    assert code == 0 and "train this round only and were not saved into the project" in captured.err
    assert "it is not made the model in use of project" in captured.out
    project = Project(tmp_path / "p")
    assert len(project) == 0 and project.in_use is None and (tmp_path / "m.safetensors").exists()
