"""The manifest napari loads and the files a wheel must carry."""

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_manifest_validates_and_is_the_top_level_file():
    from npe2 import PluginManifest

    manifest = PluginManifest.from_distribution("napari-unet-seg")
    assert manifest.name == "napari-unet-seg"
    top = PluginManifest.from_file(ROOT / "napari.yaml")
    assert manifest.model_dump() == top.model_dump()
    result = subprocess.run(["npe2", "validate", "napari-unet-seg"], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_manifest_commands_resolve():
    from npe2 import PluginManifest

    manifest = PluginManifest.from_file(ROOT / "napari.yaml")
    import importlib

    for command in manifest.contributions.commands:
        module, _, attr = command.python_name.partition(":")
        assert hasattr(importlib.import_module(module), attr), command.python_name
    menus = manifest.contributions.menus
    assert "napari/layers/segment" in menus


@pytest.mark.slow
def test_wheel_contains_manifest_sample_data_and_models(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(tmp_path), str(ROOT)],
        check=True, capture_output=True,
    )
    wheel = next(tmp_path.glob("*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "napari_unet_seg/napari.yaml" in names
    assert any(n.startswith("napari_unet_seg/sample_data/dsb2018_") and n.endswith(".tif") for n in names)
    assert "napari_unet_seg/sample_data/README.md" in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "napari-unet-seg = napari_unet_seg:napari.yaml" in text and "unet-seg = " in text
    shipped = {Path(n).name for n in names if n.startswith("napari_unet_seg/models/")}
    for model in (ROOT / "src/napari_unet_seg/models").glob("*.safetensors"):
        assert model.name in shipped
    top = (ROOT / "napari.yaml").read_bytes()
    assert zipfile.ZipFile(wheel).read("napari_unet_seg/napari.yaml") == top


def test_readme_test_command_is_what_ci_runs():
    ci = (ROOT / ".ci/run").read_text()
    command = ci.strip().splitlines()[-1]
    assert command.startswith("xvfb-run") and command in (ROOT / "README.md").read_text()
