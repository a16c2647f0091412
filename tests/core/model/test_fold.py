"""BatchNorm folded into the convolutions: the eval-mode outputs, a network left untouched, made once per weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import randomize_batchnorm
from torch import nn

from napari_unet_seg.core.model.fold import fold_batchnorm, inference_net
from napari_unet_seg.core.model.unet import UNet

CPU = torch.device("cpu")


def assert_close(actual: torch.Tensor, expected: torch.Tensor) -> None:
    """Equal to fp32 rounding: 1e-5 of the outputs' scale."""
    scale = max(1.0, float(expected.abs().max()))
    assert float((actual - expected).abs().max()) <= 1e-5 * scale


def random_net(depth: int, width: int, in_channels: int = 1, seed: int = 0) -> UNet:
    torch.manual_seed(seed)
    net = UNet(in_channels, 3, depth=depth, base_channels=width)
    randomize_batchnorm(net, seed)
    return net


@pytest.mark.parametrize("depth, width, in_channels", [(1, 4, 1), (2, 8, 3), (4, 8, 1)])
def test_folded_outputs_equal_eval_mode_outputs(depth, width, in_channels):
    net = random_net(depth, width, in_channels).eval()
    x = torch.randn(2, in_channels, 64, 80, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert_close(fold_batchnorm(net)(x), net(x))
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fold_batchnorm(net).modules())


def test_the_network_itself_is_untouched():
    net = random_net(2, 4).train()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    fold_batchnorm(net)
    inference_net(net, CPU, torch.contiguous_format)
    assert net.training
    assert sum(isinstance(m, nn.BatchNorm2d) for m in net.modules()) == 2 * (2 * 2 + 1)
    for key, value in net.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_folded_once_per_weights_and_again_after_training():
    net = random_net(2, 4).eval()
    first = inference_net(net, CPU, torch.contiguous_format)
    assert inference_net(net, CPU, torch.contiguous_format) is first  # cached: folded once
    assert inference_net(net, CPU, torch.channels_last) is not first  # another memory format: another copy
    x = torch.randn(1, 1, 32, 32)
    optimizer = torch.optim.SGD(net.parameters(), lr=1e-3)
    net.train()
    net(x).sum().backward()
    optimizer.step()  # weights and running statistics change in place
    net.eval()
    again = inference_net(net, CPU, torch.contiguous_format)
    assert again is not first
    with torch.no_grad():
        assert_close(again(x), net(x))
    net.load_state_dict(random_net(2, 4, seed=5).state_dict())  # loading weights
    with torch.no_grad():
        assert_close(inference_net(net, CPU, torch.contiguous_format)(x), net(x))


def test_a_network_without_batchnorm_is_used_as_it_is():
    net = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU())
    assert inference_net(net, CPU, torch.contiguous_format) is net


def test_tiling_runs_the_folded_copy_and_leaves_the_network_as_it_was():
    from napari_unet_seg.core.inference.tiling import predict_tiled

    net = random_net(2, 4).train()
    image = np.random.default_rng(0).random((72, 88), dtype=np.float32)  # on the grid: no padding
    fp32 = predict_tiled(net, image, precision="fp32", device="cpu")
    bf16 = predict_tiled(net, image, tile_size=64, precision="bf16", device="cpu", max_overhead=None)
    assert net.training and all(p.is_contiguous() for p in net.parameters())
    with torch.no_grad():
        expected = net.eval()(torch.from_numpy(image)[None, None])[0].numpy()
    np.testing.assert_allclose(fp32, expected, atol=1e-5 * max(1.0, float(np.abs(expected).max())))
    assert np.abs(bf16 - fp32).max() < 0.1 * max(1.0, float(np.abs(fp32).max()))
