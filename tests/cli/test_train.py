"""``unet-seg train`` end to end: train a tiny model, then predict with its file."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
import torch

from helpers import synthetic_nuclei
from napari_unet_seg.cli.main import main
from napari_unet_seg.core.model.modelfile import load_model_file, read_metadata, save_model

TINY = ["--init", "none", "--depth", "2", "--width", "4", "--max-steps", "3"]


@pytest.fixture
def files(tmp_path, tiny_model):
    paths = {"inst": save_model(tiny_model, tmp_path / "inst.safetensors")}
    for i in range(2):
        image, labels = synthetic_nuclei((96, 96), seed=i)
        paths[f"img{i}"], paths[f"lbl{i}"] = tmp_path / f"img{i}.tif", tmp_path / f"img{i}_labels.tif"
        tifffile.imwrite(paths[f"img{i}"], image)
        tifffile.imwrite(paths[f"lbl{i}"], labels)
    mask = np.zeros((96, 96), np.uint8)
    mask[:, :60] = 1
    paths["mask"] = tmp_path / "mask.tif"
    tifffile.imwrite(paths["mask"], mask)
    return paths


def test_train_then_predict_with_the_file(files, tmp_path, capsys):
    out = tmp_path / "model.safetensors"
    code = main(["train", "--image", str(files["img0"]), "--labels", str(files["lbl0"]),
                 "--image", str(files["img1"]), "--labels", str(files["lbl1"]), *TINY, "-o", str(out)])
    assert code == 0, capsys.readouterr().err
    assert "saved" in capsys.readouterr().out
    meta = read_metadata(out)
    assert meta["task"] == "instances" and meta["lineage"][-1]["steps"] == 3
    assert [d["name"] for d in meta["lineage"][-1]["data"]] == ["img0", "img1"]
    code = main(["predict", str(files["img0"]), "-o", str(tmp_path / "pred"), "--model", str(out)])
    assert code == 0
    assert tifffile.imread(tmp_path / "pred" / "img0_labels.tif").shape == (96, 96)


@pytest.mark.filterwarnings("ignore:This DataLoader will create")  # a 1-CPU machine: more workers than cores
def test_workers_give_the_same_model_as_none(files, tmp_path):
    """Crops made ahead by worker processes are the crops the loop would make: the same weights."""
    weights = []
    for workers in ("0", "2"):
        out = tmp_path / f"w{workers}.safetensors"
        assert main(["train", "--image", str(files["img0"]), "--labels", str(files["lbl0"]), "--init",
                     str(files["inst"]), "--max-steps", "3", "--workers", workers, "-o", str(out)]) == 0
        weights.append(load_model_file(out).net.state_dict())
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    start = load_model_file(files["inst"]).net.state_dict()
    assert not all(torch.equal(weights[0][k], start[k]) for k in start)  # it trained: the test can tell


def test_scribbles_with_masks_train_a_semantic_model(files, tmp_path):
    out = tmp_path / "sem"
    labels = tifffile.imread(files["lbl0"])
    scribbles = np.zeros(labels.shape, np.uint8)
    scribbles[::5] = np.where(labels[::5] > 0, 2, 1)
    scribbles[:8, :8] = 3
    tifffile.imwrite(tmp_path / "scribbles.tif", scribbles)
    code = main(["train", "--image", str(files["img0"]), "--labels", str(tmp_path / "scribbles.tif"),
                 "--mask", str(files["mask"]),
                 "--scribbles", "--classes", "3", "--class-names", "nucleus", *TINY, "-o", str(out)])
    assert code == 0
    meta = read_metadata(tmp_path / "sem.safetensors")
    assert meta["task"] == "semantic" and meta["class_names"] == ["background", "nucleus", "class 2"]
    assert meta["lineage"][-1]["mode"] == "scribbles"


def test_a_class_painted_nowhere_is_said_once_before_the_first_step(files, tmp_path, capfd):
    labels = tifffile.imread(files["lbl0"])
    scribbles = np.zeros(labels.shape, np.uint8)
    scribbles[::5] = np.where(labels[::5] > 0, 2, 1)  # background and nuclei; no value 3
    tifffile.imwrite(tmp_path / "scribbles.tif", scribbles)
    code = main(["train", "--image", str(files["img0"]), "--labels", str(tmp_path / "scribbles.tif"), "--scribbles",
                 "--classes", "3", "--class-names", "nucleus,mitosis", *TINY, "-o", str(tmp_path / "sem")])
    out, err = capfd.readouterr()
    assert code == 0, err
    said = "unet-seg train: warning: 'mitosis' (value 3) is annotated nowhere: the model will not learn it"
    assert err.count(said) == 1  # said when known (before the first step, the core's test shows), not again


def test_an_output_of_predict_is_refused_until_corrected_and_never_taken_as_scribbles(files, tmp_path, capsys):
    from napari_unet_seg.core.imageio import PROVENANCE_TAG
    from napari_unet_seg.core.inference.provenance import read_provenance

    assert main(["predict", str(files["img0"]), "-o", str(tmp_path / "out"), "--model", str(files["inst"]),
                 "--device", "cpu"]) == 0
    output = tmp_path / "out" / "img0_labels.tif"
    capsys.readouterr()
    base = ["train", "--image", str(files["img0"]), "--labels", str(output), *TINY]
    assert main([*base, "-o", str(tmp_path / "m1")]) == 2
    err = capsys.readouterr().err
    assert f"{output} is unet-seg's output exactly as it came out: correct it first" in err and err.count("\n") == 1
    assert main([*base, "--scribbles", "-o", str(tmp_path / "m2")]) == 2
    assert "is unet-seg's output, not scribbles" in capsys.readouterr().err
    corrected = tifffile.imread(files["lbl0"])  # the missed nuclei painted in Fiji, which keeps the record (its Info)
    tifffile.imwrite(output, corrected, metadata={PROVENANCE_TAG: read_provenance(output)})
    assert main([*base, "-o", str(tmp_path / "m3")]) == 0, capsys.readouterr().err


def test_a_stack_trains_on_its_annotated_slices(tmp_path):
    image, labels = synthetic_nuclei((64, 64))
    tifffile.imwrite(tmp_path / "stack.tif", np.stack([image, image, image]))
    tifffile.imwrite(tmp_path / "stack_labels.tif", np.stack([labels, np.zeros_like(labels), labels]))
    assert main(["train", "--image", str(tmp_path / "stack.tif"), "--labels", str(tmp_path / "stack_labels.tif"),
                 *TINY, "-o", str(tmp_path / "m")]) == 0
    data = read_metadata(tmp_path / "m.safetensors")["lineage"][-1]["data"]
    assert [d["name"] for d in data] == ["stack[0]", "stack[2]"]


@pytest.mark.parametrize("extra, message", [
    (["--labels", "{lbl1}"], "1 --image but 2 --labels"),
    (["--mask", "{mask}", "--mask", "{mask}"], "2 --mask for 1 --image"),
    (["--init", "nuclei", "--depth", "3"], "--depth and --width describe a new model"),
    (["--scribbles", "--classes", "3"], "label value 12 in img0 is too large for a 3-class model"),
    (["--scribbles", "--init", "{inst}"], "scribbles train class models"),
    (["--workers", "-1"], "--workers must be 0 or more, not -1"),
    (["--init", "none", "--depth", "50"], "--depth must be from 1 to 6, not 50"),  # it filled the memory
    (["--init", "none", "--width", "1"], "--width must be at least 2, not 1"),
    (["--classes", "300"], "--classes must be from 2 to 255, not 300"),
])
def test_user_mistakes_are_one_line_errors(files, tmp_path, capsys, extra, message):
    args = ["train", "--image", str(files["img0"]), "--labels", str(files["lbl0"]),
            *[e.format(**{k: str(v) for k, v in files.items()}) for e in extra], "--max-steps", "1",
            "-o", str(tmp_path / "m.safetensors")]
    code = main(args)
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and message in err


def test_existing_output_is_never_overwritten(files, tmp_path, capsys):
    out = tmp_path / "taken.safetensors"
    out.write_bytes(b"precious")
    code = main(["train", "--image", str(files["img0"]), "--labels", str(files["lbl0"]), *TINY, "-o", str(out)])
    assert code == 2 and "already exists" in capsys.readouterr().err
    assert out.read_bytes() == b"precious"


def test_missing_file_and_shape_mismatch(files, tmp_path, capsys):
    assert main(["train", "--image", str(tmp_path / "nope.tif"), "--labels", str(files["lbl0"]), *TINY,
                 "-o", str(tmp_path / "m")]) == 2
    assert "no such file" in capsys.readouterr().err
    tifffile.imwrite(tmp_path / "small.tif", np.zeros((10, 10), np.uint16))
    assert main(["train", "--image", str(files["img0"]), "--labels", str(tmp_path / "small.tif"), *TINY,
                 "-o", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err
    assert "must match" in err and err.count("\n") == 1
    # a multichannel image whose channels were not said: the labels were blamed for it
    image, _ = synthetic_nuclei((96, 96))
    tifffile.imwrite(tmp_path / "three.tif", np.stack([image] * 3), imagej=True, metadata={"axes": "CYX"})
    assert main(["train", "--image", str(tmp_path / "three.tif"), "--labels", str(files["lbl0"]),
                 "--init", str(files["inst"]), "--max-steps", "3", "-o", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err
    assert "three.tif holds 3 planes of (96, 96)" in err and "--channel K" in err and err.count("\n") == 1


def test_too_many_class_names_or_names_for_an_instance_model_are_one_line(files, tmp_path, capsys):
    labels = tifffile.imread(files["lbl0"])
    scribbles = np.where(labels > 0, 2, 1).astype(np.uint8)
    tifffile.imwrite(tmp_path / "scribbles.tif", scribbles)
    base = ["train", "--image", str(files["img0"]), *TINY, "-o", str(tmp_path / "m")]
    assert main([*base, "--labels", str(tmp_path / "scribbles.tif"), "--scribbles",
                 "--class-names", "nucleus,cytoplasm"]) == 2
    err = capsys.readouterr().err
    assert "--class-names: 2 class names (nucleus, cytoplasm) for 1 class(es)" in err and err.count("\n") == 1
    for names, said in [("nucleus, Nucleus", "'Nucleus' is given twice"), ("background", "is class 0's name")]:
        assert main([*base, "--labels", str(tmp_path / "scribbles.tif"), "--scribbles", "--class-names", names]) == 2
        err = capsys.readouterr().err
        assert "--class-names: " in err and said in err and err.count("\n") == 1, names
    assert main([*base, "--labels", str(files["lbl0"]), "--class-names", "nucleus"]) == 2
    assert "use it with --scribbles or --classes and --init none" in capsys.readouterr().err
    assert not (tmp_path / "m.safetensors").exists()


@pytest.mark.parametrize("layout", ["channels last", "imagej cyx"])
def test_a_multichannel_model_trains_from_files_predict_reads_and_a_channel_alone_too(tmp_path, capsys, layout):
    image, labels = synthetic_nuclei((96, 96), seed=3)
    other = (image.max() - image).astype(image.dtype)
    path = tmp_path / "two.tif"
    if layout == "channels last":
        tifffile.imwrite(path, np.stack([other, image], axis=-1))
    else:
        tifffile.imwrite(path, np.stack([other, image]), imagej=True, metadata={"axes": "CYX"})
    tifffile.imwrite(tmp_path / "two_labels.tif", labels)
    two = tmp_path / "two-channel.safetensors"
    code = main(["train", "--image", str(path), "--labels", str(tmp_path / "two_labels.tif"), *TINY, "-o", str(two)])
    assert code == 0, capsys.readouterr().err
    assert read_metadata(two)["architecture"]["in_channels"] == 2  # a new model takes the channels the files have
    again = tmp_path / "again.safetensors"  # and continuing it reads them the same way
    assert main(["train", "--image", str(path), "--labels", str(tmp_path / "two_labels.tif"), "--init", str(two),
                 "--max-steps", "2", "-o", str(again)]) == 0
    assert main(["predict", str(path), "-o", str(tmp_path / "pred"), "--model", str(again)]) == 0
    one = tmp_path / "nuclear.safetensors"  # the nuclear channel alone, into a one-channel model
    assert main(["train", "--image", str(path), "--labels", str(tmp_path / "two_labels.tif"), "--channel", "1",
                 *TINY, "-o", str(one)]) == 0
    assert read_metadata(one)["architecture"]["in_channels"] == 1
    capsys.readouterr()
    assert main(["train", "--image", str(path), "--labels", str(tmp_path / "two_labels.tif"), "--channel", "2",
                 *TINY, "-o", str(tmp_path / "x.safetensors")]) == 2
    assert "--channel 2: " in capsys.readouterr().err


def test_object_labels_given_as_scribbles_are_refused_not_trained_as_a_class_per_object(tmp_path, capsys):
    image, labels = synthetic_nuclei((192, 192), n=60, seed=3)
    assert labels.max() > 32  # ids of objects, not classes someone painted
    tifffile.imwrite(tmp_path / "img.tif", image)
    tifffile.imwrite(tmp_path / "img_truth.tif", labels.astype(np.uint16))
    out = tmp_path / "classes.safetensors"
    code = main(["train", "--image", str(tmp_path / "img.tif"), "--labels", str(tmp_path / "img_truth.tif"),
                 "--scribbles", *TINY, "-o", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "they look like objects (one id per nucleus)" in err[0], err
    assert not out.exists()
