import pytest
import torch

from napari_unet_seg import UNet
from napari_unet_seg.core.model.widen import widened


def _trained_like(net: UNet) -> UNet:
    """Give BatchNorm non-trivial running statistics, as a trained net has."""
    torch.manual_seed(1)
    net.train()
    with torch.no_grad():
        for _ in range(3):
            net(torch.rand(2, net.in_channels, 32, 32) * 3)
    return net


@pytest.mark.parametrize("depth", [1, 3])
def test_widened_net_computes_the_same_output(depth):
    torch.manual_seed(0)
    net = _trained_like(UNet(2, 3, depth=depth, base_channels=4))
    wide = widened(net, 6)
    assert wide.base_channels == 6 and wide.config()["num_classes"] == 3
    assert sum(p.numel() for p in wide.parameters()) > 2 * sum(p.numel() for p in net.parameters())
    x = torch.rand(2, 2, 32, 32)
    with torch.no_grad():
        for mode in (False, True):  # eval (running statistics) and train (batch statistics)
            net.train(mode)
            wide.train(mode)
            torch.testing.assert_close(wide(x), net(x), atol=1e-5, rtol=1e-4)


def test_new_channels_learn():
    torch.manual_seed(0)
    net = _trained_like(UNet(1, 2, depth=2, base_channels=4))
    wide = widened(net, 8).train()
    loss = wide(torch.rand(2, 1, 16, 16)).square().mean()
    loss.backward()
    reads_new = wide.head.weight.grad[:, 4:]  # the head's weights on the new channels start at zero...
    assert torch.all(wide.head.weight[:, 4:] == 0)
    assert reads_new.abs().sum() > 0  # ...but get a gradient, so training puts the new channels to use


def test_cannot_narrow():
    with pytest.raises(ValueError, match="only widen"):
        widened(UNet(1, 2, depth=1, base_channels=8), 4)
