"""Every output says where it came from, and the command it records makes the same labels again."""

from __future__ import annotations

import hashlib
import json
import shlex

import numpy as np
import pytest
import tifffile
import torch
import zarr
from helpers import synthetic_nuclei, threshold_model

from napari_unet_seg import save_model
from napari_unet_seg.cli.main import main
from napari_unet_seg.core.common.labels_zarr import open_labels_zarr
from napari_unet_seg.core.inference.provenance import EDITED, csv_comments, read_provenance
from napari_unet_seg.core.measure.table_csv import MARKER, read_objects_csv, write_objects_csv
from napari_unet_seg.core.model.devices import resolve_precision

AUTO_ON_CPU = resolve_precision("auto", torch.device("cpu"))  # bf16 where the CPU has AMX


@pytest.fixture
def model_file(tmp_path):
    return save_model(threshold_model(), tmp_path / "my disks.safetensors")  # a space: the command must quote it


def rerun(command: str, outdir) -> int:
    """Run a recorded ``unet-seg predict ...`` into another folder, through the same entry point."""
    args = shlex.split(command)
    assert args[:2] == ["unet-seg", "predict"]
    args[args.index("-o") + 1] = str(outdir)
    return main(args[1:])


def test_recorded_command_remakes_identical_labels(tmp_path, model_file, capsys):
    image = synthetic_nuclei((48, 64), n=6, seed=3)[0]
    tifffile.imwrite(tmp_path / "cells 1.tif", image, imagej=True, resolution=(2.0, 2.0), metadata={"unit": "um"})
    out = tmp_path / "out"
    assert main(["predict", str(tmp_path / "cells 1.tif"), "-o", str(out), "--model", str(model_file),
                 "--device", "cpu", "--diameter", "11.3"]) == 0
    labels_path = out / "cells 1_labels.tif"
    record = read_provenance(labels_path)
    assert record["model"]["sha256"] == hashlib.sha256(model_file.read_bytes()).hexdigest()
    assert record["model"]["name"] == "my disks" and record["model"]["lineage"] == []
    assert record["settings"]["diameter"] == 11.3 and record["ran_on"] == {"device": "cpu", "precision": AUTO_ON_CPU}
    assert record["versions"]["torch"] and record["versions"]["napari-unet-seg"]
    assert record["date"].endswith("Z") and "--diameter 11.3" in record["command"]

    assert rerun(record["command"], tmp_path / "again") == 0
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "again" / "cells 1_labels.tif"),
                                  tifffile.imread(labels_path))
    with tifffile.TiffFile(labels_path) as tif:  # still a valid ImageJ file, which Fiji opens with its scale
        assert tif.is_imagej and tif.imagej_metadata["unit"] == "um"
        assert json.loads(tif.imagej_metadata["Info"]) == record  # Fiji: Image > Show Info

    capsys.readouterr()
    assert main(["provenance", str(labels_path)]) == 0
    shown = capsys.readouterr().out
    assert record["model"]["sha256"] in shown and "the file is unchanged" in shown and record["command"] in shown


def test_the_objects_csv_stays_a_plain_table_and_the_json_beside_it_carries_the_provenance(tmp_path, model_file):
    import pandas as pd

    tifffile.imwrite(tmp_path / "a.tif", synthetic_nuclei((40, 56), n=5)[0])  # no pixel size: not an ImageJ file
    assert main(["predict", str(tmp_path / "a.tif"), "-o", str(tmp_path / "out"), "--model", str(model_file)]) == 0
    csv = tmp_path / "out" / "a_objects.csv"
    assert csv.read_text().splitlines()[0].startswith("label,") and MARKER not in csv.read_text()
    table, comments = read_objects_csv(csv)
    assert pd.read_csv(csv)["label"].tolist() == table["label"].tolist()  # pandas' defaults read it as it is
    assert read_provenance(tmp_path / "out" / "a_objects.json") == read_provenance(csv)  # the JSON itself too
    record = read_provenance(tmp_path / "out" / "a_labels.tif")
    record.pop("labels_digest")  # the labels file's own pixels' hash; the table's record is of what made them
    assert record["settings"]["device"] == "auto" and record["ran_on"]["device"] == "cpu"  # asked, and used
    assert json.loads(comments["provenance"]) == record == read_provenance(csv)
    assert comments["command"] == record["command"]


