"""Cancel is heard inside a network pass, not only between windows: a large CPU window runs for many seconds."""

import numpy as np
import pytest
import torch
from torch import nn

from napari_unet_seg.core.common.callbacks import Cancelled
from napari_unet_seg.core.inference.tiling import predict_tiled
from napari_unet_seg.core.model.fold import inference_net
from napari_unet_seg.core.model.midway import stops_midway
from napari_unet_seg.core.model.unet import UNet


def _hooks(net: nn.Module) -> int:
    return sum(len(m._forward_pre_hooks) + len(m._forward_hooks) for m in net.modules())


def test_a_cancel_during_the_pass_stops_it_before_its_window_is_written():
    net = UNet(in_channels=1, num_classes=2, depth=2, base_channels=4)
    image = np.random.default_rng(0).random((96, 96)).astype(np.float32)
    checks, written = [], []

    def cancel() -> bool:  # the first check is before the pass; the user presses Cancel while it runs
        checks.append(None)
        return len(checks) > 3

    with pytest.raises(Cancelled):
        predict_tiled(net, image, device="cpu", precision="fp32", cancel=cancel,
                      progress=lambda done, total: written.append((done, total)))
    assert 3 < len(checks) < 10  # heard between convolutions of the one pass, then nothing more ran
    assert written and all(done < total for done, total in written)  # its layers counted; the window never written
    runner = inference_net(net, torch.device("cpu"), torch.channels_last, "fp32")  # the folded copy that ran
    assert runner is not net and _hooks(runner) == 0 and _hooks(net) == 0
    out = predict_tiled(net, image, device="cpu", precision="fp32", cancel=lambda: False)  # the next run is whole
    assert np.isfinite(out).all()


def test_the_hooks_go_when_the_block_ends_and_none_are_added_without_a_cancel():
    net = UNet(in_channels=1, num_classes=2, depth=2, base_channels=4)
    with stops_midway(net, None):
        assert _hooks(net) == 0
    with stops_midway(net, lambda: False):
        assert _hooks(net) == sum(isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)) for m in net.modules()) > 0
    assert _hooks(net) == 0
