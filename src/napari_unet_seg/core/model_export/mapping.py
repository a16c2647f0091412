"""What of a model's metadata bioimage.io can express, and what it cannot: plain data, no bioimageio import.

bioimage.io (spec 0.5) describes preprocessing as a list of standard
operations. Our percentile window maps to ``scale_range`` per image and
channel, a fixed inversion to ``scale_linear``; everything decided per image
or per pixel neighbourhood (automatic inversion, despiking, denoising,
rescaling to the model's object size) and the watershed that turns maps into
labels do not map, and :func:`not_mapped` says so in sentences for the package's
documentation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..inference.preprocess import denoise_setting, despike_setting

EPS = 1e-6  # our window's floor (``Normalization.apply``) and scale_range's eps


@dataclass(frozen=True)
class ExportedNormalization:
    """The part of a model's normalisation a bioimage.io package carries.

    ``low`` and ``high`` are percentiles of each image's pixels, per channel;
    ``invert`` is fixed for the package (ours may decide it per image).
    """

    low: float
    high: float
    invert: bool

    def settings(self) -> dict[str, Any]:
        """The same normalisation as our own settings: what the package's test output is computed with."""
        return {"method": "percentile", "low": self.low, "high": self.high, "invert": self.invert}

    def operations(self) -> list[tuple[str, dict[str, Any]]]:
        """bioimage.io preprocessing, as (operation id, kwargs) pairs, in order."""
        ops: list[tuple[str, dict[str, Any]]] = [
            ("ensure_dtype", {"dtype": "float32"}),
            ("scale_range", {"axes": ["y", "x"], "min_percentile": self.low, "max_percentile": self.high,
                             "eps": EPS}),
        ]
        if self.invert:
            ops.append(("scale_linear", {"gain": -1.0, "offset": 1.0}))
        return ops


def exported_normalization(settings: dict[str, Any], invert: bool) -> ExportedNormalization:
    """The model's percentile window with ``invert`` fixed; ValueError for a method bioimage.io cannot express."""
    method = settings.get("method", "percentile")
    if method != "percentile":
        raise ValueError(f"the model's normalisation {method!r} has no bioimage.io equivalent")
    low, high = float(settings.get("low", 1.0)), float(settings.get("high", 99.8))
    if not (0 <= low < high <= 100 and high > 1):
        raise ValueError(f"the model's percentile window {low:g}-{high:g} has no bioimage.io equivalent")
    return ExportedNormalization(low, high, invert)


def not_mapped(metadata: dict[str, Any], invert: bool) -> list[str]:
    """Sentences for the documentation: each setting of the model the package cannot carry, and what to do."""
    settings = metadata.get("normalization", {})
    notes = []
    mode = settings.get("invert", "auto")
    if mode == "auto":
        notes.append(
            "**Automatic inversion.** napari-unet-seg inverts each image whose background is bright "
            "(brightfield, stained tissue). The package cannot decide per image: it "
            + ("always inverts." if invert else "never inverts; invert bright-background images yourself first."))
    if despike_setting(settings):
        notes.append(
            f"**Despiking.** napari-unet-seg lowers single pixels brighter than all 8 neighbours by more than "
            f"{despike_setting(settings):g} of the percentile window (hot pixels) before normalising; the "
            "package does not. Images with many hot pixels may give false small objects.")
    denoise = denoise_setting(settings)
    if denoise is not None:
        notes.append(
            f"**Denoising.** napari-unet-seg smooths an image whose measured noise exceeds {denoise[0]:g} (in "
            f"units of the percentile window) with a gaussian of sigma {denoise[1]:g} px; the package does not.")
    notes.append(
        "**Percentiles on large images.** napari-unet-seg fits the percentile window once per image on a strided "
        "sample of at most 4 million pixels and uses it for every tile; a bioimage.io runner computes it on "
        "the tensor it is given (per tile, if it tiles without a whole-image statistic).")
    if metadata.get("input", {}).get("channels", 1) == 1:
        notes.append("**Colour images.** napari-unet-seg turns RGB into gray (0.299 R + 0.587 G + 0.114 B) for "
                     "this one-channel model; give the package one channel.")
    diameter = metadata.get("object_diameter")
    if diameter:
        notes.append(
            f"**Object size.** The network works best on objects about {diameter:g} px across; napari-unet-seg "
            "measures the objects in each image and resizes it when they are far from that size. The package "
            "does not resize: resize your images first if their objects are much smaller or larger.")
    if metadata.get("task") == "instances":
        notes.append(
            "**Labels.** The package outputs the network's two maps (probabilities, see Outputs). napari-unet-seg "
            "turns them into one label per object with a seeded watershed, which bioimage.io cannot express; "
            "see *From maps to labels* below.")
    return notes
