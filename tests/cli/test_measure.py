"""`unet-seg measure` and the objects tables `unet-seg predict` writes; mistakes are one stderr line."""

import hashlib
import os

import numpy as np
import pytest
import tifffile
from helpers import (
    bright_and_dim_nuclei,
    brightness_class_model,
    synthetic_nuclei,
    threshold_model,
)

from napari_unet_seg import save_model
from napari_unet_seg.cli.main import main
from napari_unet_seg.core.measure.table_csv import read_objects_csv


@pytest.fixture
def files(tmp_path):
    image, labels = synthetic_nuclei((40, 56), n=5, seed=1)
    tifffile.imwrite(tmp_path / "img.tif", image)
    tifffile.imwrite(tmp_path / "img_labels.tif", labels, resolution=(4.0, 4.0), imagej=True,
                     metadata={"unit": "um"})
    return tmp_path, image, labels


def test_measure_writes_the_table_beside_the_labels(files, capsys):
    folder, image, labels = files
    assert main(["measure", str(folder / "img_labels.tif"), "--image", str(folder / "img.tif")]) == 0
    assert capsys.readouterr().out.strip() == f"5 objects -> {folder / 'img_objects.csv'}"
    table, comments = read_objects_csv(folder / "img_objects.csv")
    assert table["label"].tolist() == [1, 2, 3, 4, 5] and comments["pixel_size"] == "0.25 x 0.25 um"
    assert table["intensity_integrated"].sum() == pytest.approx(image[labels > 0].astype(float).sum())
    np.testing.assert_allclose(table["centroid_x_um"], table["centroid_x"] * 0.25)


def test_pixel_size_option_and_output_path_and_stacks(files, capsys):
    folder, _, labels = files
    tifffile.imwrite(folder / "stack.tif", np.stack([labels, labels[:, ::-1], np.zeros_like(labels)]))
    out = folder / "tables" / "stack.csv"
    assert main(["measure", str(folder / "stack.tif"), "-o", str(out), "--pixel-size", "2", "1"]) == 0
    assert "10 objects in 2 slices" in capsys.readouterr().out
    table, _ = read_objects_csv(out)
    np.testing.assert_allclose(table["area_um2"], table["area"] * 2.0)
    assert "perimeter_um" not in table  # pixels that are not square


@pytest.mark.parametrize("case, message", [
    ("shapes", "has shape (40, 55) but"),
    ("empty", "holds no objects"),
    ("exists", "exists (use --overwrite"),
    ("folder", "is a folder; give a file name ending in .csv"),  # not "use --overwrite", which would not help
    ("missing", "no such file"),
    ("not csv", "table.txt does not end in .csv: the table is written as CSV, so give a name like table.csv"),
    ("floats", "integer ids"),
    ("noisy floats", "integer ids"),  # an image of floats: the refusal alone, not a warning before it
    ("pixel", "--pixel-size must be a positive number"),
])
def test_mistakes_are_one_line_and_exit_2_and_write_nothing(files, capsys, case, message):
    folder, image, labels = files
    args = ["measure", str(folder / "img_labels.tif")]
    if case == "shapes":
        tifffile.imwrite(folder / "other.tif", image[:, 1:])
        args += ["--image", str(folder / "other.tif")]
    elif case == "empty":
        tifffile.imwrite(folder / "img_labels.tif", np.zeros_like(labels))
    elif case == "exists":
        (folder / "img_objects.csv").write_text("mine\n")
    elif case == "folder":
        (folder / "img_objects.csv").mkdir()
    elif case == "missing":
        args = ["measure", str(folder / "nothing.tif")]
    elif case == "not csv":
        args += ["-o", str(folder / "table.txt")]
    elif case == "floats":
        tifffile.imwrite(folder / "img_labels.tif", labels.astype(np.float32) / 2)
    elif case == "noisy floats":
        tifffile.imwrite(folder / "img_labels.tif", np.random.default_rng(0).random(labels.shape, np.float32))
    else:
        args += ["--pixel-size", "0", "1"]
    before = sorted(p.name for p in folder.iterdir())
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert sorted(p.name for p in folder.iterdir()) == before
    if case == "exists":
        assert (folder / "img_objects.csv").read_text() == "mine\n"


def test_a_folder_that_cannot_be_written_is_one_line(files, capsys):
    folder, _, _ = files
    assert main(["measure", str(folder / "img_labels.tif"), "-o", str(folder / "img.tif" / "t.csv")]) == 2
    assert "cannot write to" in capsys.readouterr().err
    if os.geteuid() != 0:  # root can write anywhere
        locked = folder / "locked"
        locked.mkdir(mode=0o500)
        assert main(["measure", str(folder / "img_labels.tif"), "-o", str(locked / "t.csv")]) == 2
        assert "cannot write to" in capsys.readouterr().err


