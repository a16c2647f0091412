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
    tifffile.imwrite(tmp_path / "swapped.tif", image.astype(np.uint16))
    assert main(["evaluate", str(tmp_path / "img.tif"), "--labels", str(tmp_path / "swapped.tif")]) == 0
    assert "like an image rather than labels" in capsys.readouterr().err
