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


def test_a_zip_name_writes_one_zip_that_imports_and_is_never_overwritten_unasked(tiny_model, tmp_path, capsys):
    import zipfile

    path = save_model(tiny_model, tmp_path / "cells.safetensors")
    out = tmp_path / "cells.zip"
    assert main(["export-model", str(path), "-o", str(out), "--author", "A. Person", "--no-torchscript"]) == 0
    assert f"bioimageio test {out})" in capsys.readouterr().out
    with zipfile.ZipFile(out) as archive:
        assert "rdf.yaml" in archive.namelist() and "cells.safetensors" in archive.namelist()
    assert main(["import-model", str(out), "-o", str(tmp_path / "back.safetensors")]) == 0
    before = out.read_bytes()
    one_error_line(capsys, main(["export-model", str(path), "-o", str(out)]), "choose another name or pass --overwrite")
    assert out.read_bytes() == before


def test_an_imported_models_authors_licence_and_citations_go_into_its_next_package(tiny_model, tmp_path, capsys):
    tiny_model.metadata["cite"] = [{"text": "Data et al. (2020): the images it learnt from", "doi": "10.1234/data"},
                                   {"text": "a note without a DOI"}]  # bioimage.io's cite needs a DOI or a URL
    path = save_model(tiny_model, tmp_path / "cells.safetensors")
    first = tmp_path / "first"
    assert main(["export-model", str(path), "-o", str(first), "--author", "Bea Bio", "--author", "Carl C",
                 "--license", "MIT", "--no-torchscript"]) == 0
    assert main(["import-model", str(first), "-o", str(tmp_path / "received.safetensors")]) == 0
    capsys.readouterr()
    again = tmp_path / "again"
    assert main(["export-model", str(tmp_path / "received.safetensors"), "-o", str(again), "--no-torchscript"]) == 0
    printed = capsys.readouterr().err  # notes on stderr, as every command's
    rdf = yaml.safe_load((again / "rdf.yaml").read_text())
    assert rdf["authors"] == [{"name": "Bea Bio"}, {"name": "Carl C"}] and rdf["license"] == "MIT"
    assert [c["doi"] for c in rdf["cite"]] == ["10.1007/978-3-319-24574-4_28", "10.1234/data"]  # U-Net, then data
    assert "note: authors as the model file records them: Bea Bio, Carl C" in printed
    assert "note: licence as the model file records it: MIT" in printed
    one_error_line(capsys, main(["export-model", str(path), "-o", str(tmp_path / "x"), "--author", " "]),
                   "--author needs a name")


def test_a_package_given_as_a_model_says_to_import_it_and_import_refuses_a_folder_as_output(tiny_model, tmp_path,
                                                                                          capsys):
    path = save_model(tiny_model, tmp_path / "cells.safetensors")
    folder, packed = tmp_path / "pkg", tmp_path / "pkg.zip"
    assert main(["export-model", str(path), "-o", str(folder), "--no-torchscript"]) == 0
    assert main(["export-model", str(path), "-o", str(packed), "--no-torchscript"]) == 0
    capsys.readouterr()
    image = tmp_path / "img.tif"
    import numpy as np
    import tifffile

    tifffile.imwrite(image, np.zeros((32, 32), np.uint8))
    for package in (folder, packed, folder / "rdf.yaml"):
        one_error_line(capsys, main(["predict", str(image), "-o", str(tmp_path / "out"), "--model", str(package)]),
                       f"is a bioimage.io model package, not a model file: turn it into one with `unet-seg "
                       f"import-model {package} -o {'pkg' if package.name == 'rdf.yaml' else package.stem}"
                       "-imported.safetensors`")
    (tmp_path / "models").mkdir()
    one_error_line(capsys, main(["import-model", str(folder), "-o", str(tmp_path / "models")]),
                   "is a folder; give the model file's name")
    (tmp_path / "cut.zip").write_bytes(packed.read_bytes()[:200])
    one_error_line(capsys, main(["import-model", str(tmp_path / "cut.zip"), "-o", str(tmp_path / "c.safetensors")]),
                   "is not a readable zip: damaged or incomplete")


def test_a_fine_tune_credits_its_parents_makers_without_naming_them_its_own(tiny_model, tmp_path, capsys):
    from helpers import synthetic_nuclei

    from napari_unet_seg.core.training.data import TrainingPair
    from napari_unet_seg.core.training.finetune import finetune
    from napari_unet_seg.core.training.loop import TrainConfig

    tiny_model.metadata.update(authors=["Bea Bio"], license="MIT",
                               cite=[{"text": "Data et al. (2020)", "doi": "10.1234/data"}])
    image, labels = synthetic_nuclei((64, 64))
    finetune(tiny_model, [TrainingPair(image, labels)], config=TrainConfig(max_steps=1, crop_size=32, batch_size=1),
             base="beas")
    path = save_model(tiny_model, tmp_path / "mine.safetensors")
    assert main(["export-model", str(path), "-o", str(tmp_path / "pkg"), "--no-torchscript"]) == 0
    err = capsys.readouterr().err
    assert "no --author given" in err and "the makers of the model it was fine-tuned from (Bea Bio)" in err
    rdf = yaml.safe_load((tmp_path / "pkg" / "rdf.yaml").read_text())
    assert rdf["authors"] == [{"name": "unknown"}] and rdf["license"] == "MIT"
    assert rdf["description"].startswith("Fine-tuned from 'beas' (by Bea Bio)")
    assert "10.1234/data" in [c["doi"] for c in rdf["cite"]]  # the data its parent learnt from is still cited
