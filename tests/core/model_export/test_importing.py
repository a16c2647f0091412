"""A bioimage.io package of our U-Net comes back as the same model; anything else is refused in one line, untouched."""

import hashlib
import pathlib
import re
import shutil
import sys
import zipfile

import numpy as np
import pytest
import torch
import yaml
from helpers import randomize_batchnorm, synthetic_nuclei, threshold_model

from napari_unet_seg.core.inference.pipeline import segment
from napari_unet_seg.core.inference.prediction import predict_network
from napari_unet_seg.core.model.modelfile import load_model_file, new_model
from napari_unet_seg.core.model.registry import available_models
from napari_unet_seg.core.model_export import ImportRefused, export_bioimageio, import_bioimageio
from napari_unet_seg.core.model_export.mapping import (
    ExportedNormalization,
    imported_normalization,
    restored_normalization,
)
from napari_unet_seg.core.model_export.package import PackageFiles

pytest.importorskip("bioimageio.spec")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """An instance model with settings bioimage.io cannot carry, and its package (exported once)."""
    model = threshold_model()
    model.metadata.update(name="disks", object_diameter=14.0, postprocess={"min_size": 9.0},
                          description="thresholds bright disks")
    model.metadata["normalization"].update(invert="auto", despike=0.25)
    folder = export_bioimageio(model, tmp_path_factory.mktemp("export") / "package", authors=("A. Person",),
                               license="MIT")
    return model, folder


@pytest.fixture
def package(exported, tmp_path):
    """A private copy of the exported package, for tests that damage it."""
    return pathlib.Path(shutil.copytree(exported[1], tmp_path / "package"))


def edit_rdf(folder, change):
    rdf = yaml.safe_load((folder / "rdf.yaml").read_text())
    change(rdf)
    (folder / "rdf.yaml").write_text(yaml.safe_dump(rdf, sort_keys=False))


def rehash(folder, name, section=("weights", "pytorch_state_dict")):
    """Give the package's description the SHA-256 of its changed file ``name``."""
    digest = hashlib.sha256((folder / name).read_bytes()).hexdigest()

    def change(rdf):
        entry = rdf
        for key in section:
            entry = entry[key]
        entry["sha256"] = digest

    edit_rdf(folder, change)


def same_outputs(a, b, image):
    logits_a = predict_network(a, image, device="cpu").image_logits
    logits_b = predict_network(b, image, device="cpu").image_logits
    assert np.array_equal(logits_a, logits_b)
    labels = segment(image, a, device="cpu")
    assert np.array_equal(labels, segment(image, b, device="cpu"))
    return labels


def test_an_exported_instance_model_comes_back_with_the_same_outputs_and_settings(exported, tmp_path):
    model, folder = exported
    result = import_bioimageio(folder, tmp_path / "back.safetensors")
    back = load_model_file(result.path)
    assert result.difference < 1e-6 and result.notes == ()
    for key, value in model.net.state_dict().items():
        assert torch.equal(back.net.state_dict()[key], value)
    # the package fixes inversion and drops despiking; the attached model file gives them back
    assert back.normalization == model.normalization
    assert back.object_diameter == 14.0 and back.postprocess == {"min_size": 9.0}
    assert back.task == "instances" and back.class_names == model.class_names
    assert back.metadata["name"] == "back" and back.metadata["description"] == "thresholds bright disks"
    assert back.metadata["authors"] == ["A. Person"] and back.metadata["license"] == "MIT"
    assert back.metadata["imported_from"]["name"] == "disks"
    image, _ = synthetic_nuclei((96, 128))
    assert same_outputs(model, back, image).max() > 0


def test_a_package_with_torchscript_weights_imports_the_state_dict_and_never_loads_the_torchscript(
        exported, package, tmp_path, monkeypatch):
    model = exported[0]
    rdf = yaml.safe_load((package / "rdf.yaml").read_text())
    assert sorted(rdf["weights"]) == ["pytorch_state_dict", "torchscript"]  # what export writes by default
    script = rdf["weights"]["torchscript"]["source"]
    (package / script).write_bytes(b"not even TorchScript")  # were it loaded or hashed, the import would fail
    read, original = [], PackageFiles.read

    def recording_read(self, name, what, limit):
        read.append(name)
        return original(self, name, what, limit)

    monkeypatch.setattr(PackageFiles, "read", recording_read)
    monkeypatch.setattr(torch.jit, "load", lambda *args, **kwargs: pytest.fail("TorchScript was loaded"))
    back = import_bioimageio(package, tmp_path / "back.safetensors").model
    assert "weights.pt" in read and script not in read
    assert back.metadata["imported_from"]["weights"] == "weights.pt"
    for key, value in model.net.state_dict().items():
        assert torch.equal(back.net.state_dict()[key], value)


