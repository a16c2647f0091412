"""Random crops and augmentations that teach the variety of real microscopes.

Scale (objects ~8 to ~80 px), flips and 90 degree turns, gamma, uneven
background, noise (gaussian, or the photon noise of dim cameras), blur, and
-- for instance models -- objects dimmed up to 10x relative to their
neighbours and textured interiors (speckles, nucleoli), so that defaults
handle what users' images throw at them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage as ndi


@dataclass(frozen=True)
class AugmentConfig:
    """Which augmentations to use and how strong (defaults suit nuclei)."""

    scale_range: tuple[float, float] = (0.5, 2.0)
    flips: bool = True
    intensity: bool = True
    dim_objects: bool = True
    dim_range: tuple[float, float] = (0.1, 0.6)  # contrast factors of dimmed objects (0.1 = ten times dimmer)
    texture: bool = True
    max_noise: float = 0.05  # gaussian noise sigma, in units of the normalised range
    shot_noise: tuple[float, float] | None = None  # photons at the top of the range: low-light (Poisson) noise
    # the rest are off by default (fine-tuning keeps its recipe); scripts/train_nuclei.py turns them on
    empty_regions: float = 0.0  # chance of a band or patch where nothing is (black gap, padding, saturation...)
    nucleoli: float = 0.0  # chance of darker or brighter spots inside objects (nucleoli, chromocentres)
    anisotropy: float = 1.0  # up to this ratio between the crop's vertical and horizontal scale
    defocus: float = 0.0  # chance of a strong blur (sigma 1.5-3.5 px), as an out-of-focus plane


def add_shot_noise(img: np.ndarray, photons_range: tuple[float, float], rng: np.random.Generator) -> np.ndarray:
    """Photon (Poisson) noise as a dim camera image has it: strongest on the brightest pixels.

    The normalised range [0, 1] becomes 0..N photons (N drawn log-uniformly
    from ``photons_range``) over a small dark level, is counted, and mapped back.
    """
    if min(photons_range) <= 0:
        raise ValueError(f"photon counts must be positive, not {photons_range}")
    photons = float(np.exp(rng.uniform(*np.log(photons_range))))
    dark = photons * 0.05
    counts = rng.poisson(np.clip(img, 0, None) * photons + dark).astype(np.float32)
    return (counts - dark) / photons


def random_crop(
    image: np.ndarray,
    labels: np.ndarray,
    valid: np.ndarray | None,
    crop: int,
    scale: float,
    rng: np.random.Generator,
    aspect: float = 1.0,
    centre: tuple[int, int] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cut a window of ``crop / scale`` px and resize it to ``crop`` (image bilinear, labels nearest).

    ``centre`` (y, x) puts that pixel somewhere in the window's middle half
    (kept inside the image); None places the window uniformly at random.

    ``aspect`` stretches rows against columns (``scale * aspect`` vertically,
    ``scale / aspect`` horizontally): pixels are not always square. Returns
    (C, crop, crop) image, (crop, crop) labels and a (crop, crop) validity
    mask that is 0 where the window ran past the image.
    """
    _, h, w = image.shape
    side_y = max(int(round(crop / (scale * aspect))), 1)
    side_x = max(int(round(crop * aspect / scale)), 1)
    if centre is None:
        y0 = int(rng.integers(0, max(h - side_y, 0) + 1))
        x0 = int(rng.integers(0, max(w - side_x, 0) + 1))
    else:
        y0 = int(np.clip(centre[0] - side_y // 2 + rng.integers(-(side_y // 4), side_y // 4 + 1), 0, max(h - side_y, 0)))
        x0 = int(np.clip(centre[1] - side_x // 2 + rng.integers(-(side_x // 4), side_x // 4 + 1), 0, max(w - side_x, 0)))
    img = image[:, y0:y0 + side_y, x0:x0 + side_x]
    lab = labels[y0:y0 + side_y, x0:x0 + side_x]
    val = np.ones(lab.shape, np.float32) if valid is None else valid[y0:y0 + side_y, x0:x0 + side_x].astype(np.float32)
    pad_y, pad_x = side_y - img.shape[1], side_x - img.shape[2]
    if pad_y or pad_x:
        img = np.pad(img, ((0, 0), (0, pad_y), (0, pad_x)), mode="reflect" if min(img.shape[1:]) > 1 else "edge")
        lab = np.pad(lab, ((0, pad_y), (0, pad_x)))
        val = np.pad(val, ((0, pad_y), (0, pad_x)))
    if side_y != crop or side_x != crop:
        t = torch.from_numpy(np.ascontiguousarray(img, dtype=np.float32))[None]
        img = F.interpolate(t, size=(crop, crop), mode="bilinear", align_corners=False,
                            antialias=max(side_y, side_x) > crop)[0].numpy()
        # pixel centre to pixel centre, as the bilinear image above (align_corners=False) and resize_labels: a
        # plain floor(i * side / crop) put the labels half a pixel down and right of the image they teach
        rows = np.minimum(((np.arange(crop) + 0.5) * side_y / crop).astype(np.int64), side_y - 1)
        cols = np.minimum(((np.arange(crop) + 0.5) * side_x / crop).astype(np.int64), side_x - 1)
        lab = lab[rows][:, cols]
        val = val[rows][:, cols]
    return np.ascontiguousarray(img, dtype=np.float32), np.ascontiguousarray(lab), np.ascontiguousarray(val)


def flip_rotate(arrays: list[np.ndarray], rng: np.random.Generator) -> list[np.ndarray]:
    """The same random flip and 90 degree turn for every array (last two axes)."""
    k = int(rng.integers(4))
    flip = bool(rng.integers(2))
    out = []
    for a in arrays:
        a = np.rot90(a, k, axes=(-2, -1))
        if flip:
            a = a[..., ::-1]
        out.append(np.ascontiguousarray(a))
    return out


def _smooth_noise(shape: tuple[int, int], sigma: float, rng: np.random.Generator) -> np.ndarray:
    noise = ndi.gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma)
    return noise / (noise.std() + 1e-6)


def augment_intensity(
    image: np.ndarray, labels: np.ndarray | None, config: AugmentConfig, rng: np.random.Generator
) -> np.ndarray:
    """Intensity changes on a normalised (C, H, W) crop; labels allow per-object changes."""
    img = image.copy()
    h, w = img.shape[1:]
    background = float(np.percentile(img, 10))
    noise_cap = config.max_noise
    dimmed = False
    if labels is not None and labels.any():
        ids = np.unique(labels)
        ids = ids[ids > 0]
        if config.dim_objects and rng.random() < 0.5:
            chosen = ids[rng.random(len(ids)) < 0.35]
            if len(chosen):
                factors = np.ones(int(labels.max()) + 1, np.float32)
                lo, hi = config.dim_range
                factors[chosen] = np.exp(rng.uniform(np.log(lo), np.log(hi), len(chosen)))
                # the dimmest object must stay twice the noise added below: labels must stay learnable
                contrast = float(np.median(img[:, labels > 0]) - background)
                noise_cap = min(noise_cap, 0.5 * lo * max(contrast, 0.0))
                img = background + (img - background) * factors[labels][None]
                dimmed = True
        if config.texture and rng.random() < 0.3:
            inside = (labels > 0)[None]
            speckle = 1 + rng.uniform(0.2, 0.6) * _smooth_noise((h, w), rng.uniform(0.7, 2.0), rng)
            img = np.where(inside, background + (img - background) * np.clip(speckle, 0.05, None)[None], img)
        if config.nucleoli and rng.random() < config.nucleoli:
            img = add_nucleoli(img, labels, background, rng)
    if rng.random() < 0.5:
        gamma = float(np.exp(rng.uniform(np.log(0.6), np.log(1.6))))
        low = img.min()
        img = low + np.power(np.clip(img - low, 0, None) / max(img.max() - low, 1e-6), gamma) * (img.max() - low)
    if rng.random() < 0.3:
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        cy, cx = rng.uniform(-0.5, 1.5) * h, rng.uniform(-0.5, 1.5) * w
        sigma = rng.uniform(0.5, 1.5) * max(h, w)
        blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * sigma**2))
        img = img + rng.uniform(0.05, 0.4) * blob[None]
    if config.defocus and rng.random() < config.defocus:
        sigma = rng.uniform(1.5, 3.5)
        img = ndi.gaussian_filter(img, (0, sigma, sigma))
    elif rng.random() < 0.25:
        img = ndi.gaussian_filter(img, (0, rng.uniform(0.3, 1.2), rng.uniform(0.3, 1.2)))
    if rng.random() < 0.5:
        img = img + rng.standard_normal(img.shape).astype(np.float32) * rng.uniform(0.0, noise_cap)
    elif config.shot_noise and not dimmed and rng.random() < 0.5:
        img = add_shot_noise(img, config.shot_noise, rng)  # not with dimmed objects: they must stay learnable
    # what inference does to a whole image, done to the crop, then a little jitter
    low, high = np.percentile(img, 1), np.percentile(img, 99.8)
    img = (img - low) / max(high - low, 1e-3)
    img = img * rng.uniform(0.85, 1.15) + rng.uniform(-0.08, 0.08)
    return img.astype(np.float32)


def add_nucleoli(img: np.ndarray, labels: np.ndarray, background: float, rng: np.random.Generator) -> np.ndarray:
    """Darker (or brighter) round spots inside objects, as nucleoli and chromocentres look in large nuclei.

    Large nuclei with visible nucleoli were split into fragments; one to four
    spots per object, each a fifth to a third of the object's radius, dim
    its signal by up to 70 % (or brighten it by up to 50 %).
    """
    ids, areas = np.unique(labels[labels > 0], return_counts=True)
    if not len(ids):
        return img
    impulses = np.zeros(labels.shape, np.float32)
    radius = float(np.sqrt(np.median(areas) / np.pi))
    for obj in ids[rng.random(len(ids)) < 0.7]:
        ys, xs = np.nonzero(labels == obj)
        picks = rng.integers(0, len(ys), size=int(rng.integers(1, 5)))
        impulses[ys[picks], xs[picks]] = 1.0
    sigma = max(radius * rng.uniform(0.2, 0.33), 0.7)
    spots = ndi.gaussian_filter(impulses, sigma)
    spots = np.clip(spots / max(float(spots.max()), 1e-6), 0, 1) * (labels > 0)
    strength = rng.uniform(0.3, 0.7) if rng.random() < 0.75 else -rng.uniform(0.2, 0.5)
    return background + (img - background) * (1 - strength * spots)[None]


def add_empty_regions(img: np.ndarray, labels: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One or two bands or patches where nothing is; no object inside them.

    Everyday images have them: black gaps between the tiles of a stitched
    scan, zero padding, saturated or constant areas, a neighbouring tile with
    another background level. A model that never saw them grew long stripe
    "nuclei" in zero bands and along their edges. ``img`` is a normalised
    (C, H, W) crop (background near 0, nuclei near 1).
    """
    img, labels = img.copy(), labels.copy()
    _, h, w = img.shape
    background = float(np.percentile(img, 10))
    top = float(np.percentile(img, 99.9))
    for _ in range(int(rng.integers(1, 3))):
        mask = np.zeros((h, w), bool)
        if rng.random() < 0.6:  # a band across the crop, or along one of its edges (padding)
            thickness = int(rng.integers(4, max(h // 2, 5)))
            start = 0 if rng.random() < 0.25 else int(rng.integers(0, max(h - thickness, 1)))
            if rng.random() < 0.5:
                mask[start:start + thickness] = True
            else:
                mask[:, start:start + thickness] = True
        else:  # a rectangle
            ph, pw = (int(rng.integers(h // 8, int(h / 1.5))) for _ in range(2))
            y0, x0 = int(rng.integers(0, h - ph + 1)), int(rng.integers(0, w - pw + 1))
            mask[y0:y0 + ph, x0:x0 + pw] = True
        kind = rng.random()
        if kind < 0.4:  # black: at or below the background (zeros of a gap or of padding)
            fill = background - float(np.exp(rng.uniform(np.log(0.01), np.log(1.0))))
            values = np.full((h, w), fill, np.float32)
        elif kind < 0.6:  # saturated: clipped flat at the top of the range
            values = np.full((h, w), max(top, 1.0) * rng.uniform(1.0, 1.3), np.float32)
        elif kind < 0.75:  # a constant grey
            values = np.full((h, w), rng.uniform(0.05, 0.9), np.float32)
        else:  # another tile's background: a different level, its own noise
            level = background + rng.uniform(-0.15, 0.25)
            values = level + rng.standard_normal((h, w)).astype(np.float32) * rng.uniform(0.0, 0.04)
        img[:, mask] = values[mask]
        labels[mask] = 0
    return img, labels
