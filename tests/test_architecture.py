"""The architecture holds: layers in order, no cycles, and a core usable without Qt or napari."""

import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import napari_unet_seg.core as core

ROOT = Path(__file__).resolve().parents[1]


def test_core_imports_neither_qt_nor_napari():
    modules = [m.name for m in pkgutil.walk_packages(core.__path__, prefix="napari_unet_seg.core.")]
    assert "napari_unet_seg.core.inference.pipeline" in modules  # subpackages are walked too
    modules += ["napari_unet_seg", "napari_unet_seg.cli.main"]
    code = (
        "import sys\n"
        + "".join(f"import {m}\n" for m in modules)
        + "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'napari', 'qtpy', 'PyQt5', 'PyQt6', 'PySide2', 'PySide6', 'magicgui', 'superqt', 'vispy'})\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "", f"core pulled in: {result.stdout.strip()}"


def _lint_imports(config: Path) -> subprocess.CompletedProcess:
    code = "import sys; from importlinter.cli import lint_imports; sys.exit(lint_imports(config_filename=sys.argv[1]))"
    return subprocess.run([sys.executable, "-c", code, str(config)], capture_output=True, text=True, cwd=ROOT)


def test_import_contracts_in_pyproject_are_kept():
    """Layers (interfaces > batch | training > inference > model > imageio > common), no Qt in core, no cycles."""
    result = _lint_imports(ROOT / "pyproject.toml")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "3 kept, 0 broken" in result.stdout


@pytest.mark.parametrize("importer, imported", [
    ("core/model/unet.py", "from ..inference.tiling import predict_tiled"),  # a lower layer using a higher one
    ("core/inference/layout.py", "from . import pipeline"),  # a cycle inside one layer
])
def test_the_contracts_catch_a_broken_order(tmp_path, importer, imported):
    """The contracts can fail: a copy of the package with one bad import breaks them."""
    import shutil

    package = tmp_path / "src" / "napari_unet_seg"
    shutil.copytree(ROOT / "src" / "napari_unet_seg", package, ignore=shutil.ignore_patterns("*.safetensors"))
    target = package / importer
    target.write_text(target.read_text() + f"\n{imported}  # noqa\n")
    config = tmp_path / "pyproject.toml"
    config.write_text((ROOT / "pyproject.toml").read_text())
    code = ("import sys; sys.path.insert(0, sys.argv[2]); from importlinter.cli import lint_imports; "
            "sys.exit(lint_imports(config_filename=sys.argv[1]))")
    result = subprocess.run([sys.executable, "-c", code, str(config), str(tmp_path / "src")], capture_output=True,
                            text=True, cwd=tmp_path)
    assert result.returncode != 0 and "BROKEN" in result.stdout