def test_predict_writes_objects_tables_unless_told_not_to(tmp_path, capsys):
    model = save_model(threshold_model(), tmp_path / "disks.safetensors")
    tifffile.imwrite(tmp_path / "a.tif", synthetic_nuclei((40, 56), n=5, seed=0)[0])
    common = ["predict", str(tmp_path / "a.tif"), "--model", str(model), "--device", "cpu"]
    assert main([*common, "-o", str(tmp_path / "out")]) == 0
    table, _ = read_objects_csv(tmp_path / "out" / "a_objects.csv")
    labels = tifffile.imread(tmp_path / "out" / "a_labels.tif")
    assert table["label"].tolist() == np.unique(labels)[1:].tolist() and "intensity_mean" in table
    assert main([*common, "-o", str(tmp_path / "bare"), "--no-measure"]) == 0
    assert sorted(p.name for p in (tmp_path / "bare").iterdir()) == ["a_labels.tif", "qc", "summary.csv"]


def test_an_image_given_as_labels_is_warned_about_in_one_line(files, capsys):
    folder, _, _ = files
    assert main(["measure", str(folder / "img.tif"), "-o", str(folder / "m.csv")]) == 0  # measured all the same
    printed = capsys.readouterr()
    assert printed.err == (f"unet-seg measure: warning: {folder / 'img.tif'} changes value from pixel to pixel, like "
                           "an image rather than labels: did you pick the image as labels?\n")
    assert (folder / "m.csv").exists()
    assert main(["measure", str(folder / "img_labels.tif"), "--image", str(folder / "img.tif")]) == 0
    assert capsys.readouterr().err == ""  # real labels: nothing said


def test_an_output_folder_that_is_a_file_or_cannot_be_made_is_one_clean_line(files, capsys):
    folder, _, _ = files
    (folder / "notes.txt").write_text("mine")
    assert main(["measure", str(folder / "img_labels.tif"), "-o", str(folder / "notes.txt" / "m.csv")]) == 2
    assert capsys.readouterr().err == (f"unet-seg measure: error: cannot write to {folder / 'notes.txt'}: it exists "
                                       "and is not a folder\n")  # the path once, no "[Errno None]"
    assert main(["measure", str(folder / "img_labels.tif"), "-o", "/proc/napari-unet-seg-nope/m.csv"]) == 2
    assert capsys.readouterr().err == ("unet-seg measure: error: cannot write to /proc/napari-unet-seg-nope: "
                                       "No such file or directory\n")  # no "[Errno 2]"


