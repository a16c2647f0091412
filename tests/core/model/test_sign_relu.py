"""The bit-level ReLU and max-pool of inference copies give exactly torch's values."""

import pytest
import torch
import torch.nn.functional as F

from napari_unet_seg.core.model.fold import fold_batchnorm, inference_net
from napari_unet_seg.core.model.sign_relu import NonNegativeMaxPool2, SignBitReLU
from napari_unet_seg.core.model.unet import UNet


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32])
def test_the_sign_bit_relu_gives_torchs_relu(dtype):
    x = torch.randn(2, 5, 17, 23) * 100
    x[0, 0, 0, :6] = torch.tensor([0.0, -0.0, float("inf"), float("-inf"), 1e-40, -1e-40])
    x = x.to(dtype)
    expected = torch.relu(x)
    got = SignBitReLU()(x.clone())
    assert torch.equal(got, expected) and got.dtype == dtype and not (got < 0).any()


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize("shape", [(1, 3, 32, 48), (2, 4, 31, 16)])
def test_the_pool_on_int16_views_gives_torchs_max_pool_for_non_negative_values(layout, shape):
    x = torch.relu(torch.randn(shape) * 50).to(torch.bfloat16).contiguous(memory_format=layout)
    got = NonNegativeMaxPool2()(x)
    assert torch.equal(got, F.max_pool2d(x, 2)) and got.is_contiguous(memory_format=layout)
    assert torch.equal(NonNegativeMaxPool2()(x.float()), F.max_pool2d(x.float(), 2))  # other types: torch's own


def test_an_inference_copy_runs_them_and_gives_the_networks_own_outputs():
    torch.manual_seed(0)
    net = UNet(in_channels=1, num_classes=2, depth=2, base_channels=4).eval()
    for module in net.modules():  # BatchNorms that do something, as after training
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-1, 1)
            module.running_var.uniform_(0.5, 2)
    x = torch.randn(1, 1, 64, 48).contiguous(memory_format=torch.channels_last)
    copy = inference_net(net, torch.device("cpu"), torch.channels_last, "bf16")
    assert type(copy.pool) is NonNegativeMaxPool2 and any(isinstance(m, SignBitReLU) for m in copy.modules())
    assert not any(isinstance(m, SignBitReLU) for m in net.modules())  # the network itself is untouched
    folded = fold_batchnorm(net).to(memory_format=torch.channels_last)
    with torch.inference_mode():
        for autocast in (True, False):
            with torch.autocast("cpu", torch.bfloat16, enabled=autocast):
                assert torch.equal(copy(x), folded(x))
