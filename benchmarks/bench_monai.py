"""Tiled inference against MONAI's ``sliding_window_inference``: throughput, exactness, and the CPU's peak.

    python benchmarks/bench_monai.py [--size 2048] [--repeats 3] [--device auto] [--threads N] [--json PATH]

Needs the benchmark-only extra (``pip install -e ".[bench]"``, i.e. ``monai``).
A random depth-4, width-32 U-Net (BatchNorm with non-trivial statistics) on a
random ``size``² image, each method at its own defaults and timed end to end
(numpy image in, logits on the CPU out), interleaved, median of ``--repeats``:

- MONAI: roi 512, overlap 0.25, gaussian blending, sw_batch_size 4, fp32, the
  network as given (what a MONAI user runs);
- ``predict_tiled`` at its defaults in fp32, and with ``precision="auto"``
  (bf16 only where the hardware runs it natively, see ``resolve_precision``).

Each result is compared with one whole-image fp32 pass of the same network
(skipped, and said so, when that pass would not fit in memory). Then the
network forward alone, as ``predict_tiled`` runs it (BatchNorm folded, its
window), in fp32 and bf16, as GFLOP/s (FLOPs counted by torch's
``FlopCounterMode``) and as a share of a 2048² matmul's measured peak on the
same threads (a measured reference, not the hardware's theoretical peak: a
convolution may beat it; take it on an idle machine). Last, the built-in
model's labels in reduced precision vs fp32 (``precision="auto"``'s, or bf16
where auto means fp32, forced then; foreground agreement and object AP50 of
``segment()`` on the sample mosaic). fp32 means fp32: TF32 is switched off on
CUDA. Prints markdown (``run_all.py`` copies it into RESULTS.md as is); ``--json``
also writes the figures.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from bench_engine import random_net, sync
from torch.utils.flop_counter import FlopCounterMode

from napari_unet_seg import load_model, predict_tiled, segment
from napari_unet_seg._sample_data import make_mosaic
from napari_unet_seg.core.inference import tiling
from napari_unet_seg.core.inference.options import available_memory
from napari_unet_seg.core.model.devices import autocast, describe_device, resolve_device, resolve_precision
from napari_unet_seg.core.model.fold import fold_batchnorm
from napari_unet_seg.core.training.metrics import matching_accuracy

try:
    from monai.inferers import sliding_window_inference
except ImportError:  # a benchmark-only extra
    sys.exit('bench_monai needs MONAI: pip install -e ".[bench]"')

GOALS = {"fp32 vs MONAI": 1.5, "auto vs MONAI": 4.0, "max error": 1e-3, "label agreement": 0.995,
         "forward share of bf16 peak": 0.35}


def matmul_peak(device: torch.device, dtype: torch.dtype, n: int = 2048, repeats: int = 5) -> float:
    """GFLOP/s of the fastest of ``repeats`` n² matmuls (after one warm-up), on the threads in use."""
    a, b = (torch.randn(n, n, device=device).to(dtype) for _ in range(2))
    best = float("inf")
    for i in range(repeats + 1):
        sync(device)
        start = time.perf_counter()
        torch.matmul(a, b)
        sync(device)
        if i:
            best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


def flops_per_pixel(net: torch.nn.Module) -> float:
    """FLOPs (2 per multiply-add) of one forward pass per input pixel; every layer's cost is linear in pixels."""
    x = torch.zeros(1, net.in_channels, 256, 256)
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        net(x)
    return counter.get_total_flops() / x[0, 0].numel()


def whole_image(net: torch.nn.Module, image: np.ndarray, device: torch.device) -> np.ndarray | None:
    """One fp32 pass over the whole image (logits on the CPU), or None when it would not fit in memory."""
    need = tiling.bytes_per_window_pixel(net, "fp32") * image.size
    free = torch.cuda.mem_get_info(device)[0] * 0.8 if device.type == "cuda" else available_memory() * 0.5
    if need > free:
        return None
    with torch.inference_mode():
        return net.to(device)(torch.from_numpy(image)[None, None].to(device)).cpu().numpy()[0]


def run_monai(net: torch.nn.Module, image: np.ndarray, device: torch.device) -> np.ndarray:
    net.to(device)
    with torch.inference_mode():
        x = torch.from_numpy(image)[None, None].to(device)
        out = sliding_window_inference(x, roi_size=(512, 512), sw_batch_size=4, predictor=net, overlap=0.25,
                                       mode="gaussian")
        return out.cpu().numpy()[0]


