"""Slips on the command line get one line and a non-zero exit, before any work: never a traceback, never lost work."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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


def test_a_model_that_cannot_be_written_where_asked_goes_to_the_model_folder(tmp_path, monkeypatch, capsys):
    from napari_unet_seg.cli import train as train_command
    from napari_unet_seg.core.model.registry import user_model_dir

    image, labels = _pair(tmp_path)
    real = train_command.save_trained

    def disk_full_there(model, path):
        if Path(path).parent == tmp_path:
            raise OSError(28, "No space left on device")
        return real(model, path)

    monkeypatch.setattr(train_command, "save_trained", disk_full_there)
    code = main(["train", "--image", image, "--labels", labels, "--init", "none", "--depth", "2", "--width", "4",
                 "--max-steps", "1", "-o", str(tmp_path / "mine.safetensors")])
    err = capsys.readouterr().err
    assert code == 0 and "No space left on device" in err and "saved as" in err
    assert [p.name for p in user_model_dir().glob("*.safetensors")] == ["mine.safetensors"]
