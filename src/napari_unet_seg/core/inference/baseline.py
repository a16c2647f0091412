"""The classical pipeline people compare a U-Net with: Gaussian, Otsu, distance watershed."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi
from skimage.feature import peak_local_max
from skimage.filters import gaussian, threshold_otsu
from skimage.segmentation import watershed

from .postprocess import relabel_by_size
from .preprocess import fit_normalization


def classical_nuclei(image: np.ndarray, *, rgb: bool = False, sigma: float = 1.0, min_distance: int = 4) -> np.ndarray:
    """Gaussian smoothing + Otsu threshold + watershed on the distance transform."""
    data = np.asarray(image, dtype=np.float32)
    if rgb:
        data = data[..., :3] @ np.array([0.299, 0.587, 0.114], np.float32)
    norm = fit_normalization(data[None], {"invert": "auto"})
    data = norm.apply(data[None])[0]
    smooth = gaussian(data, sigma)
    if smooth.max() == smooth.min():
        return np.zeros(data.shape, np.uint16)
    mask = smooth > threshold_otsu(smooth)
    distance = ndi.distance_transform_edt(mask)
    peaks = peak_local_max(distance, min_distance=min_distance, labels=ndi.label(mask)[0], exclude_border=False)
    markers = np.zeros(mask.shape, np.int64)
    markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
    labels = watershed(-distance, markers, mask=mask)
    return relabel_by_size(labels, 8)
