"""Provenance records: what they say about the model, the settings and the run, and where they are kept."""

from __future__ import annotations

import hashlib
import json
import shlex

import numpy as np
import tifffile
import torch
from helpers import synthetic_nuclei, threshold_model

from napari_unet_seg import RunOptions, save_model, segment_image
from napari_unet_seg.core.imageio import labels_digest, read_tiff_provenance, write_labels_tiff
from napari_unet_seg.core.inference.provenance import (
    IMAGE_PLACEHOLDER,
    MODEL_PLACEHOLDER,
    OUTDIR_PLACEHOLDER,
    describe_run,
    predict_command,
    read_provenance,
    with_paths,
)
from napari_unet_seg.core.model.devices import resolve_precision
from napari_unet_seg.core.model.modelfile import Model
from napari_unet_seg.core.model.registry import builtin_model_paths, load_model

AUTO_ON_CPU = resolve_precision("auto", torch.device("cpu"))  # bf16 where the CPU has AMX


def test_a_run_from_memory_names_its_placeholders_and_what_was_used(tmp_path):
    path = save_model(threshold_model(), tmp_path / "disks.safetensors")
    image = synthetic_nuclei((40, 56), n=5)[0]
    result = segment_image(np.stack([image, image]), RunOptions(model=str(path), device="cpu"), planes=((1,),))
    record = result.provenance
    assert record["settings"]["device"] == "cpu" and record["settings"]["precision"] == "auto"
    assert record["ran_on"] == {"device": "cpu", "precision": AUTO_ON_CPU}
    assert record["settings"]["planes"] == [[1]] and record["input"] is None
    assert record["model"]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert shlex.split(record["command"])[2:5] == [IMAGE_PLACEHOLDER, "-o", OUTDIR_PLACEHOLDER]
    assert "tile_size" in record["settings_not_affecting_result"]
    json.dumps(record)  # plain JSON, ready for any file


def test_builtin_model_is_named_and_hashed():
    path = builtin_model_paths()["nuclei"]
    record = describe_run(Model(threshold_model().net, name="nuclei", path=path), RunOptions(), device="cpu",
                          precision="fp32")
    assert record["model"]["builtin"] and record["model"]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert "--model nuclei" in record["command"]


def test_unsaved_model_and_lineage(tmp_path):
    model = threshold_model()
    model.metadata["lineage"] = [{"base": "nuclei", "date": "2025-01-01T00:00:00Z", "scores": {"ap50": np.float64(0.9)}}]
    record = describe_run(model, RunOptions(diameter=12.5, output="semantic"), device="cpu", precision="fp32")
    assert record["model"]["sha256"] is None and record["model"]["lineage"][0]["base"] == "nuclei"
    args = shlex.split(record["command"])
    assert args[args.index("--model") + 1] == MODEL_PLACEHOLDER
    assert args[args.index("--diameter") + 1] == "12.5" and args[args.index("--output-kind") + 1] == "semantic"


def test_a_worker_copy_without_a_file_is_the_requested_file(tmp_path):
    path = save_model(threshold_model(), tmp_path / "disks.safetensors")
    copy = load_model(path)
    copy = Model(copy.net, copy.metadata, copy.name, None)  # as a dask worker holds it
    record = describe_run(copy, RunOptions(model=str(path)), device="cpu", precision="fp32")
    assert record["model"]["file"] == str(path) and record["model"]["sha256"] is not None


def test_with_paths_rebuilds_the_command(tmp_path):
    record = describe_run(threshold_model(), RunOptions(), device="cuda:0", precision="bf16")
    placed = with_paths(record, image_path=tmp_path / "a b.tif", output_dir=tmp_path / "out")
    args = shlex.split(placed["command"])
    assert args[2] == str(tmp_path / "a b.tif") and args[args.index("-o") + 1] == str(tmp_path / "out")
    assert args[-4:] == ["--device", "cuda", "--precision", "bf16"]
    assert predict_command(record) == record["command"]  # the original is left as it was


def test_tiff_keeps_provenance_in_imagej_and_plain_files(tmp_path):
    record = {"format": "x", "command": "unet-seg predict a.tif -o out", "model": {"name": "é"}}
    labels = np.arange(12, dtype=np.uint16).reshape(3, 4)
    for name, data, pixel_size in [("ij.tif", labels, (0.5, 0.5)), ("plain.tif", labels, None),
                                   ("big ids.tif", labels.astype(np.uint32), (0.5, 0.5))]:
        write_labels_tiff(tmp_path / name, data, pixel_size, provenance=record)
        held = {**record, "labels_digest": labels_digest(data)}  # with its pixels' hash (an untouched output)
        assert read_tiff_provenance(tmp_path / name) == held == read_provenance(tmp_path / name)
        np.testing.assert_array_equal(tifffile.imread(tmp_path / name), data)
    with tifffile.TiffFile(tmp_path / "ij.tif") as tif:
        assert tif.is_imagej and tif.pages[0].description.startswith("ImageJ=")
    tifffile.imwrite(tmp_path / "fiji.tif", labels, imagej=True, metadata={"Info": "made by hand"})
    assert read_tiff_provenance(tmp_path / "fiji.tif") is None


def test_flip_averaging_is_recorded_remade_and_counts_as_another_setting(tmp_path):
    from napari_unet_seg.core.batch.files import settings_key

    path = save_model(threshold_model(), tmp_path / "disks.safetensors")
    plain, flipped = RunOptions(model=str(path)), RunOptions(model=str(path), flip_average=True)
    record = describe_run(load_model(path), flipped, device="cpu", precision="fp32")
    assert record["settings"]["flip_average"] is True and "--flip-average" in shlex.split(record["command"])
    assert "--flip-average" not in describe_run(load_model(path), plain, device="cpu", precision="fp32")["command"]
    assert settings_key(plain) != settings_key(flipped)


def test_a_new_model_on_a_trained_encoder_says_whose():
    model = threshold_model()
    model.metadata["training"] = {"encoder_from": "nuclei"}
    assert describe_run(model, RunOptions(), device="cpu", precision="fp32")["model"]["encoder_from"] == "nuclei"
    assert "encoder_from" not in describe_run(threshold_model(), RunOptions(), device="cpu",
                                              precision="fp32")["model"]
