"""`unet-seg import-model`: a bioimage.io package -> a model file; mistakes are one line, nothing overwritten."""

import pytest
import yaml

from napari_unet_seg.cli.main import main
from napari_unet_seg.core.model.modelfile import load_model_file, save_model

pytest.importorskip("bioimageio.spec")


def one_error_line(capsys, code, text):
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and text in err, err


@pytest.fixture
def package(tiny_model, tmp_path, capsys):
    """A package written by `unet-seg export-model`, as users will have them."""
    tiny_model.metadata["object_diameter"] = 12.0
    path = save_model(tiny_model, tmp_path / "cells.safetensors")
    assert main(["export-model", str(path), "-o", str(tmp_path / "cells-bioimageio")]) == 0
    capsys.readouterr()
    return tmp_path / "cells-bioimageio"


def test_a_package_becomes_a_model_file(package, tiny_model, tmp_path, capsys):
    out = tmp_path / "back.safetensors"
    assert main(["import-model", str(package), "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"wrote {out}" in printed and "reproduces the package's test output" in printed
    back = load_model_file(out)
    assert back.name == "back" and back.object_diameter == 12.0 and back.normalization == tiny_model.normalization
    # the file export-model says to check with `bioimageio test` names the package too
    assert main(["import-model", str(package / "rdf.yaml"), "-o", str(tmp_path / "again.safetensors")]) == 0
    assert load_model_file(tmp_path / "again.safetensors").object_diameter == 12.0


def test_without_output_the_model_goes_to_the_model_folder_under_its_name(package, private_model_dir, capsys):
    assert main(["import-model", str(package), "--name", "my cells"]) == 0
    assert "unet-seg predict --model 'my cells'" in capsys.readouterr().out
    assert load_model_file(private_model_dir / "my cells.safetensors").name == "my cells"
    assert main(["models"]) == 0 and "my cells" in capsys.readouterr().out


def test_an_existing_model_file_is_one_line_and_untouched_unless_overwrite(package, tmp_path, capsys):
    out = tmp_path / "back.safetensors"
    out.write_bytes(b"mine")
    one_error_line(capsys, main(["import-model", str(package), "-o", str(out)]), "--overwrite")
    assert out.read_bytes() == b"mine"
    assert main(["import-model", str(package), "-o", str(out), "--overwrite"]) == 0
    assert load_model_file(out).task == "instances"


def test_what_cannot_be_imported_is_one_line(package, tmp_path, capsys):
    out = str(tmp_path / "back.safetensors")
    one_error_line(capsys, main(["import-model", str(tmp_path / "nothing"), "-o", out]), "no such file or folder")
    one_error_line(capsys, main(["import-model", str(tmp_path / "cells.safetensors"), "-o", out]),
                   "is not a bioimage.io package")
    rdf = yaml.safe_load((package / "rdf.yaml").read_text())
    rdf["weights"]["pytorch_state_dict"]["architecture"]["callable"] = "Unet2d"
    (package / "rdf.yaml").write_text(yaml.safe_dump(rdf))
    one_error_line(capsys, main(["import-model", str(package), "-o", out]),
                   "its network is Unet2d from unet.py, not napari-unet-seg's U-Net")
    (tmp_path / "file").write_text("not a folder")
    one_error_line(capsys, main(["import-model", str(package), "-o", str(tmp_path / "file" / "m.safetensors")]),
                   "cannot write to")
    assert not (tmp_path / "back.safetensors").exists()
