"""`unet-seg predict` given one file twice segments it once; a rerun writes the objects table a run left out."""

import csv

import tifffile

from helpers import synthetic_nuclei, threshold_model
from napari_unet_seg import save_model
from napari_unet_seg.cli.main import main


def test_a_folder_and_a_file_in_it_write_one_output_and_one_row(tmp_path, capsys, monkeypatch):
    model = save_model(threshold_model(), tmp_path / "disks.safetensors")
    (tmp_path / "dup").mkdir()
    tifffile.imwrite(tmp_path / "dup" / "calib.tif", synthetic_nuclei((40, 56), n=5)[0])
    monkeypatch.chdir(tmp_path)
    assert main(["predict", "dup", "dup/calib.tif", "./dup/calib.tif", "-o", "dupout", "--model", str(model),
                 "--device", "cpu"]) == 0
    assert "1 segmented, 0 skipped, 0 failed of 1 files" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "dupout").glob("*_labels.tif")) == ["calib_labels.tif"]
    with open(tmp_path / "dupout" / "summary.csv", newline="", encoding="utf-8") as f:
        assert [r["file"] for r in csv.DictReader(f)] == ["dup/calib.tif"]


def test_no_measure_leaves_a_missing_table_missing_and_a_measuring_rerun_writes_it(tmp_path, capsys):
    model = save_model(threshold_model(), tmp_path / "disks.safetensors")
    (tmp_path / "in").mkdir()
    tifffile.imwrite(tmp_path / "in" / "a.tif", synthetic_nuclei((40, 56), n=5)[0])
    args = ["predict", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--model", str(model), "--device", "cpu"]
    assert main(args + ["--no-measure"]) == 0
    assert not (tmp_path / "out" / "a_objects.csv").exists()
    assert main(args + ["--no-measure"]) == 0
    assert not (tmp_path / "out" / "a_objects.csv").exists()
    capsys.readouterr()
    assert main(args) == 0
    assert (tmp_path / "out" / "a_objects.csv").exists()
    err = capsys.readouterr().err
    assert "objects table" in err  # the skipped file's note says its table was written now