def test_a_two_channel_image_gives_columns_per_channel_and_several_images_are_named(files, capsys):
    folder, image, labels = files
    tifffile.imwrite(folder / "two.tif", np.stack([image, image // 2]), imagej=True, metadata={"axes": "CYX"})
    assert main(["measure", str(folder / "img_labels.tif"), "--image", str(folder / "two.tif"), "-o",
                 str(folder / "two.csv")]) == 0
    table, _ = read_objects_csv(folder / "two.csv")
    assert table["intensity_ch1_integrated"].sum() == pytest.approx((image // 2)[labels > 0].astype(float).sum())
    assert main(["measure", str(folder / "img_labels.tif"), "--image", str(folder / "img.tif"), "--image",
                 str(folder / "two.tif"), "-o", str(folder / "both.csv")]) == 0
    table, comments = read_objects_csv(folder / "both.csv")
    assert {"img_mean", "two_ch0_mean", "two_ch1_mean"} <= set(table) and comments["image"] == "img.tif, two.tif"


def test_classes_from_a_class_model_s_output_are_named_by_its_model(files, capsys):
    """A class model's output from `unet-seg predict` carries its class names; measure takes them from it."""
    folder, _, _ = files
    image, labels, _ = bright_and_dim_nuclei((60, 80), n=12, seed=4)  # odd ids bright, even ids dim
    tifffile.imwrite(folder / "img.tif", image)
    tifffile.imwrite(folder / "img_labels.tif", labels)
    save_model(brightness_class_model(["background", "tumour", "stroma"]), folder / "classes.safetensors")
    assert main(["predict", str(folder / "img.tif"), "--model", str(folder / "classes.safetensors"),
                 "-o", str(folder / "out")]) == 0
    printed = capsys.readouterr()
    assert "a class map (" in printed.out and "% background" in printed.out  # not "0 objects": each class's share
    assert "class map" not in printed.err  # said once, on its line, not again as a note
    class_map = tifffile.imread(folder / "out" / "img_classes.tif")  # beside objects, never over them
    assert set(np.unique(class_map[labels > 0])) == {1, 2}  # the dim nuclei are tumour, the bright ones stroma
    assert main(["provenance", str(folder / "out" / "img_classes.tif")]) == 0
    assert "output classes (tumour, stroma)" in capsys.readouterr().out
    assert main(["measure", str(folder / "img_labels.tif"), "--classes", str(folder / "out" / "img_classes.tif")]) == 0
    out = capsys.readouterr().out
    table, comments = read_objects_csv(folder / "img_objects.csv")
    names = {0: "unclassified", 1: "tumour", 2: "stroma"}
    for label, found, name in zip(table["label"], table["class"], table["class_name"]):
        votes = np.bincount(class_map[labels == label], minlength=3)[1:]
        assert found == (1 + int(np.argmax(votes)) if votes.any() else 0) and name == names[found]
    assert comments["classes"] == "img_classes.tif" and f"{len(table['label'])} objects (" in out
    # the class model that sorted them, named in the table: not only the class map's file name
    sha = hashlib.sha256((folder / "classes.safetensors").read_bytes()).hexdigest()
    assert comments["classes_model"] == f"classes (sha256 {sha})"
    assert comments["classes_command"].startswith("unet-seg predict ") and "classes.safetensors" in \
        comments["classes_command"]
    assert main(["measure", str(folder / "out" / "img_classes.tif"), "--overwrite", "-o",
                 str(folder / "swapped.csv")]) == 0  # the class map as LABELS: measured, and said
    assert "is a class model's output, so each class was measured as one object" in capsys.readouterr().err
    save_model(threshold_model(), folder / "disks.safetensors")
    assert main(["predict", str(folder / "img.tif"), "--model", str(folder / "disks.safetensors"), "-o",
                 str(folder / "objects")]) == 0
    capsys.readouterr()
    assert main(["measure", str(folder / "img_labels.tif"), "--overwrite", "--classes",
                 str(folder / "objects" / "img_labels.tif")]) == 2  # unet-seg's objects are not classes
    assert "holds objects (unet-seg made it as labels of objects), not classes" in capsys.readouterr().err


def test_class_names_can_be_given_and_mistakes_are_one_line(files, capsys):
    folder, image, labels = files
    classes = (labels % 2 + 1) * (labels > 0)  # odd objects class 2, even ones class 1
    tifffile.imwrite(folder / "classes.tif", classes.astype(np.uint8))
    assert main(["measure", str(folder / "img_labels.tif"), "--classes", str(folder / "classes.tif"),
                 "--class-names", "dim, bright"]) == 0
    table, _ = read_objects_csv(folder / "img_objects.csv")
    assert table["class_name"].tolist() == ["bright", "dim", "bright", "dim", "bright"]
    assert "5 objects (dim: 2, bright: 3)" in capsys.readouterr().out
    tifffile.imwrite(folder / "small.tif", classes[1:].astype(np.uint8))
    tifffile.imwrite(folder / "rgb.tif", np.zeros((*labels.shape, 3), np.uint8))
    tifffile.imwrite(folder / "negative.tif", np.full(labels.shape, -1, np.int16))
    for extra, message in [
        (["--classes", str(folder / "small.tif")], "must match pixel for pixel"),
        (["--classes", str(folder / "rgb.tif")], "not a class map"),
        (["--class-names", "a,b"], "give the class map with --classes"),
        (["--classes", str(folder / "classes.tif"), "--class-names", "a,,b"], "has an empty name"),
        (["--classes", str(folder / "classes.tif"), "--class-names", "dim,dim"], "'dim' is given twice"),
        (["--classes", str(folder / "img_labels.tif")], "is LABELS itself"),
        (["--classes", str(folder / "negative.tif")], f"{folder / 'negative.tif'}: the class map must hold non-neg"),
    ]:
        assert main(["measure", str(folder / "img_labels.tif"), "--overwrite", *extra]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, extra
    assert main(["measure", str(folder / "img_labels.tif"), "--overwrite", "--classes", str(folder / "img.tif")]) == 0
    assert "like an image rather than a class map" in capsys.readouterr().err
    tifffile.imwrite(folder / "copy.tif", labels)  # the objects again, as classes
    assert main(["measure", str(folder / "img_labels.tif"), "--overwrite", "--classes", str(folder / "copy.tif")]) == 0
    assert "like labels of objects rather than classes" in capsys.readouterr().err
    assert main(["measure", str(folder / "img_labels.tif"), "--overwrite", "--classes", str(folder / "classes.tif"),
                 "--class-names", "dim"]) == 0
    assert "names 1 class(es), but" in capsys.readouterr().err


def test_an_rgba_images_alpha_is_not_measured_as_a_channel(files, capsys):
    """A PNG saved with an alpha channel: its opacity (255 everywhere) is no stain, so no fourth column set."""
    from skimage import io

    folder, image, labels = files
    io.imsave(folder / "colour.png", np.stack([image, image // 2, 255 - image, np.full_like(image, 255)], -1),
              check_contrast=False)
    assert main(["measure", str(folder / "img_labels.tif"), "--image", str(folder / "colour.png")]) == 0
    table, _ = read_objects_csv(folder / "img_objects.csv")
    assert [f"intensity_ch{k}_mean" in table for k in range(4)] == [True, True, True, False]
    inside = labels == table["label"][0]
    assert table["intensity_ch2_mean"][0] == pytest.approx((255 - image[inside]).astype(float).mean())
