"""Grow a trained U-Net to more channels without changing what it computes.

A wider net trained from scratch needs far more CPU time than continuing a
trained one. So the trained weights are copied into the first channels of
each layer of the wider net, and the weights that read the new channels are
set to zero: the wider net starts with exactly the old outputs, and training
then puts the new channels to use (zero-initialised expansion, as in Net2Net).
"""

from __future__ import annotations

import torch

from .unet import UNet


def _concat_index(old: int, new: int) -> torch.Tensor:
    """Where the old channels of a skip concatenation ``cat([skip, up])`` sit in the wider one."""
    half_old, half_new = old // 2, new // 2
    return torch.cat([torch.arange(half_old), half_new + torch.arange(half_old)])


def widened(net: UNet, base_channels: int) -> UNet:
    """A copy of ``net`` with ``base_channels`` (>= its own) that gives the same output.

    New channels start random (so they can learn) but are read with weight
    zero, so the output, in eval and in train mode, is unchanged.
    """
    if base_channels < net.base_channels:
        raise ValueError(f"can only widen: {base_channels} < {net.base_channels}")
    wide = UNet(net.in_channels, net.num_classes, net.depth, base_channels)
    old_state = net.state_dict()
    new_state = wide.state_dict()
    for key, new in new_state.items():
        old = old_state[key]
        if old.shape == new.shape:
            new_state[key] = old.clone()
            continue
        # index of the old channels along each dimension of the wider tensor
        index = [torch.arange(n) for n in old.shape]
        concat_input = key.startswith("up_conv.") and key.endswith(".0.weight")
        if concat_input:
            index[1] = _concat_index(old.shape[1], new.shape[1])
        if key.startswith("up.") and key.endswith(".weight"):
            reads_dim = 0  # ConvTranspose2d weights are (in, out, kh, kw)
        elif new.dim() == 4:
            reads_dim = 1  # Conv2d weights are (out, in, kh, kw)
        else:
            reads_dim = None  # biases and BatchNorm: one value per channel
        tensor = new.clone()
        if reads_dim is not None and old.shape[reads_dim] != new.shape[reads_dim]:
            # the outputs the old net had must not read the new channels
            writes_dim = 1 - reads_dim
            kept_outputs = index[writes_dim]
            rows = tensor.index_select(writes_dim, kept_outputs)
            rows.zero_()
            tensor.index_copy_(writes_dim, kept_outputs, rows)
        grid = torch.meshgrid(*index, indexing="ij")
        tensor[grid] = old
        new_state[key] = tensor
    wide.load_state_dict(new_state)
    return wide
