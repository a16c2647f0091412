"""``unet-seg train`` trains at predict's scale and says plainly whether the result beat its parent."""

from __future__ import annotations

import tifffile

from helpers import synthetic_nuclei, threshold_model
from napari_unet_seg.cli.main import main
from napari_unet_seg.core.model.modelfile import read_metadata, save_model


def test_train_records_its_scale_and_compares_with_the_parent(tmp_path, capsys):
    parent = threshold_model()
    parent.metadata["object_diameter"] = 20.0
    parent_path = save_model(parent, tmp_path / "parent.safetensors")
    image, labels = synthetic_nuclei((320, 320), n=30, radius=(17, 21), seed=2)  # ~40 px nuclei
    tifffile.imwrite(tmp_path / "img.tif", image)
    tifffile.imwrite(tmp_path / "lbl.tif", labels)
    out = tmp_path / "child.safetensors"
    code = main(["train", "--image", str(tmp_path / "img.tif"), "--labels", str(tmp_path / "lbl.tif"),
                 "--init", str(parent_path), "--max-steps", "2", "--diameter", "40", "-o", str(out)])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    assert "held-out annotation" in printed.out
    assert "better than 'parent'" in printed.out.lower()  # "better than" or "not better than": said either way
    run = read_metadata(out)["lineage"][-1]
    assert run["data"][0]["scale"] == 0.5 and run["data"][0]["object_diameter"] == 40.0
    assert set(run["parent_scores"]) == {"ap50", "dice"}
    assert "child-checkpoint.safetensors" in printed.out  # said where the checkpoints go...
    assert not (tmp_path / "child-checkpoint.safetensors").exists()  # ...and replaced by the final model


def test_a_diameter_slip_is_one_line(tmp_path, capsys):
    image, labels = synthetic_nuclei((64, 64), seed=1)
    tifffile.imwrite(tmp_path / "img.tif", image)
    tifffile.imwrite(tmp_path / "lbl.tif", labels)
    for bad in ("0", "-3", "nan"):
        code = main(["train", "--image", str(tmp_path / "img.tif"), "--labels", str(tmp_path / "lbl.tif"),
                     "--diameter", bad, "-o", str(tmp_path / "m.safetensors")])
        err = capsys.readouterr().err
        assert code == 2 and "--diameter must be a positive number" in err and "Traceback" not in err
