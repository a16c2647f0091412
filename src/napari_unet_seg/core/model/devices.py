"""Choosing where and in which precision the network runs."""

from __future__ import annotations

import contextlib
import platform
from functools import lru_cache

import torch

DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


class DeviceError(RuntimeError):
    """The requested device or precision is not available here."""


def available_devices() -> list[str]:
    """Devices present on this machine, best first."""
    found = []
    if torch.cuda.is_available():
        found.append("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        found.append("mps")
    found.append("cpu")
    return found


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """"auto" picks cuda, then mps, then cpu; a forced device must exist."""
    if isinstance(device, torch.device):
        return device
    name = str(device).lower()
    base = name.split(":")[0]
    if base not in DEVICES:
        raise DeviceError(f"unknown device {device!r}; choose one of {', '.join(DEVICES)}")
    if base == "auto":
        return torch.device(available_devices()[0])
    if base not in available_devices():
        raise DeviceError(f"device {base!r} is not available on this machine (available: {', '.join(available_devices())})")
    return torch.device(name)


def canonical_device(device: torch.device) -> torch.device:
    """``cuda`` as ``cuda:N`` (the current GPU), so that one GPU is never two cache keys."""
    if device.type == "cuda" and device.index is None:
        return torch.device("cuda", torch.cuda.current_device())
    return device


def describe_device(device: torch.device) -> str:
    """The device in one line, for benchmark output: which GPU or CPU ran the network."""
    if device.type == "cuda":
        free, total = torch.cuda.mem_get_info(device)
        return (f"{canonical_device(device)} {torch.cuda.get_device_name(device)}, {total / 2**30:.0f} GiB "
                f"({free / 2**30:.0f} free), torch {torch.__version__}")
    if device.type == "cpu":
        name = platform.processor() or "CPU"
        with contextlib.suppress(OSError, StopIteration), open("/proc/cpuinfo") as f:
            name = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
        bf16 = "AMX: auto runs bf16" if cpu_bf16_pays() else "no AMX: auto runs fp32"
        return f"cpu {name}, {torch.get_num_threads()} threads, {bf16}, torch {torch.__version__}"
    return f"{device}, torch {torch.__version__}"


def is_out_of_memory(exc: BaseException) -> bool:
    """CUDA's ``OutOfMemoryError``, or the RuntimeError other backends (MPS, the CPU allocator) raise instead."""
    text = str(exc).lower()
    return isinstance(exc, torch.OutOfMemoryError) or "out of memory" in text or "can't allocate memory" in text


def free_cached_memory(device: torch.device) -> None:
    """Give the allocator's cached blocks back, so that a retry with less finds them free."""
    if device.type == "cuda":
        torch.cuda.empty_cache()
    elif device.type == "mps" and hasattr(torch, "mps"):
        torch.mps.empty_cache()


@lru_cache(maxsize=1)
def cpu_bf16_pays() -> bool:
    """Whether this CPU runs the U-Net faster in bf16 than in fp32 (see `bf16_pays_on`)."""
    try:
        with open("/proc/cpuinfo") as f:
            return bf16_pays_on(f.read())
    except OSError:
        return False


def bf16_pays_on(cpuinfo: str) -> bool:
    """Only AMX makes bf16 pay on a CPU.

    AVX512-BF16 alone is not enough: on such a Xeon (2 cores, no AMX) the U-Net's
    forward ran 1.14-1.19x *slower* in bf16 than fp32, a 2048² matmul 1.9x slower,
    and a training step no faster (benchmarks/RESULTS.md, 2026-12-01), so "auto"
    keeps fp32 there: as fast, and exact.
    """
    flags = {flag for line in cpuinfo.splitlines() if line.startswith("flags") for flag in line.split()}
    return "amx_bf16" in flags


def resolve_precision(precision: str, device: torch.device) -> str:
    """"auto" -> reduced precision only where it is faster: a GPU, or a CPU with AMX."""
    if precision not in PRECISIONS:
        raise DeviceError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    if precision != "auto":
        if precision == "fp16" and device.type == "cpu":
            raise DeviceError("fp16 is not supported on the CPU; use bf16 or fp32")
        if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise DeviceError("this GPU does not support bf16; use fp16 or fp32")
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if device.type == "mps":
        return "fp16"
    return "bf16" if cpu_bf16_pays() else "fp32"


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """An autocast context for ``precision`` (a no-op for fp32)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=DTYPES[precision])
