"""Slips on the command line get one line and a non-zero exit, before any work: never a traceback, never lost work."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile

from helpers import synthetic_nuclei
from napari_unet_seg.cli.main import main

UNWRITABLE = "/proc/napari-unet-seg-cannot-write-here/out"  # not writable, even as root


def _pair(tmp_path):
    image, labels = synthetic_nuclei((64, 64), seed=1)
    tifffile.imwrite(tmp_path / "img.tif", image)
    tifffile.imwrite(tmp_path / "lbl.tif", labels)
    return str(tmp_path / "img.tif"), str(tmp_path / "lbl.tif")


def test_an_unwritable_output_folder_is_refused_before_the_work(tmp_path, capsys):
    image, labels = _pair(tmp_path)
    assert main(["predict", image, "-o", UNWRITABLE]) == 2
    err = capsys.readouterr().err
    assert "cannot write to" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    code = main(["train", "--image", image, "--labels", labels, "--init", "none", "--depth", "2", "--width", "4",
                 "-o", UNWRITABLE + "/model.safetensors"])
    printed = capsys.readouterr()
    assert code == 2 and "cannot write to" in printed.err and "training" not in printed.out  # refused first
    assert main(["evaluate", image, "--labels", labels, "--csv", UNWRITABLE + "/scores.csv"]) == 2
    assert "cannot write to" in capsys.readouterr().err


def test_folders_where_files_belong_are_refused_before_the_work(tmp_path, capsys):
    image, labels = _pair(tmp_path)
    (tmp_path / "scores").mkdir()
    assert main(["evaluate", image, "--labels", labels, "--csv", str(tmp_path / "scores")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "scores is a folder; give a file name ending in .csv" in err
    (tmp_path / "models").mkdir()
    assert main(["train", "--image", image, "--labels", labels, "--init", "none", "--depth", "2", "--width", "4",
                 "--max-steps", "1", "-o", str(tmp_path / "models")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "models is a folder; give the model file's name" in err
    assert not list(tmp_path.glob("*.safetensors")) and list((tmp_path / "models").iterdir()) == []


def test_the_image_given_as_its_own_labels_is_refused(tmp_path, capsys):
    image, _ = _pair(tmp_path)
    code = main(["train", "--image", image, "--labels", image, "--init", "none", "--depth", "2", "--width", "4",
                 "--max-steps", "1", "-o", str(tmp_path / "m")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "are the image itself: pick the labels painted over it" in err
    assert not (tmp_path / "m.safetensors").exists()


def test_a_pickle_name_for_the_model_file_is_said_not_silently_changed(tmp_path, capsys):
    image, labels = _pair(tmp_path)
    code = main(["train", "--image", image, "--labels", labels, "--init", "none", "--depth", "2", "--width", "4",
                 "--max-steps", "1", "-o", str(tmp_path / "model.pt")])
    assert code == 0
    assert "writing model.pt.safetensors" in capsys.readouterr().err
    assert (tmp_path / "model.pt.safetensors").exists() and not (tmp_path / "model.pt").exists()


def test_an_absurd_diameter_is_refused_up_front(tmp_path, capsys):
    image, _ = _pair(tmp_path)
    assert main(["predict", image, "-o", str(tmp_path / "out"), "--diameter", "1e300"]) == 2
    err = capsys.readouterr().err
    assert "would shrink the image" in err and "give at most" in err
    assert not (tmp_path / "out").exists()


def test_a_closed_pipe_ends_quietly(tmp_path):
    image, _ = _pair(tmp_path)
    inputs = [image] * 3
    code = ("import sys; from napari_unet_seg.cli.main import main; sys.exit(main(sys.argv[1:]))")
    reader = subprocess.Popen([sys.executable, "-c", code, "predict", *inputs, "-o", str(tmp_path / "out")],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    reader.stdout.close()  # like `| head -0`: nobody reads
    _, err = reader.communicate(timeout=120)
    assert b"Traceback" not in err and b"BrokenPipe" not in err
    assert (tmp_path / "out" / "summary.csv").exists()


@pytest.mark.parametrize("full", ["the output folder", "the output and model folders"])
def test_a_model_that_cannot_be_written_where_asked_goes_to_the_model_folder(tmp_path, monkeypatch, capsys, full):
    """A disk that fills during training: safetensors' own error (not an OSError) used to lose the model."""
    import tempfile

    from napari_unet_seg.core.model import modelfile
    from napari_unet_seg.core.model.registry import user_model_dir

    image, labels = _pair(tmp_path)
    real = modelfile.save_file
    full_folders = [tmp_path] + ([user_model_dir()] if full != "the output folder" else [])

    def disk_full_there(tensors, filename, metadata=None):
        if Path(filename).parent in full_folders:
            raise RuntimeError("Error while serializing: I/O error: No space left on device (os error 28)")
        return real(tensors, filename, metadata=metadata)

    monkeypatch.setattr(modelfile, "save_file", disk_full_there)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "system-temp"))
    code = main(["train", "--image", image, "--labels", labels, "--init", "none", "--depth", "2", "--width", "4",
                 "--max-steps", "1", "-o", str(tmp_path / "mine.safetensors")])
    err = capsys.readouterr().err
    assert code == 0 and "No space left on device" in err and "the model was saved as" in err
    place = user_model_dir() if full == "the output folder" else tmp_path / "system-temp" / "napari-unet-seg-models"
    assert [p.name for p in place.glob("*.safetensors")] == ["mine.safetensors"]
    assert str(place / "mine.safetensors") in err
    assert modelfile.load_model_file(place / "mine.safetensors") is not None


