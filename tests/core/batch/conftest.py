"""Batch fixtures: a model that thresholds disks, and an input folder of good, bad and oddly named files."""

import numpy as np
import pytest
import tifffile
from PIL import Image

from helpers import synthetic_nuclei, threshold_model
from napari_unet_seg import save_model
from napari_unet_seg.core.inference.options import RunOptions


@pytest.fixture
def options(tmp_path):
    path = save_model(threshold_model(), tmp_path / "models" / "disks.safetensors")
    return RunOptions(model=str(path), device="cpu", precision="fp32")


@pytest.fixture
def folder(tmp_path):
    """Good images of every kind, bad files, odd names and a subfolder."""
    root = tmp_path / "in"
    (root / "sub dir ü").mkdir(parents=True)
    images = {}
    for i, name in enumerate(["a.tif", "b c.png", "sub dir ü/é 1.tif", "stack.tif"]):
        image, _ = synthetic_nuclei((48, 64), n=6, seed=i)
        if name == "stack.tif":
            image = np.stack([image, image[::-1]])
        if name.endswith(".png"):
            Image.fromarray(image).save(root / name)
        else:
            tifffile.imwrite(root / name, image, resolution=(2.0, 2.0), imagej=True, metadata={"unit": "um"})
        images[name] = image
    (root / "truncated.tif").write_bytes((root / "a.tif").read_bytes()[:300])
    (root / "empty.png").write_bytes(b"")
    (root / "fake.jpg").write_text("not an image")
    tifffile.imwrite(root / "volume.tif", np.zeros((2, 3, 4, 5, 6), np.uint8))
    (root / "notes.txt").write_text("ignored: not an image type")
    (root / ".hidden.tif").write_bytes(b"")
    return root, images
