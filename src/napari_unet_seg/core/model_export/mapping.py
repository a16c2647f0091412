"""What of a model's metadata bioimage.io can express, and what it cannot: plain data, no bioimageio import.

bioimage.io (spec 0.5) describes preprocessing as a list of standard
operations. Our percentile window maps to ``scale_range`` per image and
channel, a fixed inversion to ``scale_linear``; everything decided per image
or per pixel neighbourhood (automatic inversion, despiking, denoising,
rescaling to the model's object size) and the watershed that turns maps into
labels do not map, and :func:`not_mapped` says so in sentences for the package's
documentation. :func:`imported_normalization` and :func:`imported_activation`
read a package's operations back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..inference.preprocess import denoise_setting, despike_setting

EPS = 1e-6  # our window's floor (``Normalization.apply``) and scale_range's eps
FLOAT_TYPES = ("float32", "float64")  # ensure_dtype steps that change nothing for our float32 pipeline


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


def imported_normalization(operations: Sequence[tuple[str, dict[str, Any]]]) -> ExportedNormalization:
    """The reverse of :meth:`ExportedNormalization.operations`: a package's preprocessing as our percentile window.

    ValueError, in a sentence, for any step napari-unet-seg cannot do the same way.
    """
    window: tuple[float, float] | None = None
    invert = False
    for op, kwargs in operations:
        if op == "ensure_dtype" and kwargs.get("dtype") in FLOAT_TYPES:
            continue
        if op == "scale_range" and window is None:
            window = _percentiles(kwargs)
        elif op == "scale_linear" and window is not None and not invert and _is_inversion(kwargs):
            invert = True
        else:
            raise ValueError(f"its preprocessing step {_step(op, kwargs)} has no napari-unet-seg equivalent "
                             "(napari-unet-seg scales each image's percentiles to 0-1, then may invert: 1 - x)")
    if window is None:
        raise ValueError("its preprocessing does not scale each image's percentiles to 0-1 (scale_range), as "
                         "napari-unet-seg's normalisation does")
    return ExportedNormalization(*window, invert)


def _percentiles(kwargs: dict[str, Any]) -> tuple[float, float]:
    """scale_range's window, when it is ours: per image and channel (0.4: ``mode: per_sample``), no reference."""
    axes = kwargs.get("axes", [])
    spatial = set(axes if isinstance(axes, list) else str(axes))  # spec 0.5: ["y", "x"]; 0.4: "xy"
    if spatial != {"x", "y"} or kwargs.get("mode", "per_sample") != "per_sample" or kwargs.get("reference_tensor"):
        raise ValueError(f"its preprocessing step {_step('scale_range', kwargs)} is not per image and channel "
                         "over y and x, as napari-unet-seg's normalisation is")
    low, high = float(kwargs.get("min_percentile", 0.0)), float(kwargs.get("max_percentile", 100.0))
    if not (0 <= low < high <= 100 and high > 1):
        raise ValueError(f"its percentile window {low:g}-{high:g} has no napari-unet-seg equivalent")
    return low, high


def _is_inversion(kwargs: dict[str, Any]) -> bool:
    return kwargs.get("gain") == -1 and kwargs.get("offset") == 1


def _step(op: str, kwargs: dict[str, Any]) -> str:
    """An operation for a message: with its arguments when they, not the operation, are what does not map."""
    if op not in ("ensure_dtype", "scale_range", "scale_linear", "softmax"):
        return op
    return f"{op} {str({k: v for k, v in kwargs.items() if v is not None})[:120]}"


def imported_activation(operations: Sequence[tuple[str, dict[str, Any]]]) -> str | None:
    """The package's output activation ("sigmoid", "softmax" over channels) or None: it outputs logits."""
    activation = None
    for op, kwargs in operations:
        if op == "ensure_dtype" and kwargs.get("dtype") in FLOAT_TYPES:
            continue
        if activation is None and (op == "sigmoid" or (op == "softmax" and kwargs.get("axis", "channel") == "channel")):
            activation = op
            continue
        raise ValueError(f"its postprocessing step {_step(op, kwargs)} has no napari-unet-seg equivalent "
                         "(napari-unet-seg reads the network's logits through a sigmoid or a softmax)")
    return activation


def restored_normalization(imported: ExportedNormalization, attached: dict[str, Any] | None) -> dict[str, Any]:
    """Our settings for an imported package: the attached model file's own, when the package's agree with them.

    An exported package fixes what ours decides per image (inversion) and
    drops what it cannot express (despiking, denoising); the model file it
    attaches still holds them. They come back only when the package's window
    and inversion are what that file would give, so an edited package is
    imported as it now reads.
    """
    if not isinstance(attached, dict) or attached.get("method", "percentile") != "percentile":
        return imported.settings()
    try:
        window = float(attached.get("low", 1.0)), float(attached.get("high", 99.8))
    except (TypeError, ValueError):
        return imported.settings()
    mode = attached.get("invert", "auto")
    if window == (imported.low, imported.high) and (mode == "auto" or (bool(mode) and mode != "no") == imported.invert):
        return dict(attached)
    return imported.settings()


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
    notes.append(
        "**The image's edges.** A runner pads the image's edges by the halo, its own way (zeros, or mirroring); "
        "napari-unet-seg does not pad them so, and the maps within about one halo of the edges may differ a little "
        "from napari-unet-seg's. Farther in, blocks of any size the package allows give napari-unet-seg's maps.")
    if metadata.get("task") == "instances":
        notes.append(
            "**Labels.** The package outputs the network's two maps (probabilities, see Outputs). napari-unet-seg "
            "turns them into one label per object with a seeded watershed, which bioimage.io cannot express; "
            "see *From maps to labels* below.")
    return notes
