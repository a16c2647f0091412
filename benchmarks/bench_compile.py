"""Does compiling the network pay? Eager (BatchNorm folded, channels_last) vs TorchScript vs ``torch.compile``.

    python benchmarks/bench_compile.py [--side 1024] [--repeats 3] [--device auto]

The built-in model's folded network runs one ``side`` x ``side`` window in
fp32, each variant interleaved with the others, median of ``repeats``. It
prints each variant's one-off preparation time, its largest difference from
eager, its throughput, and how many megapixels an image must have before the
preparation is paid back.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from napari_unet_seg import load_model
from napari_unet_seg.core.model.devices import describe_device, resolve_device
from napari_unet_seg.core.model.fold import fold_batchnorm


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--side", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    device = resolve_device(args.device)
    model = load_model("nuclei")
    eager = fold_batchnorm(model.net).to(device=device, memory_format=torch.channels_last)
    x = torch.randn(1, model.net.in_channels, args.side, args.side, device=device).contiguous(
        memory_format=torch.channels_last)
    print(f"built-in model, {args.side}² window, fp32, {describe_device(device)}")

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    variants, prep = {"eager": eager}, {"eager": 0.0}
    with torch.no_grad():
        for name, make in (("torch.jit.freeze", lambda: torch.jit.freeze(torch.jit.trace(eager, x))),
                           ("jit optimize_for_inference",
                            lambda: torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.trace(eager, x)))),
                           ("torch.compile", lambda: torch.compile(eager))):
            start = time.perf_counter()
            try:
                variant = make()
                variant(x)  # compiles on the first call
                sync()
            except Exception as error:  # noqa: BLE001 - a benchmark reports what does not work here
                print(f"{name}: not available ({type(error).__name__})")
                continue
            variants[name], prep[name] = variant, time.perf_counter() - start
        reference = eager(x)
        times: dict[str, list[float]] = {name: [] for name in variants}
        for _ in range(args.repeats):
            for name, variant in variants.items():
                sync()
                start = time.perf_counter()
                variant(x)
                sync()
                times[name].append(time.perf_counter() - start)
        mpx = args.side * args.side / 1e6
        base = float(np.median(times["eager"]))
        print("| variant | preparation, s | max diff vs eager | s per window | Mpx/s | pays back after |")
        print("|---|---|---|---|---|---|")
        for name, variant in variants.items():
            seconds = float(np.median(times[name]))
            diff = float((variant(x) - reference).abs().max())
            saved = (base - seconds) / mpx  # s per Mpx
            payback = "—" if name == "eager" else (f"{prep[name] / saved:.0f} Mpx" if saved > 0 else "never")
            print(f"| {name} | {prep[name]:.0f} | {diff:.1e} | {seconds:.2f} | {mpx / seconds:.3f} | {payback} |")


if __name__ == "__main__":
    main()
