"""Checking a model file before anything is built from it: its metadata, and its tensors' shapes.

A damaged or hostile file must fail in one clear line, quickly: metadata
that declares an enormous network would otherwise allocate gigabytes before
the weights are even compared. The network the metadata describes is built
on PyTorch's "meta" device (shapes only, no memory) and compared with the
shapes in the file's header; only then is anything allocated.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from .unet import UNet

TASKS = ("semantic", "instances")
ARCHITECTURE_LIMITS = {"in_channels": (1, 64), "num_classes": (1, 1024), "depth": (1, 8), "base_channels": (1, 512)}
SAFETENSORS_DTYPES = {"F32", "F16", "BF16", "I64"}


class ModelFileError(ValueError):
    """A model file or name that cannot be used; the message is one clear line."""


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def architecture(metadata: dict[str, Any], name: str) -> dict[str, int]:
    """The U-Net's constructor arguments, each an integer within sane bounds."""
    arch = metadata.get("architecture")
    if not isinstance(arch, dict):
        raise ModelFileError(f"{name}: the metadata describes no architecture")
    out = {}
    for key, (low, high) in ARCHITECTURE_LIMITS.items():
        value = arch.get(key)
        if not _is_int(value) or not low <= value <= high:
            raise ModelFileError(f"{name}: architecture {key} must be a whole number from {low} to {high}, "
                                 f"not {value!r}")
        out[key] = value
    return out


def check_metadata(metadata: Any, name: str, newest_version: int) -> None:
    """Raise a one-line :class:`ModelFileError` unless the metadata is well formed."""
    if not isinstance(metadata, dict) or metadata.get("format") != "napari-unet-seg":
        raise ModelFileError(f"{name} is not a napari-unet-seg model file")
    version = metadata.get("format_version", 0)
    if not _is_int(version) or version < 0:
        raise ModelFileError(f"{name}: format_version must be a whole number, not {version!r}")
    if version > newest_version:
        raise ModelFileError(f"{name} was written by a newer napari-unet-seg; please upgrade the plugin")
    if metadata.get("task") not in TASKS:
        raise ModelFileError(f"{name}: unknown task {metadata.get('task')!r} (expected one of {', '.join(TASKS)})")
    arch = architecture(metadata, name)
    if metadata["task"] == "instances" and arch["num_classes"] != 2:
        raise ModelFileError(f"{name}: an instance model has 2 outputs, not {arch['num_classes']}")
    names = metadata.get("class_names", [])
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ModelFileError(f"{name}: class_names must be a list of names")
    for key in ("normalization", "postprocess", "training", "input"):
        if not isinstance(metadata.get(key, {}), dict):
            raise ModelFileError(f"{name}: {key} must be a JSON object")
    diameter = metadata.get("object_diameter")
    if diameter is not None and not (_is_number(diameter) and diameter > 0):
        raise ModelFileError(f"{name}: object_diameter must be a positive number of pixels, not {diameter!r}")
    band = metadata.get("auto_band", [0.75, 1.7])
    if not (isinstance(band, list) and len(band) == 2 and all(_is_number(b) and b > 0 for b in band)
            and band[0] <= band[1]):
        raise ModelFileError(f"{name}: auto_band must be two positive numbers, low first, not {band!r}")
    if not isinstance(metadata.get("lineage", []), list):
        raise ModelFileError(f"{name}: lineage must be a list")
    for key, value in metadata.get("postprocess", {}).items():
        if not _is_number(value):
            raise ModelFileError(f"{name}: post-processing setting {key!r} must be a number, not {value!r}")
    kind = metadata["architecture"].get("type", "UNet")
    if kind != "UNet":  # the weights of another network, however well their shapes fit
        raise ModelFileError(f"{name}: its network is {kind!r}, not this plugin's U-Net")
    channels = metadata.get("input", {}).get("channels", arch["in_channels"])
    if not _is_int(channels) or channels != arch["in_channels"]:  # images would be fed as one, read as the other
        raise ModelFileError(f"{name}: its input says {channels!r} channel(s) but its network takes "
                             f"{arch['in_channels']}: the metadata contradicts the weights")
    norm = metadata.get("normalization", {})
    low, high = norm.get("low", 1.0), norm.get("high", 99.8)
    if not (_is_number(low) and _is_number(high) and 0 <= low < high <= 100):
        raise ModelFileError(f"{name}: normalization low and high must be percentiles, low first (0-100), not "
                             f"{low!r} and {high!r}")


def expected_shapes(arch: dict[str, int]) -> dict[str, tuple[int, ...]]:
    """The tensor shapes of the U-Net ``arch`` describes, computed without allocating its weights."""
    with torch.device("meta"):
        net = UNet(**arch)
    return {key: tuple(value.shape) for key, value in net.state_dict().items()}


def check_tensors(header: dict[str, Any], arch: dict[str, int], name: str) -> None:
    """The file's tensors must be exactly the network's: same names, shapes and a float (or count) type."""
    expected = expected_shapes(arch)
    stored = {k: v for k, v in header.items() if k != "__metadata__"}
    missing, extra = sorted(set(expected) - set(stored)), sorted(set(stored) - set(expected))
    if missing or extra:
        which = f"missing {missing[0]}" if missing else f"unexpected {extra[0]!r}"  # a file's name: escaped
        raise ModelFileError(f"{name}: the weights do not match the architecture in its metadata ({which})")
    for key, shape in expected.items():
        entry = stored[key]
        if not isinstance(entry, dict) or entry.get("dtype") not in SAFETENSORS_DTYPES \
                or tuple(entry.get("shape", ())) != shape:
            found = entry.get("shape") if isinstance(entry, dict) else "?"
            raise ModelFileError(f"{name}: tensor {key} has shape {found!r}, the architecture in its metadata needs "
                                 f"{list(shape)}")  # !r: the file's text, escaped to one line
