"""The classic U-Net (Ronneberger et al. 2015) with BatchNorm, depth and width as knobs."""

from __future__ import annotations

import torch
from torch import nn


class DoubleConv(nn.Sequential):
    """Two 3x3 conv + BatchNorm + ReLU: the building block of every level."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


class UNet(nn.Module):
    """U-Net returning logits of shape (N, num_classes, H, W).

    H and W must be multiples of ``2**depth`` (``predict_tiled`` takes care of
    that). ``depth=4, base_channels=64`` is the original 31.0 M-parameter net.
    Apply sigmoid to a single binary channel and softmax to several classes.
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 2,
        depth: int = 4,
        base_channels: int = 64,
    ) -> None:
        super().__init__()
        if depth < 1 or base_channels < 1 or in_channels < 1 or num_classes < 1:
            raise ValueError("in_channels, num_classes, depth and base_channels must be >= 1")
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.depth = depth
        self.base_channels = base_channels

        widths = [base_channels * 2**level for level in range(depth + 1)]
        self.down = nn.ModuleList()
        channels = in_channels
        for width in widths[:-1]:
            self.down.append(DoubleConv(channels, width))
            channels = width
        self.pool = nn.MaxPool2d(2)
        self.bottleneck = DoubleConv(widths[-2], widths[-1])
        self.up = nn.ModuleList()
        self.up_conv = nn.ModuleList()
        for level in reversed(range(depth)):
            self.up.append(nn.ConvTranspose2d(widths[level + 1], widths[level], 2, stride=2))
            self.up_conv.append(DoubleConv(2 * widths[level], widths[level]))
        self.head = nn.Conv2d(widths[0], num_classes, 1)

    @property
    def size_multiple(self) -> int:
        """Input height and width must be multiples of this."""
        return 2**self.depth

    @property
    def receptive_radius(self) -> int:
        """Pixels of context that can influence an output pixel, on each side.

        Every 3x3 conv at stride s adds s, every 2x2 pool or up-convolution
        at stride s adds s - 1 at most; tiles whose crops keep this much
        context reproduce the whole-image result exactly.
        """
        radius = 0
        for level in range(self.depth):
            stride = 2**level
            radius += 2 * stride * 2  # two convs in the encoder and two in the decoder
            radius += 2 * stride  # pool and up-convolution
        radius += 2 * 2**self.depth  # the bottleneck's two convs
        return radius

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits; written so that each big tensor is released as soon as it is used.

        Each skip is dropped once concatenated, and a decoder block runs
        layer by layer so its concatenation (twice the level's width) is freed
        after the first convolution. At inference the peak is the full-resolution
        concatenation itself (skip, upsampled tensor, concatenation and the
        level below, ~4.5x the width), no longer also the lower levels' skips
        and the convolutions' outputs (0.88 -> 0.62 kB per window pixel, width
        32 in fp32, 1024-px window). Training keeps what autograd needs. Hooks
        on a decoder block (``up_conv[i]``) do not fire: its layers are called
        one by one.
        """
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
            x = self.pool(x)
        x = self.bottleneck(x)
        for up, conv in zip(self.up, self.up_conv):
            x = torch.cat([skips.pop(), up(x)], dim=1)
            for layer in conv:
                x = layer(x)
        return self.head(x)

    def config(self) -> dict[str, int]:
        """The constructor arguments: saved beside the weights in model files."""
        return {
            "in_channels": self.in_channels,
            "num_classes": self.num_classes,
            "depth": self.depth,
            "base_channels": self.base_channels,
        }
