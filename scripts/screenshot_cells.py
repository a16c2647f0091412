"""Refresh the README screenshot of nuclei and whole cells on a laptop screen (1366 x 768).

    xvfb-run -a -s "-screen 0 1366x768x24" python scripts/screenshot_cells.py [--out docs/images/cells.png]

Our data hold no cell stain, so the picture is made from a real dsb2018 val
image (its nuclei, channel 1) and a cytoplasm channel built from its ground
truth (each nucleus grown by 12 px, dimmer where two cells meet, with noise),
as a two-channel (C, H, W) layer. Segment takes channel 1 with the built-in
model; Cells from nuclei grows the cells over channel 0.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from _qt_wait import share_dock_heights, shoot, wait  # scripts/ is on the path of a script run from it

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "dsb2018"


def two_channel_image(stem: str) -> np.ndarray:
    """(cytoplasm, nuclei) of the dsb2018 val image ``stem``, as float32."""
    import tifffile
    from scipy import ndimage as ndi
    from skimage.segmentation import expand_labels, find_boundaries

    nuclei = tifffile.imread(DATA / "images" / f"{stem}.tif")
    truth = tifffile.imread(DATA / "labels" / f"{stem}.tif")
    nuclei = nuclei.mean(axis=-1) if nuclei.ndim == 3 else nuclei
    cells = expand_labels(truth, 12)
    rng = np.random.default_rng(0)
    cytoplasm = (cells > 0) * 0.8 - find_boundaries(cells, mode="inner") * 0.5 + 0.05
    cytoplasm = ndi.gaussian_filter(cytoplasm, 1.0) + rng.normal(0, 0.04, cells.shape)
    return np.stack([255 * cytoplasm, nuclei]).astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "images" / "cells.png")
    parser.add_argument("--stem", default="449a9c32e53a37c8", help="a dsb2018 val image")
    args = parser.parse_args()

    import napari

    viewer = napari.Viewer(title="napari-unet-seg")
    viewer.window.resize(1366, 740)
    image = viewer.add_image(two_channel_image(args.stem), name="cells and nuclei")
    _, segment = viewer.window.add_plugin_dock_widget("napari-unet-seg", "Segment")
    _, cells = viewer.window.add_plugin_dock_widget("napari-unet-seg", "Cells from nuclei")
    settings = segment.settings
    settings.channel_axis.setCurrentIndex(settings.channel_axis.findData(0))
    settings.channel.setCurrentIndex(settings.channel.findData(1))
    segment.run(image)
    wait(segment)
    cells.nuclei_picker.setCurrentText("cells and nuclei labels")
    cells.stain_picker.setCurrentText("cells and nuclei · channel 0")
    cells.run()
    wait(cells)
    share_dock_heights(viewer, [380, 320])  # Segment's settings are set: give the room to the cells
    viewer.dims.set_point(0, 1)  # the nuclear channel under the outlines
    image.colormap = "gray"
    shoot(viewer, args.out)
    print(f"{cells.status.text()}\n-> {args.out}")
    viewer.close()


if __name__ == "__main__":
    main()