def test_a_zip_or_a_zipped_folder_imports_like_the_folder(exported, tmp_path):
    model, folder = exported
    flat = shutil.make_archive(str(tmp_path / "flat"), "zip", root_dir=folder)
    nested = shutil.make_archive(str(tmp_path / "nested"), "zip", root_dir=folder.parent, base_dir=folder.name)
    for archive in (flat, nested):
        back = import_bioimageio(archive, tmp_path / f"{pathlib.Path(archive).stem}.safetensors").model
        assert back.normalization == model.normalization
        for key, value in model.net.state_dict().items():
            assert torch.equal(back.net.state_dict()[key], value)


def test_a_semantic_package_without_its_model_file_maps_back_from_its_description(tmp_path):
    torch.manual_seed(1)
    model = new_model("semantic", num_classes=3, depth=2, base_channels=4, class_names=["background", "a", "b"])
    randomize_batchnorm(model.net)
    model.metadata["normalization"].update(invert=True, low=2.0, high=99.0)
    folder = export_bioimageio(model, tmp_path / "package")
    edit_rdf(folder, lambda rdf: rdf.pop("attachments"))
    result = import_bioimageio(folder, tmp_path / "semantic.safetensors")
    back = result.model
    assert back.task == "semantic" and back.class_names == ["background", "a", "b"]
    assert back.normalization == {"method": "percentile", "low": 2.0, "high": 99.0, "invert": True}
    assert any("how large its objects are" in note for note in result.notes)
    image, _ = synthetic_nuclei((96, 128), seed=3)
    same_outputs(model, back, 255 - image)


def spec_04(rdf):
    """The same package described in spec 0.4 (the older format many zoo models still use)."""
    inputs = rdf["inputs"][0]
    scale_range = next(op for op in inputs["preprocessing"] if op["id"] == "scale_range")["kwargs"]
    weights = rdf["weights"]["pytorch_state_dict"]
    return {
        "format_version": "0.4.10", "type": "model", "name": rdf["name"], "description": rdf["description"],
        "authors": rdf["authors"], "cite": rdf["cite"], "license": rdf["license"], "documentation": "README.md",
        "covers": ["cover.png"], "tags": ["unet"], "timestamp": "2024-01-01T00:00:00",
        "attachments": {"files": [a["source"] for a in rdf["attachments"]]},
        "test_inputs": ["test_input.npy"], "test_outputs": ["test_output.npy"],
        "inputs": [{"name": "raw", "axes": "bcyx", "data_type": "float32", "data_range": [-np.inf, np.inf],
                    "shape": {"min": [1, 1, 64, 64], "step": [0, 0, 4, 4]},
                    "preprocessing": [{"name": "scale_range", "kwargs": {
                        "mode": "per_sample", "axes": "xy", "min_percentile": scale_range["min_percentile"],
                        "max_percentile": scale_range["max_percentile"]}}]}],
        "outputs": [{"name": "probabilities", "axes": "bcyx", "data_type": "float32", "data_range": [0.0, 1.0],
                     "halo": [0, 0, 16, 16], "shape": {"reference_tensor": "raw", "scale": [1, 1, 1, 1],
                                                       "offset": [0, 0.5, 0, 0]},
                     "postprocessing": [{"name": "sigmoid"}]}],
        "weights": {"pytorch_state_dict": {
            "source": "weights.pt", "sha256": weights["sha256"], "architecture": "unet.py:UNet",
            "architecture_sha256": weights["architecture"]["sha256"], "kwargs": weights["architecture"]["kwargs"]}},
    }


def test_a_spec_04_package_imports_too(exported, package, tmp_path):
    model = exported[0]
    rdf = yaml.safe_load((package / "rdf.yaml").read_text())
    (package / "rdf.yaml").write_text(yaml.safe_dump(spec_04(rdf), sort_keys=False))
    back = import_bioimageio(package, tmp_path / "old.safetensors").model
    assert back.metadata["imported_from"]["format_version"] == "0.4.10"
    assert back.normalization == model.normalization and back.object_diameter == 14.0
    for key, value in model.net.state_dict().items():
        assert torch.equal(back.net.state_dict()[key], value)


