"""`unet-seg export-model`: a model file -> a bioimage.io package folder; mistakes are one line, nothing overwritten."""

import pytest
import yaml

from napari_unet_seg.cli.main import main
from napari_unet_seg.core.model.modelfile import new_model, save_model

pytest.importorskip("bioimageio.spec")


def one_error_line(capsys, code, text):
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and text in err, err


def test_a_model_file_becomes_a_package(tiny_model, tmp_path, capsys):
    path = save_model(tiny_model, tmp_path / "cells.safetensors")
    out = tmp_path / "cells-bioimageio"
    assert main(["export-model", str(path), "-o", str(out), "--author", "A. Person", "--license", "MIT"]) == 0
    printed = capsys.readouterr().out
    assert f"wrote {out}" in printed and "bioimageio test" in printed and "--author" not in printed
    rdf = yaml.safe_load((out / "rdf.yaml").read_text())
    assert rdf["authors"] == [{"name": "A. Person"}] and rdf["license"] == "MIT" and rdf["name"] == "cells"
    assert {"weights.pt", "weights_torchscript.pt", "unet.py", "cells.safetensors", "README.md",
            "cover.png"} <= {p.name for p in out.iterdir()}
    assert sorted(rdf["weights"]) == ["pytorch_state_dict", "torchscript"]  # TorchScript by default, for deepImageJ


def test_no_torchscript_leaves_the_torchscript_weights_out(tiny_model, tmp_path):
    path = save_model(tiny_model, tmp_path / "cells.safetensors")
    out = tmp_path / "cells-bioimageio"
    assert main(["export-model", str(path), "-o", str(out), "--no-torchscript"]) == 0
    assert list(yaml.safe_load((out / "rdf.yaml").read_text())["weights"]) == ["pytorch_state_dict"]
    assert not (out / "weights_torchscript.pt").exists()


def test_an_existing_folder_is_one_line_and_untouched(tiny_model, tmp_path, capsys):
    path = save_model(tiny_model, tmp_path / "cells.safetensors")
    out = tmp_path / "out"
    out.mkdir()
    one_error_line(capsys, main(["export-model", str(path), "-o", str(out)]), "--overwrite")
    assert list(out.iterdir()) == []
    (out / "notes.txt").write_text("precious")
    one_error_line(capsys, main(["export-model", str(path), "-o", str(out), "--overwrite"]),
                   "holds files that are not a bioimage.io package (no rdf.yaml)")
    assert (out / "notes.txt").read_text() == "precious"


def test_a_multichannel_model_without_a_matching_sample_is_one_line(tmp_path, capsys):
    path = save_model(new_model("instances", in_channels=3, depth=2, base_channels=4), tmp_path / "rgbish.safetensors")
    one_error_line(capsys, main(["export-model", str(path), "-o", str(tmp_path / "out")]), "expects 3 channel")
    assert not (tmp_path / "out").exists()


def test_an_unknown_licence_or_model_is_one_line(tiny_model, tmp_path, capsys):
    path = save_model(tiny_model, tmp_path / "cells.safetensors")
    one_error_line(capsys, main(["export-model", str(path), "-o", str(tmp_path / "a"), "--license", "nope nope"]),
                   "SPDX")
    one_error_line(capsys, main(["export-model", "no-such-model", "-o", str(tmp_path / "b")]), "no model named")
