"""A model exported as a bioimage.io package passes bioimageio.core's own test, offline, and says what it leaves out."""

import sys

import numpy as np
import pytest
import tifffile
import torch
import yaml
from helpers import randomize_batchnorm

from napari_unet_seg.core.inference.preprocess import fit_normalization
from napari_unet_seg.core.model.modelfile import load_model_file, new_model
from napari_unet_seg.core.model_export import ExportError, export_bioimageio, torchscript
from napari_unet_seg.core.model_export.bioimageio import input_tensor, min_side
from napari_unet_seg.core.model_export.mapping import exported_normalization, not_mapped

pytest.importorskip("bioimageio.core")


def bioimageio_test(folder, formats=("pytorch_state_dict", "torchscript")):
    """bioimageio.core's full model test (format, reproduction of the test output, other sizes and batches), which
    must have run for each of ``formats``."""
    from bioimageio.core import test_model

    summary = test_model(folder / "rdf.yaml")
    failures = [f"{d.name}: {[e.msg for e in d.errors]}" for d in summary.details if d.status == "failed"]
    for weights in formats:
        ran = [d.name for d in summary.details if tuple(d.loc) == ("weights", weights) and d.status == "passed"]
        assert any("test output" in name for name in ran), (weights, [d.name for d in summary.details])
        assert any("batch_size: 2" in name for name in ran), (weights, ran)  # and at other sizes and batches
    return summary.status, failures