def test_an_absurd_diameter_in_evaluate_is_one_line(tmp_path, capsys):
    image, labels = _pair(tmp_path)
    assert main(["evaluate", image, "--labels", labels, "--diameter", "1e300"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err and "would shrink the image" in err


def test_training_on_another_images_labels_warns(tmp_path, capsys):
    image, _ = _pair(tmp_path)
    _, truth = synthetic_nuclei((64, 64), seed=1)
    from scipy import ndimage as ndi

    background = ndi.binary_erosion(truth == 0, iterations=4)
    other = ndi.label(background & (np.add.outer(np.arange(64), np.arange(64)) % 16 < 4))[0]  # "nuclei" on background
    tifffile.imwrite(tmp_path / "other.tif", other.astype(np.uint16))
    code = main(["train", "--image", image, "--labels", str(tmp_path / "other.tif"), "--init", "none",
                 "--depth", "2", "--width", "4", "--max-steps", "1", "-o", str(tmp_path / "m.safetensors")])
    err = capsys.readouterr().err
    assert code == 0 and "no brighter than their background" in err and "labels of another image" in err


def test_a_disk_that_fills_up_mid_batch_costs_only_that_file(tmp_path, capsys, monkeypatch):
    """The next files still run, the summary says which failed and why, in one line each; exit 1."""
    import errno
    import os

    from napari_unet_seg.core.batch import files

    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("a", "b", "c"):
        image, _ = synthetic_nuclei((48, 48), seed=ord(name))
        tifffile.imwrite(folder / f"{name}.tif", image)
    real = files.write_labels_tiff

    def full_for_b(path, *args, **kwargs):
        if Path(path).name.startswith("b"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(files, "write_labels_tiff", full_for_b)
    out = tmp_path / "out"
    code = main(["predict", str(folder), "-o", str(out)])
    printed = capsys.readouterr()
    assert code == 1
    failures = [line for line in printed.err.splitlines() if "b.tif" in line]
    assert len(failures) == 1 and "No space left on device" in failures[0] and "Traceback" not in printed.err
    assert (out / "a_labels.tif").exists() and (out / "c_labels.tif").exists() and not (out / "b_labels.tif").exists()
    rows = {Path(r["file"]).name: r["status"] for r in csv.DictReader(open(out / "summary.csv"))}
    assert rows == {"a.tif": "ok", "b.tif": "failed", "c.tif": "ok"}


def test_a_csv_that_cannot_be_written_after_evaluating_keeps_the_printed_scores(tmp_path, capsys, monkeypatch):
    import contextlib
    import errno
    import os

    from napari_unet_seg.cli import evaluate

    @contextlib.contextmanager
    def disk_full(path, *args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        yield  # pragma: no cover

    monkeypatch.setattr(evaluate, "atomic_path", disk_full)
    image, labels = _pair(tmp_path)
    code = main(["evaluate", image, "--labels", labels, "--csv", str(tmp_path / "scores.csv")])
    printed = capsys.readouterr()
    assert code == 2 and printed.err.count("\n") == 1 and "No space left on device" in printed.err
    assert "img.tif: AP50" in printed.out and "mean: AP50" in printed.out  # the work is on screen, not lost


def test_a_mistyped_option_is_one_line_that_points_at_help(capsys):
    import pytest

    for argv, said in ((["predict", "x", "-o", "y", "--diameter", "abc"],
                        "unet-seg predict: error: argument --diameter: invalid float value: 'abc' "
                        "(see unet-seg predict --help)"),
                       ([], "unet-seg: error: the following arguments are required: COMMAND (see unet-seg --help)"),
                       (["train", "--depht", "3"], "unet-seg train: error: ")):
        with pytest.raises(SystemExit) as stopped:
            main(argv)
        err = capsys.readouterr().err
        assert stopped.value.code == 2 and err.count("\n") == 1 and err.startswith(said), err


def test_a_damaged_correction_in_the_project_is_said_and_training_goes_on(tmp_path, capsys):
    image, labels = _pair(tmp_path)
    args = ["train", "--image", image, "--labels", labels, "--init", "none", "--depth", "2", "--width", "4",
            "--max-steps", "1", "--project", str(tmp_path / "project")]
    assert main([*args, "-o", str(tmp_path / "m1.safetensors")]) == 0
    for saved in (tmp_path / "project" / "pairs").glob("*.npz"):
        saved.write_bytes(b"PK\x03\x04 cut short")  # a crash mid-write, a bad copy
    other, other_labels = synthetic_nuclei((64, 64), seed=5)
    tifffile.imwrite(tmp_path / "img2.tif", other)
    tifffile.imwrite(tmp_path / "lbl2.tif", other_labels)
    args[2], args[4] = str(tmp_path / "img2.tif"), str(tmp_path / "lbl2.tif")
    capsys.readouterr()
    assert main([*args, "-o", str(tmp_path / "m2.safetensors")]) == 0
    err = capsys.readouterr().err
    assert "warning: the saved correction of 'img'" in err and "it is left out" in err and "Traceback" not in err
    assert (tmp_path / "m2.safetensors").is_file()


def test_ctrl_c_in_training_says_where_the_weights_so_far_are(tmp_path, monkeypatch, capsys):
    from napari_unet_seg.cli import train as train_command
    from napari_unet_seg.core.model.modelfile import save_model

    def interrupted_after_a_checkpoint(model, pairs, *, checkpoint_to, **kwargs):
        save_model(model, checkpoint_to)  # what the loop's checkpoint writer leaves
        raise KeyboardInterrupt

    monkeypatch.setattr(train_command, "finetune", interrupted_after_a_checkpoint)
    image, labels = _pair(tmp_path)
    code = main(["train", "--image", image, "--labels", labels, "--init", "none", "--depth", "2", "--width", "4",
                 "--max-steps", "5", "-o", str(tmp_path / "m.safetensors")])
    err = capsys.readouterr().err
    assert code == 130 and f"the best weights so far are kept in {tmp_path / 'm-checkpoint.safetensors'}" in err
    assert not (tmp_path / "m.safetensors").exists()