def test_zarr_output_attrs_carry_the_provenance(tmp_path, model_file):
    image = synthetic_nuclei((40, 56), n=5, seed=1)[0]
    source = zarr.open_array(str(tmp_path / "big.zarr"), mode="w", shape=image.shape, chunks=(20, 28),
                             dtype=image.dtype)
    source[:] = image
    assert main(["predict", str(tmp_path / "big.zarr"), "-o", str(tmp_path / "out"), "--model", str(model_file),
                 "--device", "cpu"]) == 0
    store = tmp_path / "out" / "big_labels.zarr"
    record = zarr.open_group(str(store), mode="r").attrs["napari_unet_seg"]["provenance"]  # the NGFF group's
    assert record == read_provenance(store)
    assert record["input"] == str(tmp_path / "big.zarr") and record["settings"]["store"] == str(store)
    assert rerun(record["command"], tmp_path / "again") == 0
    np.testing.assert_array_equal(open_labels_zarr(tmp_path / "again" / "big_labels.zarr")[:],
                                  open_labels_zarr(store)[:])


def test_semantic_output_is_reproduced_with_output_kind(tmp_path, model_file):
    tifffile.imwrite(tmp_path / "a.tif", synthetic_nuclei((40, 56), n=5)[0])
    assert main(["predict", str(tmp_path / "a.tif"), "-o", str(tmp_path / "out"), "--model", str(model_file),
                 "--output-kind", "semantic"]) == 0
    labels = tifffile.imread(tmp_path / "out" / "a_classes.tif")
    assert set(np.unique(labels)) == {0, 1}
    record = read_provenance(tmp_path / "out" / "a_classes.tif")
    assert "--output-kind semantic" in record["command"]
    assert rerun(record["command"], tmp_path / "again") == 0
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "again" / "a_classes.tif"), labels)


