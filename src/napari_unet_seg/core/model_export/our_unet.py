"""Recognising napari-unet-seg's U-Net in a bioimage.io package: by its kwargs, its tensors and what it computes.

The package's Python source is never imported, so it cannot say what the
network is; what it does can. The weights (a PyTorch pickle) are read with
``torch.load(weights_only=True)``, the unpickler that builds tensors and
nothing else; they must be exactly the tensors of our U-Net built from the
package's kwargs; and that network, fed the package's test input through our
own normalisation, must reproduce the package's test output within the
tolerance ``bioimageio test`` allows.
"""

from __future__ import annotations

import hashlib
import inspect
import io
import math
import pickle  # only for its exception: weights are read by torch's safe loader
import re

import numpy as np
import torch

from ..common.errors import first_line
from ..inference.preprocess import fit_normalization
from ..model.schema import ModelFileError, architecture, expected_shapes
from ..model.unet import UNet
from .description import PackageDescription
from .mapping import ExportedNormalization
from .package import ImportRefused, PackageFiles

OUR_LIBRARY = "napari_unet_seg.core.model.unet"  # a package may name our class instead of shipping its source
AXES = ("batch", "channel", "space", "space")
TOLERANCE = 1e-3  # absolute and relative, as `bioimageio test` by default
MAX_TEST_TENSOR_BYTES = 1_000_000_000


def our_architecture(descr: PackageDescription) -> dict[str, int]:
    """The package's kwargs as our U-Net's, when it names our U-Net, with our arguments and axes (b, c, y, x)."""
    if descr.weights is None:
        formats = ", ".join(descr.weight_formats) or "none"
        raise ImportRefused(f"it has no pytorch_state_dict weights (only {formats}); napari-unet-seg imports "
                            "PyTorch state-dict weights of its U-Net")
    if descr.callable != "UNet" or descr.library not in (None, OUR_LIBRARY):
        raise ImportRefused(f"its network is {descr.architecture}, not napari-unet-seg's U-Net")
    defaults = {k: p.default for k, p in inspect.signature(UNet).parameters.items()}
    extra = sorted(set(descr.kwargs) - set(defaults))
    if extra:
        raise ImportRefused(f"its network {descr.architecture} takes {', '.join(extra)}: not napari-unet-seg's "
                            f"U-Net, whose only arguments are {', '.join(defaults)}")
    try:
        arch = architecture({"architecture": {**defaults, **descr.kwargs}}, "its network")
    except ModelFileError as exc:
        raise ImportRefused(str(exc)) from None
    for which, axes in (("input", descr.input_axes), ("output", descr.output_axes)):
        if axes != AXES:
            raise ImportRefused(f"its {which} axes are {', '.join(axes)}; napari-unet-seg's U-Net works on "
                                "batch, channel, y, x")
    return arch


def weights_bytes(arch: dict[str, int]) -> int:
    """The most bytes a state dict of this U-Net can need (float64 tensors), computed without allocating it."""
    return sum(8 * math.prod(shape) for shape in expected_shapes(arch).values()) + 1_000_000


