"""Training speed and size of candidate U-Net shapes on this CPU (how the built-in model's shape was chosen).

    python benchmarks/bench_architecture.py [--device auto]

One training step = forward + backward + AdamW on a batch of 8 crops of
256x256, in fp32 and in bf16 autocast with channels_last; best of 3 after a
warm-up step. Prints the device; runs unchanged on a CUDA machine.
"""

from __future__ import annotations

import argparse
import time

import torch

from napari_unet_seg import UNet
from napari_unet_seg.core.model.devices import describe_device, resolve_device

SHAPES = [(4, 16), (4, 24), (4, 32), (3, 32)]


def step_seconds(net: torch.nn.Module, bf16: bool, device: torch.device) -> float:
    fmt = torch.channels_last if bf16 else torch.contiguous_format
    net = net.to(device).to(memory_format=fmt)
    optimizer = torch.optim.AdamW(net.parameters(), 1e-3)
    x = torch.randn(8, 1, 256, 256).to(device).contiguous(memory_format=fmt)
    times = []
    for _ in range(4):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            y = net(x)
        loss = y.float().square().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    return min(times[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto", help="auto (cuda, then mps, then cpu), cpu, cuda or mps")
    parser.add_argument("--shapes", default=",".join(f"{d}x{w}" for d, w in SHAPES), help="depth x width, e.g. 4x16,3x32")
    args = parser.parse_args()
    device = resolve_device(args.device)
    print(f"device: {describe_device(device)}; precisions fp32 and bf16 autocast")
    print("| depth, width | parameters | fp32 s/step | bf16 + channels_last s/step | file (fp32) |")
    print("|---|---|---|---|---|")
    for depth, width in (tuple(int(v) for v in shape.split("x")) for shape in args.shapes.split(",")):
        torch.manual_seed(0)
        net = UNet(1, 2, depth=depth, base_channels=width)
        params = sum(p.numel() for p in net.parameters())
        fp32 = step_seconds(net, bf16=False, device=device)
        bf16 = step_seconds(net, bf16=True, device=device)
        print(f"| {depth}, {width} | {params / 1e6:.1f} M | {fp32:.2f} | {bf16:.2f} | {params * 4 / 1e6:.1f} MB |")


if __name__ == "__main__":
    main()
