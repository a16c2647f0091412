"""The core must stay usable without Qt or napari (scripts, cluster workers)."""

import pkgutil
import subprocess
import sys

import napari_unet_seg.core as core


def test_core_imports_neither_qt_nor_napari():
    modules = [f"napari_unet_seg.core.{m.name}" for m in pkgutil.iter_modules(core.__path__)]
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