def load_network(files: PackageFiles, descr: PackageDescription, arch: dict[str, int]) -> tuple[UNet, str]:
    """Our U-Net with the package's weights (and their SHA-256), read without running any code they hold."""
    assert descr.weights is not None
    expected = expected_shapes(arch)
    data = files.read(descr.weights, "weights file", weights_bytes(arch))
    digest = hashlib.sha256(data).hexdigest()
    if descr.weights_sha256 and descr.weights_sha256.lower() != digest:
        raise ImportRefused(f"its weights file {descr.weights} does not match the SHA-256 its description gives "
                            "(changed or damaged since it was packaged)")
    if tuple(int(part) for part in re.findall(r"\d+", torch.__version__)[:2]) < (2, 6):
        raise ImportRefused(f"importing needs PyTorch 2.6 or newer (this is {torch.__version__}): older versions' "
                            "safe loader can be made to run code")
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:  # not a pickle, or one of more than tensors (torch's own text is a page long)
        raise ImportRefused(f"its weights file {descr.weights} is not a state dict that loads without running code "
                            "(PyTorch's safe loader reads tensors only, and nothing in it ran)") from None
    except Exception as exc:  # noqa: BLE001 - whatever else a foreign file makes torch raise: one line
        raise ImportRefused(f"its weights file {descr.weights} is not a PyTorch state dict "
                            f"({first_line(exc, 160)})") from None
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                              for k, v in state.items()):
        raise ImportRefused(f"its weights file {descr.weights} holds a {type(state).__name__}, not a state dict "
                            "of named tensors")
    missing, extra = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    if missing or extra:
        which = f"it lacks {missing[0]}" if missing else f"it has {extra[0]}"
        raise ImportRefused(f"its weights do not fit napari-unet-seg's U-Net with its kwargs ({which}): "
                            f"{descr.architecture} is another network")
    for key, shape in expected.items():
        if tuple(state[key].shape) != shape:
            raise ImportRefused(f"its weights do not fit napari-unet-seg's U-Net with its kwargs: {key} is "
                                f"{list(state[key].shape)}, the U-Net needs {list(shape)}")
    net = UNet(**arch)
    try:
        net.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()}, strict=True)
    except RuntimeError as exc:
        raise ImportRefused(f"its weights do not load into napari-unet-seg's U-Net: {first_line(exc, 160)}") from None
    return net.eval(), digest


def _test_tensor(files: PackageFiles, name: str, what: str) -> np.ndarray:
    try:
        return np.load(io.BytesIO(files.read(name, what, MAX_TEST_TENSOR_BYTES)), allow_pickle=False)
    except ImportRefused:
        raise
    except Exception as exc:  # noqa: BLE001 - a damaged or pickled .npy: one line, and no code runs
        raise ImportRefused(f"its {what} {name} is not a readable .npy array ({first_line(exc, 120)})") from None


def reproduce_test_output(files: PackageFiles, descr: PackageDescription, net: UNet, norm: ExportedNormalization,
               activation: str | None) -> float:
    """The largest difference between our result on the package's test input and its test output; refused beyond
    the tolerance ``bioimageio test`` allows."""
    raw = _test_tensor(files, descr.test_input, "test input")
    expected = _test_tensor(files, descr.test_output, "test output")
    if raw.ndim != 4 or raw.shape[1] != net.in_channels:
        raise ImportRefused(f"its test input has shape {list(raw.shape)}; its U-Net takes (batch, "
                            f"{net.in_channels}, y, x)")
    if raw.shape[0] < 1 or min(raw.shape[-2:]) < net.size_multiple:
        raise ImportRefused(f"its test input has shape {list(raw.shape)}: nothing to check its weights on")
    if raw.shape[-2] % net.size_multiple or raw.shape[-1] % net.size_multiple:
        raise ImportRefused(f"its test input is {raw.shape[-2]} x {raw.shape[-1]} px, not a multiple of "
                            f"{net.size_multiple} as its U-Net needs")
    shape = (raw.shape[0], net.num_classes, *raw.shape[-2:])
    if expected.shape != shape:
        raise ImportRefused(f"its test output has shape {list(expected.shape)}; its U-Net gives {list(shape)}")
    ours = np.empty(shape, np.float32)
    with torch.no_grad():
        for b in range(raw.shape[0]):
            image = raw[b].astype(np.float32)
            x = fit_normalization(image, norm.settings()).apply(image)
            logits = net(torch.from_numpy(np.ascontiguousarray(x))[None])
            out = logits.softmax(1) if activation == "softmax" else logits.sigmoid() if activation else logits
            ours[b] = out[0].numpy()
    expected = expected.astype(np.float32)
    difference = float(np.nanmax(np.abs(ours - expected))) if ours.size else 0.0
    if not np.allclose(ours, expected, rtol=TOLERANCE, atol=TOLERANCE):
        raise ImportRefused(f"napari-unet-seg's U-Net with its weights does not reproduce its test output (largest "
                            f"difference {difference:.3g}): {descr.architecture} computes something else")
    return difference
