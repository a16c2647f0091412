"""File > Open Sample: real DSB 2018 nuclei, and a 4096 x 4096 mosaic for the tiling demo."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Iterator, NamedTuple

import numpy as np
import tifffile

MAIN_SAMPLE = "dsb2018_6b72b61b80060a9e"
MOSAIC_SIDE = 4096
ATTRIBUTION = "2018 Data Science Bowl (Broad Institute), corrected masks, CC0; Caicedo et al., Nat Methods 2019"


def sample_dir() -> Path:
    """The shipped ``sample_data`` folder (inside the package, or the repository's top level)."""
    return Path(str(resources.files("napari_unet_seg") / "sample_data"))


def _pair(stem: str) -> tuple[np.ndarray, np.ndarray]:
    folder = sample_dir()
    return tifffile.imread(folder / f"{stem}.tif"), tifffile.imread(folder / f"{stem}_labels.tif")


def sample_stems() -> list[str]:
    return sorted(p.stem for p in sample_dir().glob("dsb2018_*.tif") if not p.stem.endswith("_labels"))


def nuclei_sample() -> list[tuple]:
    """One fluorescence image with its ground-truth labels, as napari layer data."""
    image, labels = _pair(MAIN_SAMPLE)
    meta = {"source": ATTRIBUTION}
    return [
        (image, {"name": "nuclei", "metadata": meta}, "image"),
        # hidden: shown under the Segment result, the two colourings mix; the user ticks it on to compare
        (labels, {"name": "nuclei ground truth", "metadata": meta, "opacity": 0.4, "visible": False}, "labels"),
    ]


class MosaicTile(NamedTuple):
    """One sample image placed in the mosaic: which image, where, and its (turned, flipped, cut) pixels."""

    stem: str
    top: int
    left: int
    image: np.ndarray
    labels: np.ndarray
    ids: int  # the uncut image's highest label: the mosaic numbers each tile's objects after the previous ones


def mosaic_tiles(side: int = MOSAIC_SIDE) -> Iterator[MosaicTile]:
    """The shipped images, flipped and turned in turn, placed row by row; the last row and column are cut."""
    stems = sample_stems()
    pairs = [_pair(stem) for stem in stems]
    y = k = 0
    while y < side:
        x = row_height = 0
        while x < side:
            img, lab = pairs[k % len(pairs)]
            turns, flip = (k // len(pairs)) % 4, (k // (4 * len(pairs))) % 2
            img, lab = np.rot90(img, turns), np.rot90(lab, turns)
            if flip:
                img, lab = img[:, ::-1], lab[:, ::-1]
            h, w = min(img.shape[0], side - y), min(img.shape[1], side - x)
            yield MosaicTile(stems[k % len(pairs)], y, x, img[:h, :w], lab[:h, :w], int(lab.max()))
            x += w
            row_height = max(row_height, h)
            k += 1
        y += row_height


def make_mosaic(side: int = MOSAIC_SIDE) -> tuple[np.ndarray, np.ndarray]:
    """Tile the shipped images (flipped and turned in turn) into a side x side image and labels.

    Rows of tiles of different heights leave black (zero) gaps, as stitched scans do.
    """
    image = np.zeros((side, side), np.uint8)
    labels = np.zeros((side, side), np.uint32)
    offset = 0
    for tile in mosaic_tiles(side):
        (h, w), y, x = tile.image.shape, tile.top, tile.left
        image[y:y + h, x:x + w] = tile.image
        piece = tile.labels.astype(np.uint32)
        labels[y:y + h, x:x + w] = np.where(piece > 0, piece + offset, 0)
        offset += tile.ids
    return image, labels


def mosaic_sample() -> list[tuple]:
    """A 4096 x 4096 mosaic (16 Mpx) to show tiled, seam-free inference."""
    image, labels = make_mosaic()
    meta = {"source": ATTRIBUTION}
    return [
        (image, {"name": "nuclei mosaic", "metadata": meta}, "image"),
        (labels, {"name": "nuclei mosaic ground truth", "metadata": meta, "opacity": 0.4, "visible": False}, "labels"),
    ]
