"""The inference engine: network throughput in fp32 and bf16, with and without BatchNorm folded.

    python benchmarks/bench_engine.py [--size 2048] [--repeats 1] [--device auto] [--threads N]

A random depth-4, width-32 U-Net (BatchNorm with non-trivial statistics) on
a random ``size``² image. Prints the device, then Mpx/s of one whole-image
network pass for each precision with the plain network and with BatchNorm
folded into the convolutions (:func:`~napari_unet_seg.core.model.fold.fold_batchnorm`),
the largest difference folding makes in fp32, and ``predict_tiled`` at its
defaults (automatic windows, folded), with the windows it chose and what
they compute per pixel of one pass. Runs unchanged on a CUDA machine.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

from napari_unet_seg import UNet, predict_tiled
from napari_unet_seg.core.inference import tiling
from napari_unet_seg.core.model.devices import autocast, cpu_bf16_pays, resolve_device
from napari_unet_seg.core.model.fold import fold_batchnorm

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from helpers import randomize_batchnorm  # noqa: E402 - the tests' own way, shared as bench_batch does


def describe(device: torch.device) -> str:
    """The machine in one line: what ran the network, and how many threads."""
    if device.type == "cuda":
        return f"CUDA {torch.cuda.get_device_name(device)} (torch {torch.__version__})"
    cpu = platform.processor() or "CPU"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    bf16 = "AMX: auto runs bf16" if cpu_bf16_pays() else "no AMX: auto runs fp32"
    return f"CPU {cpu}, {torch.get_num_threads()} threads, {bf16} (torch {torch.__version__})"


def random_net(seed: int = 0) -> UNet:
    torch.manual_seed(seed)
    net = UNet(1, 2, depth=4, base_channels=32)
    randomize_batchnorm(net, seed)  # non-trivial statistics, so folding them has something to fold
    return net.eval()


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def one_pass(net: torch.nn.Module, image: torch.Tensor, device: torch.device, precision: str) -> tuple[torch.Tensor, float]:
    """The whole image through ``net`` once: (logits on the CPU, seconds)."""
    channels_last = precision != "fp32"
    net = net.to(device).to(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    x = image.to(device).contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    sync(device)
    start = time.perf_counter()
    with torch.inference_mode(), autocast(device, precision):
        out = net(x)
    sync(device)
    seconds = time.perf_counter() - start
    return out.float().cpu(), seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=1, help="median of this many passes (after one warm-up on CUDA)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    print(f"device: {describe(device)}")
    size = args.size - args.size % 16
    megapixels = size * size / 1e6
    image = torch.from_numpy(np.random.default_rng(0).random((1, 1, size, size), dtype=np.float32))
    net = random_net()
    nets = {"BatchNorm": net, "folded": fold_batchnorm(net)}
    print(f"random U-Net depth 4, width 32; {size}x{size} image ({megapixels:.1f} Mpx), one whole-image pass")
    outputs = {}
    for precision in ("fp32", "bf16"):
        for name, model in nets.items():
            if device.type == "cuda":
                one_pass(model, image[..., :256, :256], device, precision)  # kernels chosen, memory pooled
            runs = [one_pass(model, image, device, precision) for _ in range(max(args.repeats, 1))]
            outputs[precision, name] = runs[0][0]
            seconds = statistics.median(s for _, s in runs)
            print(f"  {precision:5s} {name:10s} {megapixels / seconds:7.3f} Mpx/s  ({seconds:.2f} s)", flush=True)
    difference = float((outputs["fp32", "folded"] - outputs["fp32", "BatchNorm"]).abs().max())
    scale = float(outputs["fp32", "BatchNorm"].abs().max())
    print(f"folding changes fp32 logits by at most {difference:.2e} (logits up to {scale:.1f})")

    height = width = size
    batch = 4 if device.type == "cuda" else 1
    for precision in ("fp32", "auto"):
        resolved = "bf16" if precision == "auto" and (device.type == "cuda" or cpu_bf16_pays()) else "fp32"
        window = tiling.choose_window(net, height, width, requested=None, device=device, batch_size=batch,
                                      precision=resolved)
        cost = tiling.plan_cost(height, width, window, tiling.window_margin(net), net.size_multiple)
        start = time.perf_counter()
        predict_tiled(net, image[0, 0].numpy(), device=device, precision=precision)
        seconds = time.perf_counter() - start
        print(f"  predict_tiled precision={precision} ({resolved}): windows {window}, {cost:.2f} passes, "
              f"{megapixels / seconds:.3f} Mpx/s ({seconds:.2f} s, folded)", flush=True)


if __name__ == "__main__":
    main()