def test_provenance_of_a_foreign_file_is_one_clear_error(tmp_path, capsys):
    tifffile.imwrite(tmp_path / "theirs.tif", np.zeros((8, 8), np.uint16))
    assert main(["provenance", str(tmp_path / "theirs.tif")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "holds no provenance" in err[0]
    assert main(["provenance", str(tmp_path / "missing.tif")]) == 2
    capsys.readouterr()
    (tmp_path / "notes.txt").write_text("not an output")
    assert main(["provenance", str(tmp_path / "notes.txt")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is not an output of napari-unet-seg" in err[0] and "header" not in err[0], err


def test_measure_carries_the_labels_provenance_into_its_table(tmp_path, model_file):
    tifffile.imwrite(tmp_path / "a.tif", synthetic_nuclei((40, 56), n=5)[0])
    assert main(["predict", str(tmp_path / "a.tif"), "-o", str(tmp_path / "out"), "--model", str(model_file),
                 "--no-measure"]) == 0
    labels = tmp_path / "out" / "a_labels.tif"
    assert main(["measure", str(labels), "-o", str(tmp_path / "table.csv")]) == 0
    assert read_provenance(tmp_path / "table.csv") == read_provenance(labels)


def test_the_lineage_line_reads_fine_tuning_runs_and_a_built_in_models_stages():
    from napari_unet_seg.cli.provenance import _training

    assert _training({"builtin": True}) == "built-in, as shipped"
    assert _training({}) == "no training recorded"
    runs = [{"base": "nuclei", "date": "2026-11-29T10:00:00Z"}, {"base": "mine", "date": "2026-11-29T11:00:00Z"}]
    assert _training({"lineage": runs}) == "2 fine-tuning run(s), the last from 'mine' on 2026-11-29T11:00:00Z"
    stages = [{"model": "nuclei", "steps": 4890}, {"model": "nuclei", "steps": 6438}]
    assert _training({"builtin": True, "lineage": stages}) == "built-in, as shipped; trained in 3 stages (see --json)"
    # a fine-tune of the built-in model counts its own runs, not the built-in model's stages
    assert _training({"lineage": stages + runs[:1]}).startswith("1 fine-tuning run(s), the last from 'nuclei'")
    new = [{"base": "scratch", "date": "2026-12-02T01:00:00Z"}]  # a new model, but on the nuclei model's encoder
    assert _training({"lineage": new, "encoder_from": "nuclei"}) == (
        "1 training run(s), the last a new model on the trained encoder of 'nuclei', on 2026-12-02T01:00:00Z")


def test_a_model_files_own_record_and_plain_words_for_what_holds_none(tmp_path, model_file, capsys):
    from helpers import synthetic_nuclei as nuclei

    from napari_unet_seg.core.training.data import TrainingPair
    from napari_unet_seg.core.training.finetune import finetune
    from napari_unet_seg.core.training.loop import TrainConfig

    model = threshold_model()
    model.metadata.update(authors=["Bea Bio"], license="MIT")
    image, labels = nuclei((64, 64))
    finetune(model, [TrainingPair(image, labels, name="cells")], config=TrainConfig(max_steps=1, crop_size=32,
                                                                                    batch_size=1), base="disks")
    path = save_model(model, tmp_path / "received.safetensors")
    assert main(["provenance", str(path)]) == 0
    printed = dict(line.split(":", 1) for line in capsys.readouterr().out.splitlines())
    # Bea made the model it started from, not this one: credited as such, and its licence carries over
    assert printed["authors"].strip() == "not recorded (fine-tuned from a model by Bea Bio)"
    assert printed["licence"].strip() == "MIT"
    assert printed["weights"].strip() == "whole and usable"
    from safetensors.torch import load_file, save_file

    from napari_unet_seg.core.model.modelfile import read_metadata

    weights = {key: value * float("nan") if value.is_floating_point() else value
               for key, value in load_file(str(path)).items()}
    save_file(weights, str(tmp_path / "nan.safetensors"),
              metadata={"napari_unet_seg": json.dumps(read_metadata(path))})
    assert main(["provenance", str(tmp_path / "nan.safetensors")]) == 0  # what it was, and that it is unusable now
    damaged = dict(line.split(":", 1) for line in capsys.readouterr().out.splitlines())
    assert damaged["weights"].strip().startswith("UNUSABLE: nan.safetensors is damaged")
    assert printed["about"].strip().startswith("Fine-tuned from 'disks' (by Bea Bio) with napari-unet-seg on 1 "
                                               "annotated image(s)")
    assert printed["run"].strip().split(": ", 1)[1].startswith("from 'disks', dense, 1 image(s), 1 steps")
    assert main(["provenance", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["license"] == "MIT"
    assert main(["provenance", "nuclei"]) == 0  # a model by name, as --model takes it
    builtin = capsys.readouterr().out
    assert "nuclei (instances)" in builtin  # who made it, its licence and the data it learnt from, to cite
    assert "authors:   napari-unet-seg developers" in builtin and "licence:   BSD-3-Clause" in builtin
    assert "Caicedo et al. (2019)" in builtin and "doi:10.1038/s41592-019-0612-7" in builtin
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "summary.csv").write_text("file,status\n")
    import zipfile

    with zipfile.ZipFile(tmp_path / "package.zip", "w") as archive:
        archive.writestr("rdf.yaml", "type: model\n")
    for target, words in ((tmp_path / "out" / "summary.csv", "is a batch run's table"),
                          (tmp_path / "out", "is a folder: give a labels file"),
                          (tmp_path / "package.zip", "-o package-imported.safetensors`, and ask that file's provenance")):
        assert main(["provenance", str(target)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and words in err


def test_a_broken_export_is_one_line(tmp_path, capsys):
    from napari_unet_seg.cli.main import main

    (tmp_path / "x_rois.zip").write_bytes(b"not a zip at all")
    (tmp_path / "x.geojson").write_text("{ broken")
    for name in ("x_rois.zip", "x.geojson"):
        assert main(["provenance", str(tmp_path / name)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "cannot be read" in err


def test_labels_corrected_since_they_were_made_say_so_in_provenance_and_in_their_exports(tmp_path, model_file,
                                                                                          capsys):
    """Fiji keeps the record when it saves corrected labels: the recorded command no longer makes them."""
    image = synthetic_nuclei((48, 64), n=6, seed=3)[0]
    tifffile.imwrite(tmp_path / "img.tif", image, imagej=True, resolution=(2.0, 2.0), metadata={"unit": "um"})
    out = tmp_path / "out"
    assert main(["predict", str(tmp_path / "img.tif"), "-o", str(out), "--model", str(model_file),
                 "--device", "cpu", "--no-measure"]) == 0
    labels_path = out / "img_labels.tif"
    capsys.readouterr()
    assert main(["provenance", str(labels_path)]) == 0
    assert "EDITED" not in capsys.readouterr().out  # as written
    assert main(["export", str(labels_path), "--format", "geojson", "-o", str(tmp_path / "as_made.geojson")]) == 0
    assert "edited" not in read_provenance(tmp_path / "as_made.geojson")

    with tifffile.TiffFile(labels_path) as tif:
        labels, info = tif.asarray(), tif.imagej_metadata
    labels[labels == labels.max()] = 0  # one object deleted, then saved as Fiji saves: the Info kept
    tifffile.imwrite(labels_path, labels, imagej=True, resolution=(2.0, 2.0),
                     metadata={"unit": "um", "Info": info["Info"]})
    capsys.readouterr()
    assert main(["provenance", str(labels_path)]) == 0
    first_line = capsys.readouterr().out.splitlines()[0]
    assert first_line.startswith("EDITED:") and "changed after they were made" in first_line
    assert main(["export", str(labels_path), "--format", "geojson", "-o", str(tmp_path / "corrected.geojson")]) == 0
    assert read_provenance(tmp_path / "corrected.geojson")["edited"] == EDITED
    capsys.readouterr()
    assert main(["provenance", str(tmp_path / "corrected.geojson"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["edited"] == EDITED

    record = read_provenance(labels_path)
    table = tmp_path / "table.csv"  # the Measurements dock's table of painted labels
    write_objects_csv(table, {"label": np.array([1, 2])}, {**csv_comments(record), "edited": EDITED})
    capsys.readouterr()
    assert main(["provenance", str(table)]) == 0
    assert capsys.readouterr().out.startswith("EDITED:")


def test_a_new_model_file_on_a_trained_encoder_says_so_not_from_scratch(tmp_path, capsys):
    model = threshold_model()
    model.metadata["training"] = {"encoder_from": "nuclei"}
    model.metadata["lineage"] = [{"base": "scratch", "date": "2026-12-02T01:00:00Z", "mode": "dense", "steps": 5,
                                  "data": [{"name": "a"}]}]
    path = save_model(model, tmp_path / "new.safetensors")
    assert main(["provenance", str(path)]) == 0
    out = capsys.readouterr().out
    assert "a new model on the trained encoder of 'nuclei'" in out and "a new model on the encoder of 'nuclei'" in out
    assert "from 'scratch'" not in out


def test_a_class_models_held_out_score_is_shown_and_goes_into_its_package_readme(tmp_path, capsys):
    # the Train dock said "mean IoU 0.686 on the held-out annotation"; provenance and the package said no score
    from napari_unet_seg.core.model.modelfile import new_model
    from napari_unet_seg.core.model_export.documentation import _scores

    model = new_model("semantic", num_classes=3, depth=2, base_channels=4)
    run = {"base": "scratch", "date": "2026-12-02T10:00:00Z", "mode": "scribbles", "data": [{}], "steps": 40,
           "scores": {"mean_iou": 0.6861}, "scores_on": "held-out annotation"}
    model.metadata["lineage"] = [run]
    model.metadata["training"] = dict(run)
    path = save_model(model, tmp_path / "classes-model.safetensors")
    assert main(["provenance", str(path)]) == 0
    assert "scribbles, 1 image(s), 40 steps, mean IoU 0.686 on held-out annotation" in capsys.readouterr().out
    assert _scores(model.metadata) == ("During training, napari-unet-seg's classes from this model scored a mean "
                                       "IoU of 0.686 on the held-out part of its annotation.")
