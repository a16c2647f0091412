import os

import pytest
import torch

from napari_unet_seg import UNet


def test_classic_unet_has_31_million_parameters():
    net = UNet(1, 2, depth=4, base_channels=64)
    assert round(sum(p.numel() for p in net.parameters()) / 1e6, 1) == 31.0


@pytest.mark.parametrize("depth,width,classes", [(1, 4, 1), (2, 4, 3), (3, 8, 2)])
def test_forward_keeps_spatial_size_and_returns_logits(depth, width, classes):
    net = UNet(2, classes, depth=depth, base_channels=width).eval()
    x = torch.randn(2, 2, 8 * 2**depth, 4 * 2**depth)
    y = net(x)
    assert y.shape == (2, classes, x.shape[2], x.shape[3])
    assert isinstance(list(net.children())[-1], torch.nn.Conv2d)  # logits: no sigmoid/softmax at the end


def test_structure_is_classic():
    net = UNet(1, 2, depth=3, base_channels=8)
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3)]
    assert len(convs) == 2 * (2 * 3 + 1)  # two per level, encoder + decoder + bottleneck
    assert len([m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]) == len(convs)
    ups = [m for m in net.modules() if isinstance(m, torch.nn.ConvTranspose2d)]
    assert len(ups) == 3 and all(u.kernel_size == (2, 2) and u.stride == (2, 2) for u in ups)
    assert net.bottleneck[0].out_channels == 8 * 2**3


def test_bad_hyperparameters_are_refused():
    with pytest.raises(ValueError):
        UNet(1, 2, depth=0)


PEAK_CHILD = r"""
import torch
from napari_unet_seg.core.inference.tiling import bytes_per_window_pixel
from napari_unet_seg.core.model.fold import fold_batchnorm
from napari_unet_seg.core.model.unet import UNet
torch.set_num_threads(1)


def status(field):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(field + ":"))


net = fold_batchnorm(UNet(1, 2, depth=4, base_channels=16)).to(memory_format=torch.channels_last)
x = torch.rand(1, 1, 1024, 1024).contiguous(memory_format=torch.channels_last)
with torch.inference_mode():
    net(x[..., :64, :64])  # load the kernels before measuring
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # restart the peak (VmHWM) from the current resident size
    before = status("VmRSS")
    net(x)
peak = status("VmHWM") - before
print(peak / x.numel(), bytes_per_window_pixel(net, "fp32"))
"""


@pytest.mark.skipif(not os.path.exists("/proc/self/clear_refs"), reason="measures the peak with Linux's /proc")
def test_a_forward_pass_stays_within_the_memory_the_window_planner_counts():
    """The planner sizes windows by ``bytes_per_window_pixel``; the forward must not need more.

    Run in a fresh process so its peak is the forward's own. Before skips and
    concatenations were released early, this network peaked at ~475 B per
    pixel, above the estimate (440).
    """
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-c", PEAK_CHILD], capture_output=True, text=True, check=True)
    measured, estimate = map(float, result.stdout.split())
    assert 0.5 * estimate < measured <= estimate
