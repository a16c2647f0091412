"""BatchNorm folded into the convolution before it: the same outputs in eval mode, one layer less per conv.

In eval mode a BatchNorm is a fixed per-channel affine map, so it can be
merged into the preceding convolution's weights and bias. The folded copy
runs fewer kernels and keeps no BatchNorm output alive, which lowers the peak
memory of a window. The network itself is never changed: :func:`inference_net`
returns a cached folded copy per device, precision and memory format, made
again only when the weights change (training, loading weights). Two devices
therefore never share one module, and none is moved back and forth between runs.
"""

from __future__ import annotations

import copy
import threading
import weakref
from itertools import pairwise

import torch
from torch import nn

from .devices import canonical_device
from .sign_relu import for_fast_inference

_CACHE: weakref.WeakKeyDictionary[nn.Module, dict] = weakref.WeakKeyDictionary()
_CACHE_GUARD = threading.Lock()


def _foldable_pairs(net: nn.Module) -> list[tuple[nn.Sequential, int]]:
    """(sequential, index) of every Conv2d directly followed by a BatchNorm2d of matching width."""
    pairs = []
    for module in net.modules():
        if not isinstance(module, nn.Sequential):
            continue
        children = list(module)
        for i, (conv, norm) in enumerate(pairwise(children)):
            if (isinstance(conv, nn.Conv2d) and isinstance(norm, nn.BatchNorm2d) and norm.track_running_stats
                    and norm.running_mean is not None and conv.out_channels == norm.num_features):
                pairs.append((module, i))
    return pairs


@torch.no_grad()
def fold_batchnorm(net: nn.Module) -> nn.Module:
    """An eval-mode copy of ``net`` whose BatchNorms are folded into their convolutions (``net`` is unchanged).

    Computed in float64, so the copy's fp32 outputs equal ``net.eval()``'s to
    rounding. A network without a Conv2d -> BatchNorm2d pair is copied as is.
    """
    folded = copy.deepcopy(net).eval()
    for sequential, i in _foldable_pairs(folded):
        conv, norm = sequential[i], sequential[i + 1]
        scale = norm.weight.double() / torch.sqrt(norm.running_var.double() + norm.eps) if norm.affine else \
            1 / torch.sqrt(norm.running_var.double() + norm.eps)
        shift = norm.bias.double() if norm.affine else torch.zeros_like(scale)
        bias = conv.bias.double() if conv.bias is not None else torch.zeros_like(scale)
        weight = conv.weight.double() * scale.reshape(-1, *([1] * (conv.weight.dim() - 1)))
        new = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, stride=conv.stride,
                        padding=conv.padding, dilation=conv.dilation, groups=conv.groups, bias=True,
                        padding_mode=conv.padding_mode, device=conv.weight.device, dtype=conv.weight.dtype)
        new.weight.copy_(weight)
        new.bias.copy_((bias - norm.running_mean.double()) * scale + shift)
        sequential[i], sequential[i + 1] = new, nn.Identity()
    return folded.requires_grad_(False)


def _weights_version(net: nn.Module) -> tuple:
    """Changes whenever a parameter or buffer is replaced or modified in place (optimiser steps, loading)."""
    return tuple((id(t), t.data_ptr(), t._version) for t in (*net.parameters(), *net.buffers()))


def _device_of(net: nn.Module) -> torch.device | None:
    """Where ``net``'s first parameter or buffer lives (None: it has none)."""
    for tensor in (*net.parameters(), *net.buffers()):
        return tensor.device
    return None


CopyKey = tuple[str, str, torch.memory_format]


def copy_key(device: torch.device, precision: str, memory_format: torch.memory_format) -> CopyKey:
    """What one cached copy serves: a device (``cuda`` counted as the current ``cuda:N``), precision and format."""
    return str(canonical_device(device)), precision, memory_format


def inference_net(net: nn.Module, device: torch.device, memory_format: torch.memory_format,
                  precision: str = "fp32") -> nn.Module:
    """The eval-mode copy of ``net`` (BatchNorm folded) for ``device``, ``precision`` and ``memory_format``.

    One copy per :func:`copy_key`, kept until the weights change, so that runs
    on two devices never move one module between them. Falls back to ``net``
    itself when it has nothing to fold and already lives on ``device``. Callers
    hold :func:`~.lock.exclusive` for ``net``, as for running it.
    """
    foldable = bool(_foldable_pairs(net))
    if not foldable and _device_of(net) in (None, canonical_device(device), device):
        return net
    version, key = _weights_version(net), copy_key(device, precision, memory_format)
    with _CACHE_GUARD:
        entry = _CACHE.get(net)
        if entry is None or entry["version"] != version:  # new weights: every copy is stale, on every device
            entry = _CACHE[net] = {"version": version, "copies": {}}
        made = entry["copies"].get(key)
    if made is not None:
        return made
    made = fold_batchnorm(net) if foldable else copy.deepcopy(net).eval().requires_grad_(False)
    made = for_fast_inference(made.to(device).to(memory_format=memory_format))  # a quarter of a bf16 pass
    with _CACHE_GUARD:
        entry = _CACHE.get(net)
        if entry is not None and entry["version"] == version:
            entry["copies"][key] = made
    return made
