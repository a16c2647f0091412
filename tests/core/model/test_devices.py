"""Where and in which precision the network runs: clear errors, and the "auto" rules."""

import pytest
import torch

from napari_unet_seg.core.model import devices
from napari_unet_seg.core.model.devices import (
    DeviceError, autocast, available_devices, resolve_device, resolve_precision,
)

CPU = torch.device("cpu")
needs_cpu_only = pytest.mark.skipif(
    torch.cuda.is_available() or (getattr(torch.backends, "mps", None) is not None
                                  and torch.backends.mps.is_available()),
    reason="checks the rules of a CPU-only machine")


@needs_cpu_only
def test_auto_is_the_cpu_on_a_cpu_only_machine():
    assert available_devices() == ["cpu"]
    assert resolve_device("auto") == CPU
    assert resolve_device() == CPU


def test_auto_prefers_cuda_then_mps(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert available_devices()[0] == "cuda" and available_devices()[-1] == "cpu"
    assert resolve_device("auto").type == "cuda"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    if getattr(torch.backends, "mps", None) is not None:
        monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
        assert available_devices() == ["mps", "cpu"] and resolve_device("auto").type == "mps"


def test_named_devices():
    assert resolve_device("cpu") == CPU
    assert resolve_device("CPU") == CPU  # case does not matter
    given = torch.device("cpu")
    assert resolve_device(given) is given  # a torch.device is taken as it is


@pytest.mark.parametrize("name", ["tpu", "gpu", "cuda0", "", "xla"])
def test_unknown_devices_are_refused(name):
    with pytest.raises(DeviceError, match="unknown device"):
        resolve_device(name)


@needs_cpu_only
@pytest.mark.parametrize("name", ["cuda", "cuda:1", "mps"])
def test_absent_devices_are_refused_naming_what_is_there(name):
    with pytest.raises(DeviceError, match=r"not available.*available: cpu"):
        resolve_device(name)
    assert issubclass(DeviceError, RuntimeError)


def test_precision_errors():
    with pytest.raises(DeviceError, match="unknown precision"):
        resolve_precision("fp8", CPU)
    with pytest.raises(DeviceError, match="unknown precision"):
        resolve_precision("float32", CPU)
    with pytest.raises(DeviceError, match="fp16 is not supported on the CPU"):
        resolve_precision("fp16", CPU)


def test_forced_precisions_on_the_cpu():
    assert resolve_precision("fp32", CPU) == "fp32"
    assert resolve_precision("bf16", CPU) == "bf16"


def test_auto_precision_on_the_cpu_follows_whether_bf16_pays(monkeypatch):
    monkeypatch.setattr(devices, "cpu_bf16_pays", lambda: True)
    assert resolve_precision("auto", CPU) == "bf16"
    monkeypatch.setattr(devices, "cpu_bf16_pays", lambda: False)
    assert resolve_precision("auto", CPU) == "fp32"


def test_bf16_pays_only_with_amx():
    """AVX512-BF16 without AMX ran the U-Net slower in bf16 than fp32: auto keeps fp32 there."""
    cooper_lake = "processor\t: 0\nflags\t\t: fpu sse avx2 avx512f avx512_bf16\n"
    sapphire_rapids = "processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_bf16 amx_bf16 amx_tile\n"
    laptop = "processor\t: 0\nflags\t\t: fpu sse avx2\n"
    assert not devices.bf16_pays_on(cooper_lake)
    assert devices.bf16_pays_on(sapphire_rapids)
    assert not devices.bf16_pays_on(laptop)
    assert not devices.bf16_pays_on("model name\t: amx_bf16 in a name, not a flag\n")


def test_auto_precision_on_this_machine():
    expected = "bf16" if devices.cpu_bf16_pays() else "fp32"
    assert resolve_precision("auto", CPU) == expected


def test_auto_precision_on_gpus(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert resolve_precision("auto", torch.device("cuda")) == "bf16"
    assert resolve_precision("bf16", torch.device("cuda")) == "bf16"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert resolve_precision("auto", torch.device("cuda")) == "fp16"
    with pytest.raises(DeviceError, match="does not support bf16"):
        resolve_precision("bf16", torch.device("cuda"))
    assert resolve_precision("fp16", torch.device("cuda")) == "fp16"
    assert resolve_precision("auto", torch.device("mps")) == "fp16"


def test_autocast_is_a_no_op_for_fp32():
    a, b = torch.rand(8, 8), torch.rand(8, 8)
    with autocast(CPU, "fp32"):
        assert not torch.is_autocast_enabled("cpu")
        assert (a @ b).dtype == torch.float32
    with autocast(CPU, "bf16"):  # the test above can fail: bf16 really changes the matmul
        assert torch.is_autocast_enabled("cpu")
        assert (a @ b).dtype == torch.bfloat16
    assert not torch.is_autocast_enabled("cpu")
