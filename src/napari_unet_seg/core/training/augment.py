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
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cut a window of ``crop / scale`` px and resize it to ``crop`` (image bilinear, labels nearest).

    Returns (C, crop, crop) image, (crop, crop) labels and a (crop, crop)
    validity mask that is 0 where the window ran past the image.
    """
    _, h, w = image.shape
    side = max(int(round(crop / scale)), 1)
    y0 = int(rng.integers(0, max(h - side, 0) + 1))
    x0 = int(rng.integers(0, max(w - side, 0) + 1))
    img = image[:, y0:y0 + side, x0:x0 + side]
    lab = labels[y0:y0 + side, x0:x0 + side]
    val = np.ones(lab.shape, np.float32) if valid is None else valid[y0:y0 + side, x0:x0 + side].astype(np.float32)
    pad_y, pad_x = side - img.shape[1], side - img.shape[2]
    if pad_y or pad_x:
        img = np.pad(img, ((0, 0), (0, pad_y), (0, pad_x)), mode="reflect" if min(img.shape[1:]) > 1 else "edge")
        lab = np.pad(lab, ((0, pad_y), (0, pad_x)))
        val = np.pad(val, ((0, pad_y), (0, pad_x)))
    if side != crop:
        t = torch.from_numpy(np.ascontiguousarray(img, dtype=np.float32))[None]
        img = F.interpolate(t, size=(crop, crop), mode="bilinear", align_corners=False, antialias=side > crop)[0].numpy()
        idx = (np.arange(crop) * side / crop).astype(np.int64)
        lab = lab[idx][:, idx]
        val = val[idx][:, idx]
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
    if rng.random() < 0.25:
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