def test_without_an_output_the_model_goes_to_the_user_folder_by_the_package_name(exported, private_model_dir):
    result = import_bioimageio(exported[1])
    assert result.path == private_model_dir / "disks.safetensors" and result.model.name == "disks"
    assert available_models()["disks"] == result.path
    with pytest.raises(ImportRefused, match="built-in model's name"):
        import_bioimageio(exported[1], name="nuclei")
    with pytest.raises(ImportRefused, match="'x.safetensors' is a file's name, not a model's: name it 'x'"):
        import_bioimageio(exported[1], name="x.safetensors")  # `--model x.safetensors` would not find it as named


class Payload:
    """A pickle that would create a file if it were ever unpickled with code allowed to run."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return pathlib.Path.touch, (self.marker,)


def weights_of_another_network(folder):
    torch.save(new_model("instances", depth=3, base_channels=4).net.state_dict(), folder / "weights.pt")
    rehash(folder, "weights.pt")


def pickle_with_code(folder):
    torch.save({"down.0.0.weight": Payload(folder.parent / "pwned")}, folder / "weights.pt")
    rehash(folder, "weights.pt")


def changed_test_output(folder):
    np.save(folder / "test_output.npy", np.load(folder / "test_output.npy") * 0.9)
    rehash(folder, "test_output.npy", ("outputs", 0, "test_tensor"))


def set_architecture(**entry):
    return lambda folder: edit_rdf(folder, lambda rdf: rdf["weights"]["pytorch_state_dict"]["architecture"].update(
        entry))


def set_kwargs(**kwargs):
    return lambda folder: edit_rdf(folder, lambda rdf: rdf["weights"]["pytorch_state_dict"]["architecture"][
        "kwargs"].update(kwargs))


def torchscript_only(rdf):
    weights = rdf["weights"]["pytorch_state_dict"]
    rdf["weights"] = {"torchscript": {"source": weights["source"], "sha256": weights["sha256"],
                                      "pytorch_version": "2.2"}}


def library_architecture(rdf):
    arch = rdf["weights"]["pytorch_state_dict"]["architecture"]
    rdf["weights"]["pytorch_state_dict"]["architecture"] = {"callable": "UNet", "import_from": "monai.networks.nets",
                                                            "kwargs": arch["kwargs"]}


def zero_mean_unit_variance(rdf):
    rdf["inputs"][0]["preprocessing"] = [{"id": "zero_mean_unit_variance", "kwargs": {"axes": ["y", "x"]}}]


def weights_at_a_url(rdf):
    rdf["weights"]["pytorch_state_dict"]["source"] = "https://example.org/weights.pt"


REFUSALS = {
    "an empty folder": (lambda f: [p.unlink() for p in f.iterdir()], "holds no rdf.yaml or bioimageio.yaml"),
    "unreadable YAML": (lambda f: (f / "rdf.yaml").write_text("weights: [unclosed\n"), "is not readable YAML"),
    "an invalid description": (lambda f: edit_rdf(f, lambda rdf: rdf.pop("inputs")),
                               "is not a valid bioimage.io description (inputs"),
    "no state-dict weights": (lambda f: edit_rdf(f, torchscript_only),
                              "no pytorch_state_dict weights (only torchscript)"),
    "another library's network": (lambda f: edit_rdf(f, library_architecture),
                                  "its network is monai.networks.nets.UNet, not napari-unet-seg's U-Net"),
    "another callable": (set_architecture(callable="UNet2d"), "its network is UNet2d from unet.py, not"),
    "another argument": (set_kwargs(dropout=0.1), "takes dropout: not napari-unet-seg's U-Net"),
    "kwargs that do not fit the weights": (set_kwargs(base_channels=8),
                                           "down.0.0.weight is [4, 1, 3, 3], the U-Net needs [8, 1, 3, 3]"),
    "another network's weights": (weights_of_another_network, "its weights do not fit napari-unet-seg's U-Net"),
    "weights changed after packaging": (lambda f: torch.save({}, f / "weights.pt"), "does not match the SHA-256"),
    "a pickle with code": (pickle_with_code, "is not a state dict that loads without running code"),
    "weights outside the package": (lambda f: edit_rdf(f, weights_at_a_url), "outside the package"),
    "preprocessing we cannot do": (lambda f: edit_rdf(f, zero_mean_unit_variance),
                                   "step zero_mean_unit_variance has no napari-unet-seg equivalent"),
    "a test output it does not reproduce": (changed_test_output, "does not reproduce its test output"),
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_a_package_that_is_not_our_unet_is_refused_in_one_line_and_nothing_is_written(package, tmp_path, case):
    damage, message = REFUSALS[case]
    damage(package)
    output = tmp_path / "out" / "model.safetensors"
    with pytest.raises(ImportRefused) as refused:
        import_bioimageio(package, output)
    text = str(refused.value)
    assert text.startswith(f"{package}: ") and message in text and "\n" not in text, text
    assert not output.exists() and not (tmp_path / "pwned").exists()
    assert not [p for p in output.parent.iterdir()]  # no temporary file left either


def test_what_is_not_a_package_is_refused_in_one_line(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    zipfile.ZipFile(tmp_path / "empty.zip", "w").close()
    for path, message in ((tmp_path / "missing", "no such file or folder"),
                          (tmp_path / "notes.txt", "it is not a bioimage.io package (a folder or .zip"),
                          (tmp_path / "empty.zip", "holds no rdf.yaml")):
        with pytest.raises(ImportRefused, match=re.escape(f"{path}: ") + ".*" + re.escape(message)):
            import_bioimageio(path, tmp_path / "model.safetensors")


def test_an_existing_output_is_kept_unless_overwrite_and_an_unwritable_folder_is_refused_first(exported, tmp_path):
    output = tmp_path / "model.safetensors"
    output.write_bytes(b"mine")
    with pytest.raises(ImportRefused, match="already exists; choose another name or pass --overwrite"):
        import_bioimageio(exported[1], output)
    assert output.read_bytes() == b"mine"
    assert load_model_file(import_bioimageio(exported[1], output, overwrite=True).path).task == "instances"
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(ImportRefused, match="cannot write to"):
        import_bioimageio(exported[1], tmp_path / "file" / "model.safetensors")
    with pytest.raises(ImportRefused, match=r"must end in \.safetensors"):
        import_bioimageio(exported[1], tmp_path / "model.pt")


def test_without_bioimageio_installed_the_message_says_what_to_install(exported, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "bioimageio.spec", None)
    with pytest.raises(ImportRefused, match=r"napari-unet-seg\[bioimageio\]"):
        import_bioimageio(exported[1], tmp_path / "model.safetensors")


def test_preprocessing_maps_back_from_either_spec_and_settings_return_only_when_the_package_agrees():
    v05 = [("ensure_dtype", {"dtype": "float32"}),
           ("scale_range", {"axes": ["y", "x"], "min_percentile": 2.0, "max_percentile": 99.0, "eps": 1e-6}),
           ("scale_linear", {"gain": -1.0, "offset": 1.0})]
    v04 = [("scale_range", {"mode": "per_sample", "axes": "xy", "min_percentile": 2.0, "max_percentile": 99.0})]
    assert imported_normalization(v05) == ExportedNormalization(2.0, 99.0, True)
    assert imported_normalization(v04) == ExportedNormalization(2.0, 99.0, False)
    for ops, words in (([("scale_range", {**v04[0][1], "mode": "per_dataset"})], "not per image"),
                       ([("scale_linear", {"gain": -1.0, "offset": 1.0})], "step scale_linear"),
                       ([], "does not scale each image's percentiles")):
        with pytest.raises(ValueError, match=words):
            imported_normalization(ops)
    attached = {"method": "percentile", "low": 2.0, "high": 99.0, "invert": "auto", "despike": 0.25}
    assert restored_normalization(ExportedNormalization(2.0, 99.0, True), attached) == attached
    edited = ExportedNormalization(1.0, 99.0, False)  # the package was edited after export: it wins
    assert restored_normalization(edited, attached) == edited.settings()
    assert restored_normalization(ExportedNormalization(2.0, 99.0, True), {**attached, "invert": False})["invert"]


def test_a_zip_whose_member_is_corrupt_is_one_line_not_a_traceback(tmp_path):
    """zipfile raises zlib.error, EOFError, NotImplementedError... for damaged or unusual members."""
    import zipfile

    from napari_unet_seg.core.model_export.package import ImportRefused

    path = tmp_path / "damaged.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("rdf.yaml", "type: model\n" * 50)
        z.writestr("weights.pt", np.random.default_rng(0).bytes(4000) + b"\0" * 40_000)
    data = bytearray(path.read_bytes())
    info = zipfile.ZipFile(path).getinfo("weights.pt")
    start = info.header_offset + 30 + len(info.filename)
    data[start + 10:start + 400] = b"\xff" * 390  # the deflate stream, overwritten
    path.write_bytes(bytes(data))
    files = PackageFiles(path)
    with pytest.raises(ImportRefused, match="weights file weights.pt cannot be read"):
        files.read("weights.pt", "weights file", 10_000_000)
