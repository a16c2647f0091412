"""Model files: safetensors plus metadata, round trips, half precision, never overwritten, never pickle."""

import dataclasses
import json
import pickle
import re

import numpy as np
import pytest
import torch

from napari_unet_seg import ModelFileError, load_model, new_model, save_model
from napari_unet_seg.core.model.modelfile import load_model_file, read_metadata


def test_round_trip_keeps_weights_and_metadata(tmp_path, tiny_model):
    tiny_model.metadata["class_names"] = ["background", "nucleus"]
    tiny_model.metadata["training"] = {"steps": 3}
    path = save_model(tiny_model, tmp_path / "my model")
    assert path.name == "my model.safetensors"
    loaded = load_model(path)
    assert loaded.task == "instances" and loaded.class_names == ["background", "nucleus"]
    meta = read_metadata(path)
    assert meta["architecture"] == {"type": "UNet", "in_channels": 1, "num_classes": 2, "depth": 2, "base_channels": 4}
    assert meta["training"] == {"steps": 3} and "package_version" in meta
    x = torch.rand(1, 1, 32, 32)
    with torch.no_grad():
        np.testing.assert_array_equal(tiny_model.net.eval()(x).numpy(), loaded.net(x).numpy())


def test_half_precision_files_are_half_the_size_and_load_as_float32(tmp_path, tiny_model):
    full = save_model(tiny_model, tmp_path / "full")
    half = save_model(tiny_model, tmp_path / "half", half_precision=True)
    assert half.stat().st_size < 0.6 * full.stat().st_size
    assert read_metadata(half)["weights_dtype"] == "float16" and read_metadata(full)["weights_dtype"] == "float32"
    loaded = load_model(half)
    assert all(p.dtype == torch.float32 for p in loaded.net.parameters())
    x = torch.rand(1, 1, 32, 32)
    with torch.no_grad():
        expected = tiny_model.net.eval()(x)
        np.testing.assert_allclose(loaded.net(x).numpy(), expected.numpy(), atol=0.02 * float(expected.abs().max()))


def test_never_overwrites(tmp_path, tiny_model):
    path = save_model(tiny_model, tmp_path / "m.safetensors")
    before = path.read_bytes()
    with pytest.raises(ModelFileError, match="already exists"):
        save_model(new_model(depth=1, base_channels=2), path)
    assert path.read_bytes() == before


def test_pickle_with_payload_is_refused_without_running(tmp_path):
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    for suffix in (".pt", ".pth", ".ckpt"):
        path = tmp_path / f"evil{suffix}"
        path.write_bytes(pickle.dumps({"state_dict": Payload()}))
        with pytest.raises(ModelFileError, match="pickle"):
            load_model(path)
    # a pickle renamed to .safetensors is just a foreign file
    disguised = tmp_path / "evil.safetensors"
    disguised.write_bytes(pickle.dumps(Payload()))
    with pytest.raises(ModelFileError, match="not a napari-unet-seg model"):
        load_model(disguised)
    assert not marker.exists()


def test_corrupt_and_foreign_files_give_one_line_errors(tmp_path, tiny_model):
    from safetensors.torch import save_file

    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, str(foreign))
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x00" * 7)
    good = save_model(tiny_model, tmp_path / "good")
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    for path in (foreign, garbage, truncated, tmp_path / "missing.safetensors"):
        with pytest.raises(ModelFileError) as info:
            load_model_file(path)
        assert "\n" not in str(info.value)


def test_wrong_architecture_in_metadata(tmp_path, tiny_model):
    from safetensors.torch import load_file, save_file

    path = save_model(tiny_model, tmp_path / "m")
    meta = read_metadata(path)
    meta["architecture"]["base_channels"] = 8
    save_file(load_file(str(path)), str(tmp_path / "bad.safetensors"), metadata={"napari_unet_seg": json.dumps(meta)})
    with pytest.raises(ModelFileError, match="architecture in its metadata needs"):
        load_model(tmp_path / "bad.safetensors")


@pytest.mark.parametrize("spoil, words", [
    (lambda meta: meta["architecture"].update(type="ResNet"), "its network is 'ResNet', not this plugin's U-Net"),
    (lambda meta: meta["input"].update(channels=3), "its input says 3 channel(s) but its network takes 1"),
    (lambda meta: meta["normalization"].update(low="x"), "normalization low and high must be percentiles"),
    (lambda meta: meta["normalization"].update(low=99.9, high=1), "normalization low and high must be percentiles"),
])
def test_metadata_that_contradicts_the_weights_or_makes_no_sense_is_refused_in_one_line(tmp_path, tiny_model, spoil,
                                                                                       words):
    from safetensors.torch import load_file, save_file

    path = save_model(tiny_model, tmp_path / "m")
    meta = read_metadata(path)
    spoil(meta)
    save_file(load_file(str(path)), str(tmp_path / "bad.safetensors"), metadata={"napari_unet_seg": json.dumps(meta)})
    with pytest.raises(ModelFileError, match=re.escape(f"bad.safetensors: {words}")):
        load_model_file(tmp_path / "bad.safetensors")


