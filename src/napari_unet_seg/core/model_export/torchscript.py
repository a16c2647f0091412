"""TorchScript weights for a bioimage.io package, for runners without Python (deepImageJ in Fiji, Java tools).

A state dict needs our ``unet.py`` to rebuild the network; TorchScript holds
the computation itself. It is made by tracing an eval-mode CPU copy whose
BatchNorms are folded into their convolutions (:func:`~..model.fold.fold_batchnorm`,
computed in float64): the same outputs to rounding, and fewer layers for
the runner. A trace records the operations of one call at one size; our U-Net
branches on no size, so the record holds for any batch and for every height
and width that are multiples of ``2**depth``. :func:`save_torchscript` checks
that at another batch and size, against the network itself, before the file
exists, so a package never carries weights that only work at its test size.
"""

from __future__ import annotations

import copy
import io
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

from ..model.fold import fold_batchnorm
from ..model.lock import exclusive
from ..model.unet import UNet
from .our_unet import TOLERANCE


@contextmanager
def _quiet_deprecation() -> Iterator[None]:
    """torch calls TorchScript deprecated in favour of torch.export, whose files no bioimage.io runner reads."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*torch\.jit.*deprecated", category=DeprecationWarning)
        yield


def cpu_copy(net: UNet) -> UNet:
    """An eval-mode float32 copy of ``net`` on the CPU, where the package's weights are made (``net`` unchanged)."""
    with exclusive(net):
        return copy.deepcopy(net).to("cpu", torch.float32).eval().requires_grad_(False)


def traced_network(net: UNet, shape: tuple[int, ...]) -> torch.jit.ScriptModule:
    """``net`` (an eval-mode CPU copy) with BatchNorm folded, traced on an input of ``shape`` (B, C, H, W)."""
    folded = fold_batchnorm(net)
    with _quiet_deprecation(), torch.no_grad():
        return torch.jit.trace(folded, torch.zeros(shape), check_trace=False)


def other_shape(net: UNet, shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    """A small input shape unlike ``shape`` (another batch, height and width) that the network accepts."""
    step = net.size_multiple
    height, width = (2 * step, 3 * step) if tuple(shape[-2:]) != (2 * step, 3 * step) else (3 * step, 2 * step)
    return shape[0] + 1, shape[1], height, width


def trace_mismatch(traced: torch.jit.ScriptModule, net: UNet, shape: tuple[int, ...]) -> str | None:
    """How the traced module's logits differ from ``net``'s on a random input of ``shape``; None when they agree
    within the tolerance ``bioimageio test`` allows."""
    x = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ours, theirs = net(x), traced(x)
    if theirs.shape != ours.shape:
        return f"it gives shape {list(theirs.shape)} where the network gives {list(ours.shape)}"
    if not torch.allclose(theirs, ours, rtol=TOLERANCE, atol=TOLERANCE):
        return f"largest difference {float((theirs - ours).abs().max()):.3g}"
    return None


def save_torchscript(net: UNet, shape: tuple[int, ...], path: Path) -> None:
    """Write ``net`` traced at ``shape`` to ``path``; ValueError when the trace computes something else than
    ``net`` at another batch and size."""
    eager = cpu_copy(net)
    traced = traced_network(eager, shape)
    other = other_shape(eager, shape)
    problem = trace_mismatch(traced, eager, other)
    if problem:
        raise ValueError(f"the TorchScript trace of the network does not reproduce it on {other[0]} images of "
                         f"{other[-2]} x {other[-1]} px ({problem})")
    buffer = io.BytesIO()
    with _quiet_deprecation():
        torch.jit.save(traced, buffer)
    path.write_bytes(buffer.getvalue())
