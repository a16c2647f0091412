"""Turn a user's image into what the network expects, identically on every path.

Normalisation is percentile based and computed once per image (on a strided
sample for huge lazy images), never per tile, so tiles agree with each other.
The result is a lazy view: windows are read and normalised on demand, so dask
and zarr inputs are never loaded whole.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from .layout import plane_size

MAX_SAMPLE_PIXELS = 4_000_000
FLOAT_LIMIT = 1e37  # finite pixels beyond +-1e37 are read as +-1e37: float32 arithmetic on them overflowed
RGB_WEIGHTS = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def as_float32(data: Any) -> np.ndarray:
    """Pixels as float32, finite ones clipped to +-``FLOAT_LIMIT`` (NaN and +-inf stay what they are).

    float64 pixels beyond float32's range became inf when cast (and the user
    was told of infinite pixels the image does not have); pixels near
    3.4e38 overflowed the normalisation, so the network saw NaN.
    """
    data = np.asarray(data)
    if data.dtype.kind == "f" and data.dtype.itemsize >= 4:
        data = np.where(np.isfinite(data), np.clip(data, -FLOAT_LIMIT, FLOAT_LIMIT), data)
    return data.astype(np.float32, copy=False)


def sample_pixels(image: Any, max_pixels: int = MAX_SAMPLE_PIXELS) -> np.ndarray:
    """A strided sample of a (..., H, W) array, read lazily if the array is lazy."""
    shape = image.shape
    h, w = shape[-2], shape[-1]
    step = max(1, int(np.ceil(np.sqrt(h * w / max_pixels))))
    index = (Ellipsis, slice(None, None, step), slice(None, None, step))
    return np.asarray(image[index])


_NEIGHBOURS = np.ones((1, 3, 3), bool)
_NEIGHBOURS[0, 1, 1] = False


def lower_spikes(raw: np.ndarray, threshold: np.ndarray, *, dark: bool = False) -> np.ndarray:
    """Lower single pixels brighter than all 8 neighbours by more than ``threshold`` to their brightest neighbour.

    Hot camera pixels and shot-noise spikes are one pixel wide; a nucleus,
    blurred by the optics, never is. Left in, such a pixel looks like a tiny
    bright nucleus and grows false objects (and, when there are many, it
    squashes the percentile window). ``raw`` is (C, h, w), ``threshold`` one
    value per channel. ``dark=True`` raises lone *dark* pixels instead: in an
    image that will be inverted, those are the ones that end up bright. A
    pixel on the image's edge is judged by the neighbours it has.
    """
    raw = raw.astype(np.float32, copy=False)
    if dark:
        return -lower_spikes(-raw, threshold)
    brightest_neighbour = ndi.maximum_filter(raw, footprint=_NEIGHBOURS, mode="constant", cval=-np.inf)
    spike = (raw - brightest_neighbour > threshold.reshape(-1, 1, 1)) & np.isfinite(brightest_neighbour)
    return np.where(spike, brightest_neighbour, raw)


def sample_patches(image: Any, max_pixels: int = MAX_SAMPLE_PIXELS, side: int = 256) -> list[np.ndarray]:
    """Full-resolution (..., side, side) patches spread evenly over a large image, ``max_pixels`` in all.

    Despiking and the noise estimate need true neighbours, which a strided sample does not have.
    """
    h, w = image.shape[-2], image.shape[-1]
    count = max(1, max_pixels // (side * side))
    rows = max(1, min(round(np.sqrt(count * h / w)), count))
    cols = max(1, count // rows)
    ys = np.linspace(0, max(h - side, 0), rows).round().astype(int)
    xs = np.linspace(0, max(w - side, 0), cols).round().astype(int)
    return [np.asarray(image[..., y:y + side, x:x + side]) for y in ys for x in xs]


# the high-pass kernel of Immerkaer's noise estimate: blind to flat areas, ramps and straight edges
_NOISE_KERNEL = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)


def noise_level(patches: list[np.ndarray]) -> float:
    """Standard deviation of pixel noise in normalised (C, h, w) patches: the largest of the channels.

    A robust (median-based) version of Immerkaer's estimator: the kernel
    cancels smooth structure, so the median response is set by the noise of
    the background and the nuclei' interiors, not by their edges.
    """
    usable = [p for p in patches if min(p.shape[-2:]) >= 3]
    if not usable:
        return 0.0

    def median_response(channel: int) -> float:
        return float(np.median(np.concatenate(
            [np.abs(ndi.convolve(p[channel], _NOISE_KERNEL, mode="nearest")[1:-1, 1:-1]).ravel() for p in usable])))

    return max(map(median_response, range(usable[0].shape[0]))) / (0.6745 * 6.0)  # kernel gain 6, MAD -> sigma


def smoothing_radius(sigma: float) -> int:
    """How far :func:`scipy.ndimage.gaussian_filter` reads (its default truncation, 4 sigma)."""
    return int(4.0 * sigma + 0.5) if sigma > 0 else 0


@dataclass(frozen=True)
class Normalization:
    """Per-channel percentile window, whether to invert (bright background), spike threshold, smoothing.

    ``despike`` is a fraction of the window (``high - low``); 0 turns
    :func:`lower_spikes` off. ``smooth`` is the sigma (px) of a gaussian
    applied after normalising, chosen when the image was found noisy (0 = none).
    """

    low: tuple[float, ...]
    high: tuple[float, ...]
    invert: bool = False
    despike: float = 0.0
    smooth: float = 0.0
    nonfinite: bool = False  # the fitting sample held NaN or infinite pixels (see :meth:`finite`)
    blank: bool = False  # every sampled pixel of every channel had one value: nothing can be told apart

    @property
    def context(self) -> int:
        """Pixels a window must read beyond its edges to agree exactly with the whole image."""
        return (1 if self.despike else 0) + smoothing_radius(self.smooth)

    def treat(self, raw: np.ndarray) -> np.ndarray:
        """Despike, normalise and smooth a raw (C, h, w) window.

        Exact for pixels at least :attr:`context` px from a cut edge; at the
        image's own edges every window treats pixels as the whole image does.
        """
        raw = self.finite(raw)
        if self.despike:
            raw = lower_spikes(raw, self.spike_threshold(), dark=self.invert)
        out = self.apply(raw)
        if self.smooth:
            out = ndi.gaussian_filter(out, sigma=(0, self.smooth, self.smooth), mode="reflect")
        return out

    def spike_threshold(self) -> np.ndarray:
        """The spike threshold in raw intensity units, per channel."""
        span = np.maximum(np.asarray(self.high, np.float32) - np.asarray(self.low, np.float32), 1e-6)
        return self.despike * span

    def finite(self, raw: np.ndarray) -> np.ndarray:
        """NaN and -inf pixels become the window's low end, +inf its high end (pixel by pixel: tiles stay exact).

        A camera or a conversion can leave non-finite pixels; passed on, one
        of them made the network's output all NaN (no objects) or hung the
        seed search.
        """
        raw = raw.astype(np.float32, copy=False)
        bad = ~np.isfinite(raw)
        if not bad.any():
            return raw
        low = np.broadcast_to(np.asarray(self.low, np.float32)[:, None, None], raw.shape)
        high = np.broadcast_to(np.asarray(self.high, np.float32)[:, None, None], raw.shape)
        return np.where(bad, np.where(raw == np.inf, high, low), raw)

    def apply(self, window: np.ndarray) -> np.ndarray:
        """Map a (C, h, w) window to float32 where the chosen percentiles become 0 and 1."""
        low = np.asarray(self.low, dtype=np.float32)[:, None, None]
        high = np.asarray(self.high, dtype=np.float32)[:, None, None]
        out = (self.finite(window) - low) / np.maximum(high - low, 1e-6)
        if self.invert:
            out = 1.0 - out
        return out


def fit_normalization(channels_first: Any, settings: dict[str, Any]) -> Normalization:
    """Compute the percentiles of a (C, H, W) array once, from a sample.

    With ``despike`` set, the percentiles are fitted again after lowering
    spikes (see :func:`lower_spikes`) in full-resolution patches, so hot
    pixels cannot stretch the window, whatever the image's size. With
    ``denoise`` set (``{"above": level, "sigma": px}``), the same patches
    measure the noise (:func:`noise_level`, in units of the window); a noisier
    image is smoothed with that sigma before the network sees it.
    """
    low_q = float(settings.get("low", 1.0))
    high_q = float(settings.get("high", 99.8))
    despike = despike_setting(settings)
    denoise = denoise_setting(settings)
    image = sample_pixels(channels_first).astype(np.float32, copy=False)
    nonfinite = not np.isfinite(image).all()
    if nonfinite:
        image = np.where(np.isfinite(image), image, np.nan)  # fitted on the finite pixels alone
    sample = image.reshape(image.shape[0], -1)
    whole = image.shape[-2:] == tuple(channels_first.shape[-2:])
    blank = _is_blank(sample) and (whole or _is_blank_whole(channels_first))
    low, high = _percentile_window(sample, low_q, high_q)
    invert_setting = settings.get("invert", "auto")
    if invert_setting == "auto":
        invert = bool(sample.shape[0] == 1 and looks_bright_background(sample[0][~np.isnan(sample[0])], low[0], high[0]))
    else:
        invert = bool(invert_setting) and invert_setting != "no"
    if despike == 0 and denoise is None:
        return Normalization(tuple(map(float, low)), tuple(map(float, high)), invert, nonfinite=nonfinite,
                             blank=blank)
    # both need true neighbours: the whole image, or full-resolution patches of a large one
    full_resolution = image.shape[-2:] == tuple(channels_first.shape[-2:])
    patches = [image] if full_resolution else [np.asarray(p, np.float32) for p in sample_patches(channels_first)]
    if nonfinite:  # patches see the window's ends where pixels are not finite, as the network's input will
        rough = Normalization(tuple(map(float, low)), tuple(map(float, high)), invert)
        patches = [rough.finite(p) for p in patches]
    if despike > 0:
        rough = Normalization(tuple(map(float, low)), tuple(map(float, high)), invert, despike)
        patches = [lower_spikes(p, rough.spike_threshold(), dark=invert) for p in patches]
        low, high = _percentile_window(np.concatenate([p.reshape(len(low), -1) for p in patches], axis=1),
                                       low_q, high_q)
    fitted = Normalization(tuple(map(float, low)), tuple(map(float, high)), invert, despike, nonfinite=nonfinite,
                           blank=blank)
    if denoise is not None and noise_level([fitted.apply(p) for p in patches]) > denoise[0]:
        fitted = replace(fitted, smooth=denoise[1])
    return fitted


def despike_setting(settings: dict[str, Any]) -> float:
    """The ``despike`` fraction of a model's normalisation settings (0 = off), checked."""
    value = settings.get("despike") or 0.0
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ValueError(f"normalization 'despike' must be a number from 0 to below 1, not {value!r}")
    return float(value)


