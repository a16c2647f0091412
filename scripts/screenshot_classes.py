"""Refresh the README screenshot of a class per object on a laptop screen (1366 x 768).

    xvfb-run -a -s "-screen 0 1366x768x24" python scripts/screenshot_classes.py [--out docs/images/classes.png]

A real dsb2018 image whose nuclei range from dim to bright. Scribbles are
drawn as a user would (a blob inside each annotated nucleus, 2 = bright and
3 = dim by the nucleus's mean intensity, and a background grid, 1), a class
model "bright, dim" is trained on them for ``--seconds`` (``unet-seg train
--scribbles --class-names``), Segment runs the built-in model (objects) and
the class model (classes, a layer of its own), and Measurements gives each
nucleus its class and colours it so.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from _qt_wait import pump, share_dock_heights, shoot, wait  # scripts/ is on the path of a script run from it

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "dsb2018"


def scribbles(image: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """1 = background grid, 2 = a blob in each bright nucleus, 3 = in each dim one (split at the median)."""
    from scipy import ndimage as ndi

    gray = image.mean(axis=-1) if image.ndim == 3 else image
    ids = np.unique(truth[truth > 0])
    means = ndi.mean(gray, truth, ids)
    split = float(np.median(means))
    out = np.zeros(truth.shape, np.uint8)
    out[::12, :] = out[:, ::12] = 1
    out[ndi.binary_dilation(truth > 0, iterations=3)] = 0
    for k, mean in zip(ids, means):
        core = ndi.binary_erosion(truth == k, iterations=2)
        out[core] = 2 if mean >= split else 3
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "images" / "classes.png")
    parser.add_argument("--stem", default="2227fd9b01d67c2b", help="a dsb2018 image with dim and bright nuclei")
    parser.add_argument("--seconds", type=int, default=90, help="training budget of the class model")
    args = parser.parse_args()

    import tifffile

    work = Path(tempfile.mkdtemp(prefix="classes-shot-"))
    os.environ["NAPARI_UNET_SEG_MODEL_DIR"] = str(work / "models")
    image = tifffile.imread(DATA / "images" / f"{args.stem}.tif")
    truth = tifffile.imread(DATA / "labels" / f"{args.stem}.tif")
    tifffile.imwrite(work / "image.tif", image)
    tifffile.imwrite(work / "scribbles.tif", scribbles(image, truth))
    subprocess.run([sys.executable, "-m", "napari_unet_seg.cli.main", "train", "--image", str(work / "image.tif"),
                    "--labels", str(work / "scribbles.tif"), "--scribbles", "--class-names", "bright,dim",
                    "--max-seconds", str(args.seconds), "-o", str(work / "models" / "brightness.safetensors")],
                   check=True)

    import napari

    viewer = napari.Viewer(title="napari-unet-seg")
    viewer.window.resize(1366, 740)
    layer = viewer.add_image(image, name=args.stem)
    _, segment = viewer.window.add_plugin_dock_widget("napari-unet-seg", "Segment")
    _, measure = viewer.window.add_plugin_dock_widget("napari-unet-seg", "Measurements")
    segment.refresh_models()
    for model in ("nuclei", "brightness"):
        segment.model_picker.combo.setCurrentText(model)
        segment.run(layer)
        wait(segment)
    classes = viewer.layers[f"{args.stem} classes"]
    classes.visible = False  # the objects in their class's colour, not under the class map's
    viewer.layers.selection.active = viewer.layers[f"{args.stem} labels"]
    pump()
    measure.run()
    wait(measure)
    share_dock_heights(viewer, [150, 560])  # Segment is done: the room goes to the table
    shoot(viewer, args.out)
    print(f"{measure.status.text()}\n-> {args.out}")
    viewer.close()


if __name__ == "__main__":
    main()