def timed(run, image: np.ndarray) -> tuple[np.ndarray, float]:
    start = time.perf_counter()
    out = run(image)
    return out, time.perf_counter() - start


def forward_rate(net: torch.nn.Module, window: tuple[int, int], batch: int, device: torch.device, precision: str,
                 repeats: int) -> float:
    """Input Mpx/s of the folded network alone on a batch of (height, width) windows, as ``predict_tiled`` runs it."""
    memory_format = torch.channels_last if device.type == "cpu" or precision != "fp32" else torch.contiguous_format
    folded = fold_batchnorm(net).to(device).to(memory_format=memory_format)
    x = torch.rand(batch, net.in_channels, *window, device=device).contiguous(memory_format=memory_format)
    times = []
    with torch.inference_mode(), autocast(device, precision):
        for i in range(repeats + 1):  # the first pass picks kernels and allocates
            sync(device)
            start = time.perf_counter()
            folded(x)
            sync(device)
            if i:
                times.append(time.perf_counter() - start)
    return x.numel() / net.in_channels / statistics.median(times) / 1e6


def label_agreement(size: int, device: torch.device) -> tuple[str, float, float]:
    """(reduced precision, foreground agreement, object AP50) of the built-in model's labels against fp32.

    The reduced precision is what ``precision="auto"`` picks, or bf16 where
    auto means fp32 (a CPU without AMX runs it slower, or emulates it, but the
    labels are those an AMX machine would give, to rounding).
    """
    auto = resolve_precision("auto", device)
    reduced_precision = auto if auto != "fp32" else "bf16"
    model = load_model("nuclei")
    image = make_mosaic(size)[0]
    fp32 = segment(image, model, device=str(device), precision="fp32")
    reduced = segment(image, model, device=str(device), precision=reduced_precision)
    return reduced_precision, float(np.mean((fp32 > 0) == (reduced > 0))), matching_accuracy(fp32, reduced)


