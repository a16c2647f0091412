"""The packed training data unpacks to exactly what training would read (train splits only, never val)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import tifffile

from napari_unet_seg.core.inference.preprocess import RGB_WEIGHTS

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "pack_training_data.py"
sys.path.insert(0, str(SCRIPT.parent))
import pack_training_data  # noqa: E402
from train_nuclei import BSST_VAL  # noqa: E402


def _folder(root: Path, header: str, rows: list[tuple[str, str, np.ndarray]]) -> Path:
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    lines = [header]
    for name, extra, image in rows:
        tifffile.imwrite(root / "images" / f"{name}.tif", image)
        tifffile.imwrite(root / "labels" / f"{name}.tif", (image[..., 0] if image.ndim == 3 else image) // 64)
        lines.append(f"{name},{extra}")
    (root / "index.csv").write_text("\n".join(lines) + "\n")
    return root


def _run(monkeypatch, *args: str) -> None:
    monkeypatch.setattr(sys, "argv", ["pack_training_data.py", *args])
    assert pack_training_data.main() == 0


def test_pack_then_unpack_gives_the_train_images_back(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    gray8 = rng.integers(0, 256, (40, 56), dtype=np.uint8)
    colour = rng.integers(0, 256, (32, 48, 3), dtype=np.uint8)
    gray16 = rng.integers(0, 4096, (24, 24), dtype=np.uint16)
    dsb = _folder(tmp_path / "dsb2018", "name,kind,split", [
        ("a", "fluorescence,train", gray8), ("b", "stained,train", colour), ("v", "fluorescence,val", gray8)])
    val_name = min(BSST_VAL)
    bsst = _folder(tmp_path / "s-bsst265", "name,preparation", [("t", "tissue", gray16), (val_name, "tissue", gray8)])
    pack = tmp_path / "pack.tar.xz"
    _run(monkeypatch, "--dsb", str(dsb), "--bsst", str(bsst), "--out", str(pack))
    out = tmp_path / "out"
    _run(monkeypatch, "--unpack", str(pack), "--to", str(out))

    assert sorted(p.name for p in (out / "dsb2018" / "images").iterdir()) == ["a.tif", "b.tif"]
    assert sorted(p.name for p in (out / "s-bsst265" / "images").iterdir()) == ["t.tif"]
    assert "v," not in (out / "dsb2018" / "index.csv").read_text()
    assert val_name not in (out / "s-bsst265" / "index.csv").read_text()
    np.testing.assert_array_equal(tifffile.imread(out / "dsb2018" / "images" / "a.tif"), gray8)
    expected_gray = np.clip(np.rint(colour.astype(np.float32) @ RGB_WEIGHTS), 0, 255).astype(np.uint8)
    np.testing.assert_array_equal(tifffile.imread(out / "dsb2018" / "images" / "b.tif"), expected_gray)
    np.testing.assert_array_equal(tifffile.imread(out / "s-bsst265" / "images" / "t.tif"), gray16)
    np.testing.assert_array_equal(tifffile.imread(out / "dsb2018" / "labels" / "a.tif"), gray8 // 64)