def denoise_setting(settings: dict[str, Any]) -> tuple[float, float] | None:
    """The ``denoise`` setting as (noise level above which to smooth, sigma in px), checked; None = off."""
    value = settings.get("denoise")
    if value is None:
        return None
    try:
        above, sigma = float(value["above"]), float(value["sigma"])
    except (TypeError, KeyError, ValueError):
        raise ValueError(f'normalization "denoise" must look like {{"above": 0.035, "sigma": 0.55}}, not {value!r}') from None
    if not (0 < above < 1 and 0 < sigma <= 5):
        raise ValueError(f'normalization "denoise" needs 0 < above < 1 and 0 < sigma <= 5 (px), not {value!r}')
    return above, sigma


def _is_blank(sample: np.ndarray) -> bool:
    """Whether every channel of a (C, N) sample holds one value (NaN ignored; no finite pixel counts as blank)."""
    finite = sample[:, ~np.isnan(sample).any(axis=0)] if np.isnan(sample).any() else sample
    return finite.size == 0 or bool((finite.max(axis=1) == finite.min(axis=1)).all())


def _is_blank_whole(channels_first: Any, rows: int = 1024) -> bool:
    """:func:`_is_blank` on every pixel, read in bands of ``rows``: a strided sample can step over a few nuclei.

    Only run when the sample was blank (rare), so reading a lazy image whole costs nothing in the usual case.
    """
    height, first = channels_first.shape[-2], None
    for top in range(0, height, rows):
        band = np.asarray(channels_first[..., top:top + rows, :], np.float32).reshape(channels_first.shape[0], -1)
        band = band[:, np.isfinite(band).all(axis=0)]  # as the sample: NaN and infinities left out
        if band.size == 0:
            continue
        if first is None:
            first = band[:, :1]
        if not (band == first).all():
            return False
    return True