def met(ok: bool) -> str:
    return "met" if ok else "NOT MET"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=2048, help="image side (rounded down to a multiple of 16)")
    parser.add_argument("--repeats", type=int, default=3, help="median of this many interleaved runs")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.backends.cuda.matmul.allow_tf32 = False  # fp32 rows are fp32 on every device
    torch.backends.cudnn.allow_tf32 = False
    device = resolve_device(args.device)
    auto = resolve_precision("auto", device)
    size = max(args.size - args.size % 16, 16)
    megapixels = size * size / 1e6
    repeats = max(args.repeats, 1)
    net = random_net()
    image = np.random.default_rng(0).random((size, size), dtype=np.float32)
    print(f"device: {describe_device(device)}; precision auto = {auto}\n")
    print(f"random U-Net depth 4, width 32; {size}x{size} image ({megapixels:.2f} Mpx); "
          f"median of {repeats} interleaved runs, end to end (numpy in, logits on the CPU out)\n")

    per_pixel = flops_per_pixel(net)
    # a quick run's small image gets small matmuls too: bf16 emulated on a CPU without it took minutes at 2048²
    side = min(2048, max(512, size))
    peaks = {"fp32": matmul_peak(device, torch.float32, side), "bf16": matmul_peak(device, torch.bfloat16, side)}
    reference = whole_image(net, image, device)

    methods = {
        "MONAI sliding_window_inference (roi 512, overlap 0.25, gaussian, sw_batch 4)":
            ("fp32", lambda img: run_monai(net, img, device)),
        "predict_tiled, defaults": ("fp32", lambda img: predict_tiled(net, img, device=device, precision="fp32")),
        "predict_tiled, defaults, precision auto":
            (auto, lambda img: predict_tiled(net, img, device=device, precision="auto")),
    }
    for _, run in methods.values():  # warm-up: folding, kernels, allocator
        run(image[:512, :512])
    seconds: dict[str, list[float]] = {name: [] for name in methods}
    outputs: dict[str, np.ndarray] = {}
    for _ in range(repeats):
        for name, (_, run) in methods.items():
            outputs[name], elapsed = timed(run, image)
            seconds[name].append(elapsed)

    monai_rate = megapixels / statistics.median(seconds[next(iter(methods))])
    rows = []
    print("| method | precision | Mpx/s | x MONAI | max abs error vs whole image | useful GFLOP/s |")
    print("|---|---|---|---|---|---|")
    for name, (precision, _) in methods.items():
        rate = megapixels / statistics.median(seconds[name])
        error = None if reference is None else float(np.abs(outputs[name] - reference).max())
        rows.append({"method": name, "precision": precision, "mpx_per_s": rate, "x_monai": rate / monai_rate,
                     "max_abs_error": error, "seconds": seconds[name]})
        shown = "n/a (whole image does not fit)" if error is None else f"{error:.2e}"
        print(f"| {name} | {precision} | {rate:.3f} | {rate / monai_rate:.2f} | {shown} | "
              f"{rate * per_pixel / 1e3:.1f} |")
    scale = "" if reference is None else f" Logits of the whole-image pass reach {np.abs(reference).max():.1f}."
    print(f"\nUseful GFLOP/s: the FLOPs of one whole-image pass over the time taken.{scale}")

    batch = 4 if device.type == "cuda" else 1
    forward = []
    print(f"\nThe network forward alone ({per_pixel / 1e3:.0f} kFLOP per pixel; BatchNorm folded, "
          f"predict_tiled's window, batch {batch}); matmul peak: the fastest 2048² matmul on {torch.get_num_threads()} "
          "threads\n")
    print("| precision | window | Mpx/s | GFLOP/s | matmul peak GFLOP/s | share of this precision's peak | "
          "share of bf16 peak |")
    print("|---|---|---|---|---|---|---|")
    for precision in ("fp32", "bf16"):
        window = tiling.choose_window(net, size, size, requested=None, device=device, batch_size=batch,
                                      precision=precision)
        window = window if isinstance(window, tuple) else (window, window)
        rate = forward_rate(net, window, batch, device, precision, repeats)
        gflops = rate * per_pixel / 1e3
        forward.append({"precision": precision, "window": list(window), "mpx_per_s": rate, "gflop_per_s": gflops,
                        "peak_gflop_per_s": peaks[precision], "share_of_peak": gflops / peaks[precision],
                        "share_of_bf16_peak": gflops / peaks["bf16"]})
        print(f"| {precision} | {window[0]}x{window[1]} | {rate:.3f} | {gflops:.1f} | {peaks[precision]:.1f} | "
              f"{gflops / peaks[precision]:.0%} | {gflops / peaks['bf16']:.0%} |")

    precision, agreement, objects = label_agreement(size, device)
    note = f" (auto is fp32 here; {precision} forced)" if auto == "fp32" else ""
    print(f"\nBuilt-in model, {size}² sample mosaic: labels in {precision} agree with fp32 on {agreement:.2%} of "
          f"pixels (foreground or not); object AP50 against the fp32 labels {objects:.3f}{note}.")

    ours, default = rows[1], rows[2]
    print("\nGoals (issue 21):\n")
    print(f"- fp32 >= {GOALS['fp32 vs MONAI']}x MONAI: {ours['x_monai']:.2f}x, "
          f"{met(ours['x_monai'] >= GOALS['fp32 vs MONAI'])}")
    if ours["max_abs_error"] is not None:
        print(f"- fp32 max error <= {GOALS['max error']:g}: {ours['max_abs_error']:.1e}, "
              f"{met(ours['max_abs_error'] <= GOALS['max error'])}")
    print(f"- defaults ({auto}) >= {GOALS['auto vs MONAI']}x MONAI fp32: {default['x_monai']:.2f}x, "
          f"{met(default['x_monai'] >= GOALS['auto vs MONAI'])}")
    print(f"- {precision} labels agree >= {GOALS['label agreement']:.1%}: {agreement:.2%}, "
          f"{met(agreement >= GOALS['label agreement'])}")
    bf16 = forward[1]["share_of_peak"]
    speed = forward[1]["mpx_per_s"] / forward[0]["mpx_per_s"]
    emulated = (f" (auto runs fp32 on this CPU: bf16 ran at {speed:.2f}x fp32's speed)"
                if device.type == "cpu" and auto == "fp32" else "")
    print(f"- bf16 forward >= {GOALS['forward share of bf16 peak']:.0%} of the bf16 matmul peak: {bf16:.0%}, "
          f"{met(bf16 >= GOALS['forward share of bf16 peak'])}{emulated}")

    if args.json:
        args.json.write_text(json.dumps({
            "device": describe_device(device), "precision_auto": auto, "size": size, "repeats": repeats,
            "threads": torch.get_num_threads(), "flops_per_pixel": per_pixel, "matmul_peak_gflop_per_s": peaks,
            "whole_image_reference": reference is not None, "methods": rows, "forward": forward,
            "label_agreement": {"precision": precision, "foreground_agreement": agreement, "object_ap50": objects},
            "goals": GOALS,
        }, indent=2) + "\n")


if __name__ == "__main__":
    main()