@pytest.mark.slow
def test_an_instance_model_package_passes_bioimageio_test(tiny_model, tmp_path):
    tiny_model.metadata["name"] = "tiny nuclei"
    folder = export_bioimageio(tiny_model, tmp_path / "package", authors=("A. Person",))
    status, failures = bioimageio_test(folder)
    assert status == "passed", failures
    rdf = yaml.safe_load((folder / "rdf.yaml").read_text())
    assert rdf["format_version"].startswith("0.5")
    assert sorted(rdf["weights"]) == ["pytorch_state_dict", "torchscript"]
    script = rdf["weights"]["torchscript"]
    assert script["parent"] == "pytorch_state_dict" and script["source"] == "weights_torchscript.pt"
    assert script["pytorch_version"] == rdf["weights"]["pytorch_state_dict"]["pytorch_version"]
    assert rdf["weights"]["pytorch_state_dict"]["architecture"]["kwargs"] == tiny_model.net.config()
    assert [op["id"] for op in rdf["inputs"][0]["preprocessing"]][:2] == ["ensure_dtype", "scale_range"]
    assert rdf["outputs"][0]["axes"][1]["channel_names"] == ["foreground", "centre"]
    assert (folder / "cover.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the attached model file is our own, unchanged: napari-unet-seg can load it back
    attached = load_model_file(folder / rdf["attachments"][0]["source"])
    for key, value in tiny_model.net.state_dict().items():
        assert torch.equal(attached.net.state_dict()[key], value)


@pytest.mark.slow
def test_a_semantic_model_on_bright_background_passes_with_softmax_and_inversion(tmp_path):
    torch.manual_seed(1)
    model = new_model("semantic", num_classes=3, depth=2, base_channels=4, class_names=["background", "a", "b"])
    randomize_batchnorm(model.net)
    model.metadata["normalization"]["invert"] = True
    folder = export_bioimageio(model, tmp_path / "package")
    status, failures = bioimageio_test(folder)
    assert status == "passed", failures
    rdf = yaml.safe_load((folder / "rdf.yaml").read_text())
    assert [op["id"] for op in rdf["inputs"][0]["preprocessing"]][:3] == ["ensure_dtype", "scale_range", "scale_linear"]
    assert rdf["outputs"][0]["postprocessing"][0] == {"id": "softmax", "kwargs": {"axis": "channel"}}
    output = np.load(folder / "test_output.npy")
    assert output.shape[1] == 3 and np.allclose(output.sum(axis=1), 1, atol=1e-5)


def test_the_torchscript_weights_compute_the_network_at_other_sizes_and_batches(tiny_model, tmp_path):
    folder = export_bioimageio(tiny_model, tmp_path / "package")
    test_input = np.load(folder / "test_input.npy")
    traced = torch.jit.load(folder / "weights_torchscript.pt")  # our own file: loading it runs what we traced
    step, side = tiny_model.net.size_multiple, test_input.shape[-1]
    rng = np.random.default_rng(0)
    for shape in (test_input.shape, (2, 1, side + step, side + 3 * step), (3, 1, min_side(tiny_model.net), step)):
        x = torch.from_numpy(rng.normal(size=shape).astype(np.float32))
        with torch.no_grad():
            assert torch.allclose(traced(x), tiny_model.net.eval()(x), rtol=1e-4, atol=1e-4), shape
    assert "BatchNorm2d" not in {m.original_name for m in traced.modules()}  # folded into the convolutions


def test_without_torchscript_the_package_holds_the_state_dict_only(tiny_model, tmp_path):
    folder = export_bioimageio(tiny_model, tmp_path / "package", torchscript=False)
    rdf = yaml.safe_load((folder / "rdf.yaml").read_text())
    assert list(rdf["weights"]) == ["pytorch_state_dict"] and not (folder / "weights_torchscript.pt").exists()
    assert "TorchScript" not in (folder / "README.md").read_text()


def test_a_trace_that_does_not_reproduce_the_network_is_one_line_and_nothing_is_written(tiny_model, tmp_path,
                                                                                       monkeypatch):
    monkeypatch.setattr(torchscript, "trace_mismatch", lambda *args: "largest difference 0.5")
    with pytest.raises(ExportError, match=r"does not reproduce it on 2 images of 8 x 12 px .*--no-torchscript"):
        export_bioimageio(tiny_model, tmp_path / "package")
    assert not (tmp_path / "package").exists()


def test_the_test_input_is_raw_pixels_and_the_normalisation_matches_ours(tiny_model):
    raw = input_tensor(tiny_model, None)
    side = raw.shape[-1]
    assert raw.shape == (1, 1, side, side) and side % tiny_model.net.size_multiple == 0
    assert side >= min_side(tiny_model.net) and raw.max() > 1  # not normalised yet: the package does that
    norm = exported_normalization({"low": 1.0, "high": 99.8, "invert": "auto", "despike": 0.25}, invert=False)
    ours = fit_normalization(raw[0], norm.settings()).apply(raw[0])
    low, high = np.percentile(raw[0], [1.0, 99.8], axis=(1, 2))  # what scale_range computes
    assert np.allclose(ours, (raw[0] - low[:, None, None]) / (high - low)[:, None, None], atol=1e-5)


def test_what_does_not_map_is_stated():
    settings = {"method": "percentile", "low": 1.0, "high": 99.8, "invert": "auto", "despike": 0.25,
                "denoise": {"above": 0.035, "sigma": 0.55}}
    notes = " ".join(not_mapped({"task": "instances", "normalization": settings, "object_diameter": 21.2}, False))
    for words in ("Automatic inversion", "never inverts", "Despiking", "Denoising", "21.2 px", "watershed"):
        assert words in notes
    with pytest.raises(ValueError, match="no bioimage.io equivalent"):
        exported_normalization({"method": "zscore"}, False)


def test_the_readme_says_what_the_package_holds_and_leaves_out(tiny_model, tmp_path):
    tiny_model.metadata["normalization"]["despike"] = 0.25
    folder = export_bioimageio(tiny_model, tmp_path / "package")
    readme = (folder / "README.md").read_text()
    for words in ("torch.load(weights_only=True)", "unet.py", "What the package cannot express", "Despiking",
                  "From maps to labels", "## Validation", "scale_range", "`weights_torchscript.pt`", "deepImageJ",
                  "each weights format"):
        assert words in readme


def test_an_existing_folder_is_never_overwritten_without_overwrite(tiny_model, tmp_path):
    folder = tmp_path / "package"
    folder.mkdir()
    (folder / "mine.txt").write_text("keep")
    with pytest.raises(ExportError, match="already exists"):
        export_bioimageio(tiny_model, folder)
    assert (folder / "mine.txt").read_text() == "keep"
    with pytest.raises(ExportError, match="holds files that are not a bioimage.io package"):
        export_bioimageio(tiny_model, folder, overwrite=True)  # it would replace the whole folder
    assert (folder / "mine.txt").read_text() == "keep"
    (folder / "mine.txt").unlink()
    export_bioimageio(tiny_model, folder, overwrite=True)  # an empty folder
    (folder / "cover.png").write_bytes(b"old")
    export_bioimageio(tiny_model, folder, overwrite=True)  # an earlier package is replaced
    assert (folder / "rdf.yaml").exists() and (folder / "cover.png").read_bytes() != b"old"
    (folder / "notes.txt").write_text("mine")  # the user's file beside an earlier package
    with pytest.raises(ExportError, match="holds notes.txt, which the earlier package does not list"):
        export_bioimageio(tiny_model, folder, overwrite=True)
    assert (folder / "notes.txt").read_text() == "mine"
    (folder / "notes.txt").unlink()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["package"]  # no temporary folder left behind


def test_a_multichannel_model_needs_a_sample_with_its_channels(tmp_path):
    model = new_model("instances", in_channels=2, depth=2, base_channels=4)
    with pytest.raises(ExportError, match="expects 2 channel"):
        export_bioimageio(model, tmp_path / "package")
    rng = np.random.default_rng(0)
    tifffile.imwrite(tmp_path / "two.tif", rng.integers(0, 4000, (2, 80, 96), dtype=np.uint16))
    folder = export_bioimageio(model, tmp_path / "package", sample=tmp_path / "two.tif")
    assert np.load(folder / "test_input.npy").shape == (1, 2, 80, 80)


def test_a_too_small_sample_or_an_unknown_licence_is_one_clear_message(tiny_model, tmp_path):
    tifffile.imwrite(tmp_path / "small.tif", np.zeros((40, 40), np.uint8))
    with pytest.raises(ExportError, match=f"at least {min_side(tiny_model.net)} x {min_side(tiny_model.net)} px"):
        export_bioimageio(tiny_model, tmp_path / "a", sample=tmp_path / "small.tif")
    with pytest.raises(ExportError, match="not an SPDX licence"):
        export_bioimageio(tiny_model, tmp_path / "b", license="my own licence")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_without_bioimageio_installed_the_message_says_what_to_install(tiny_model, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "bioimageio.spec.model.v0_5", None)
    with pytest.raises(ExportError, match=r"napari-unet-seg\[bioimageio\]"):
        export_bioimageio(tiny_model, tmp_path / "package")


def test_the_readme_states_a_fitted_minimum_brightness_only_when_the_model_has_one(tiny_model, tmp_path):
    plain = (export_bioimageio(tiny_model, tmp_path / "plain") / "README.md").read_text()
    assert "mean normalised intensity" not in plain
    tiny_model.metadata["postprocess"] = {**tiny_model.postprocess, "min_brightness": 0.25}
    fitted = (export_bioimageio(tiny_model, tmp_path / "fitted") / "README.md").read_text()
    assert "objects whose mean normalised intensity (over channels) is below 0.25" in fitted


def test_the_halo_is_whole_network_steps_so_a_runners_padded_blocks_give_our_maps(tiny_model, tmp_path):
    # a halo of the receptive radius (122 px for the built-in model, its step 16) shifted each block by 6 px:
    # bioimageio.core's default prediction failed on a size mismatch, and its blocks differed by up to 0.89
    from napari_unet_seg.core.model_export.bioimageio import halo

    net = tiny_model.net.eval()
    step, border = net.size_multiple, halo(net)
    assert border % step == 0 and border >= net.receptive_radius > border - step
    rdf = yaml.safe_load((export_bioimageio(tiny_model, tmp_path / "package") / "rdf.yaml").read_text())
    (output,) = rdf["outputs"]
    assert [axis.get("halo") for axis in output["axes"] if axis.get("id") in ("y", "x")] == [border, border]
    side = min_side(net)
    x = torch.from_numpy(np.random.default_rng(0).normal(size=(1, 1, side, side)).astype(np.float32))
    with torch.no_grad():  # a runner pads the block by the halo and crops it off again
        whole = net(x)
        padded = net(torch.nn.functional.pad(x, (border,) * 4))[..., border:-border, border:-border]
    inside = slice(net.receptive_radius, side - net.receptive_radius)
    assert torch.allclose(padded[..., inside, inside], whole[..., inside, inside], atol=1e-5)