def test_weights_that_are_not_numbers_are_refused(tmp_path, tiny_model):
    from safetensors.torch import load_file, save_file

    path = save_model(tiny_model, tmp_path / "m")
    weights = load_file(str(path))
    first = next(key for key, value in weights.items() if value.is_floating_point())
    weights[first] = torch.full_like(weights[first], float("nan"))
    save_file(weights, str(tmp_path / "nan.safetensors"), metadata={"napari_unet_seg": json.dumps(read_metadata(path))})
    with pytest.raises(ModelFileError, match=r"nan.safetensors is damaged: some of its weights are not numbers"):
        load_model_file(tmp_path / "nan.safetensors")


def test_a_file_named_as_a_file_is_run_even_when_a_model_shares_its_name(tmp_path, tiny_model, monkeypatch):
    from napari_unet_seg.core.model.registry import resolve_model_path, user_model_dir

    in_folder = save_model(tiny_model, user_model_dir() / "x.safetensors.safetensors")  # named "x.safetensors"
    monkeypatch.chdir(tmp_path)
    assert resolve_model_path("x.safetensors") == in_folder  # no such file here: the model of that name
    here = save_model(tiny_model, tmp_path / "x.safetensors")
    assert resolve_model_path("x.safetensors").resolve() == here  # the file named, not the folder's model
    assert resolve_model_path("./x.safetensors").resolve() == here
    with pytest.raises(ModelFileError, match="^no model given"):  # not "'.' is a folder"
        resolve_model_path("")


def test_semantic_model_needs_classes():
    with pytest.raises(ValueError):
        new_model("semantic", num_classes=1)
    m = new_model("semantic", num_classes=3, depth=1, base_channels=2)
    assert m.class_names == ["background", "class 1", "class 2"] and m.net.num_classes == 3


def test_model_info_describes_a_file_without_loading_its_weights(tmp_path):
    from napari_unet_seg.core.model.modelfile import ModelInfo

    model = new_model("semantic", in_channels=2, num_classes=3, depth=1, base_channels=2,
                      class_names=["background", "nucleus", "cytoplasm"])
    model.metadata["object_diameter"] = 17.5
    path = save_model(model, tmp_path / "cells")
    info = ModelInfo.of(path)
    assert info == ModelInfo(name="cells", task="semantic", in_channels=2,
                             class_names=("background", "nucleus", "cytoplasm"), object_diameter=17.5)
    data = path.read_bytes()
    end_of_header = 8 + int.from_bytes(data[:8], "little")
    scrambled = tmp_path / "scrambled weights.safetensors"
    scrambled.write_bytes(data[:end_of_header] + b"\xff" * (len(data) - end_of_header))
    assert ModelInfo.of(scrambled) == dataclasses.replace(info, name="scrambled weights")  # weights never read
    headless = tmp_path / "weights cut off.safetensors"
    headless.write_bytes(data[:end_of_header])
    with pytest.raises(ModelFileError, match="incomplete"):
        ModelInfo.of(headless)  # a file cut short is said to be, before anyone tries to use it
    with pytest.raises(ModelFileError):
        load_model_file(headless)
    with pytest.raises(AttributeError):
        info.name = "renamed"  # frozen


def test_a_model_is_named_after_its_file_wherever_it_is_named(tmp_path, tiny_model):
    # a model fine-tuned from Python and saved, or a file copied under a new name, was called by the name stored
    # in it ("nuclei") in provenance and batch notes, while the model lists showed the file's name
    import shutil

    from napari_unet_seg.core.model.modelfile import ModelInfo

    tiny_model.metadata["name"] = "nuclei"
    saved = save_model(tiny_model, tmp_path / "file-name")
    assert read_metadata(saved)["name"] == "file-name"
    copied = shutil.copy(saved, tmp_path / "my-stained.safetensors")
    info = ModelInfo.of(copied)
    assert (info.name, info.task, info.in_channels, info.object_diameter) == ("my-stained", "instances", 1, None)
    assert info.class_names == ("background", "object")
    loaded = load_model_file(copied)
    assert loaded.name == loaded.metadata["name"] == "my-stained"
    with pytest.raises(TypeError, match="save_model takes a Model"):
        save_model("nuclei", tmp_path / "x")


def test_model_info_errors_are_one_line_model_file_errors(tmp_path, tiny_model):
    from safetensors.torch import load_file, save_file

    from napari_unet_seg.core.model.modelfile import ModelInfo

    path = save_model(tiny_model, tmp_path / "m")
    meta = read_metadata(path)
    weights = load_file(str(path))
    bad = {}
    for name, change in [("arch", {"architecture": "UNet"}), ("channels", {"architecture": {"in_channels": "two"}}),
                         ("classes", {"class_names": 3})]:
        bad[name] = tmp_path / f"{name}.safetensors"
        save_file(weights, str(bad[name]), metadata={"napari_unet_seg": json.dumps({**meta, **change})})
    (tmp_path / "garbage.safetensors").write_bytes(b"\x00" * 50)
    for target in [*bad.values(), tmp_path / "garbage.safetensors", tmp_path / "missing.safetensors",
                   tmp_path / "model.ckpt"]:
        with pytest.raises(ModelFileError) as info:
            ModelInfo.of(target)
        assert "\n" not in str(info.value)