def _percentile_window(sample: np.ndarray, low_q: float, high_q: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel (low, high) percentiles of a (C, N) sample, NaN ignored; a constant channel keeps its full range."""
    if np.isnan(sample).all(axis=1).any():  # a channel without one finite pixel: any window will do
        sample = np.where(np.isnan(sample).all(axis=1, keepdims=True), 0.0, sample)
    low = np.nanpercentile(sample, low_q, axis=1)
    high = np.nanpercentile(sample, high_q, axis=1)
    flat = high <= low  # constant channel: fall back to its full range
    if np.any(flat):
        low = np.where(flat, np.nanmin(sample, axis=1), low)
        high = np.where(flat, np.maximum(np.nanmax(sample, axis=1), low + 1), high)
    return low, high


def looks_bright_background(values: np.ndarray, low: float, high: float) -> bool:
    """True for brightfield and stained images: the background sits near the top of the window.

    Two signs must agree: the median pixel is in the upper half, and more
    pixels sit near the top than near the bottom (background is flat and
    gathers at one end; objects spread over the middle). Either sign alone
    misjudges some fluorescence -- the median a confluent field, the tails a
    saturated one on an uneven background -- and fluorescence comes first.
    """
    if values.size == 0:
        return False
    scaled = (values - low) / max(high - low, 1e-6)
    return bool(np.median(scaled) > 0.5 and np.mean(scaled > 0.8) > np.mean(scaled < 0.2))


class PreparedImage:
    """A lazy (C, H, W) float32 view of a 2D image, normalised for a model.

    ``source`` is (H, W), (H, W, 3|4) with ``rgb=True``, or (C, H, W). Colour
    images are reduced to gray when the model takes one channel.
    """

    def __init__(
        self,
        source: Any,
        *,
        in_channels: int,
        normalization_settings: dict[str, Any],
        rgb: bool = False,
        normalization: Normalization | None = None,
    ) -> None:
        if rgb:
            if source.ndim != 3 or source.shape[-1] not in (3, 4):
                raise ValueError(f"an RGB image must have shape (H, W, 3 or 4), not {tuple(source.shape)}")
        elif source.ndim not in (2, 3):
            raise ValueError(f"expected a 2D image, got shape {tuple(source.shape)}")
        self.source = source
        self.rgb = rgb
        self.in_channels = in_channels
        self._gray = False
        if rgb:
            channels = 3
        elif source.ndim == 2:
            channels = 1
        else:
            channels = source.shape[0]
        if channels != in_channels:
            if in_channels == 1 and (rgb or channels in (3, 4)):
                self._gray = True
            else:
                raise ValueError(
                    f"the model expects {in_channels} channel(s) but the image has {channels}"
                )
        self.shape = (in_channels, *plane_size(source, rgb))
        self.ndim = 3
        self.dtype = np.dtype(np.float32)
        self.normalization = normalization or fit_normalization(_RawView(self), normalization_settings)

    def read_raw(self, ys: slice, xs: slice) -> np.ndarray:
        """(C, h, w) float32 before normalisation."""
        if self.rgb:
            window = as_float32(self.source[ys, xs, :3])
            window = np.moveaxis(window, -1, 0)
        elif self.source.ndim == 2:
            window = as_float32(self.source[ys, xs])[None]
        else:
            window = as_float32(self.source[:, ys, xs])
        if self._gray:
            window = np.tensordot(RGB_WEIGHTS, window[:3], axes=1)[None]
        return window

    def __getitem__(self, index: tuple) -> np.ndarray:
        ys, xs = _spatial_slices(index)
        norm = self.normalization
        context = norm.context
        if not context:
            return norm.apply(self.read_raw(ys, xs))
        # read a margin on every side, so a window's edge pixels are despiked and smoothed with their true
        # neighbours: any window then agrees exactly with the whole image (no seams between tiles)
        _, h, w = self.shape
        (y0, y1, y_step), (x0, x1, x_step) = ys.indices(h), xs.indices(w)
        if y_step != 1 or x_step != 1:  # read the plain window, then step through it
            rows, cols = range(y0, y1, y_step), range(x0, x1, x_step)
            if not len(rows) or not len(cols):
                return norm.apply(self.read_raw(ys, xs))
            box = self[:, min(rows):max(rows) + 1, min(cols):max(cols) + 1]
            return box[:, ::y_step, ::x_step]  # a range starts at its own end of the box, either direction
        if y1 <= y0 or x1 <= x0:
            return norm.apply(self.read_raw(ys, xs))
        hy0, hx0 = max(y0 - context, 0), max(x0 - context, 0)
        raw = self.read_raw(slice(hy0, min(y1 + context, h)), slice(hx0, min(x1 + context, w)))
        return norm.treat(raw)[:, y0 - hy0:y1 - hy0, x0 - hx0:x1 - hx0]

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        out = self[:, :, :]
        return out if dtype is None else out.astype(dtype)


class _RawView:
    """Un-normalised view used to fit the normalisation."""

    def __init__(self, prepared: PreparedImage) -> None:
        self.prepared = prepared
        self.shape = prepared.shape

    def __getitem__(self, index: tuple) -> np.ndarray:
        ys, xs = _spatial_slices(index)
        return self.prepared.read_raw(ys, xs)


def _spatial_slices(index: tuple) -> tuple[slice, slice]:
    if not isinstance(index, tuple):
        index = (index,)
    if index and index[0] is Ellipsis:
        index = index[1:]
    if len(index) == 3:
        index = index[1:]
    if len(index) != 2 or not all(isinstance(s, slice) for s in index):
        raise IndexError("PreparedImage supports [..., ys, xs] slicing only")
    return index[0], index[1]
