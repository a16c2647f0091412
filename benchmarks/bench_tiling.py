"""Tiling: exactness, speed and precision of ``predict_tiled``, against gaussian blending.

    python benchmarks/bench_tiling.py [--size 2048] [--model nuclei] [--device auto]

Prints, for one image, the max difference from a single whole-image pass and
the time of: our crop-to-centre windows at several sizes, MONAI-style
gaussian-blended windows (overlap 0.25), and bf16 vs fp32.
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import torch

from napari_unet_seg import load_model, new_model, predict_tiled
from napari_unet_seg._sample_data import make_mosaic
from napari_unet_seg.core.model.modelfile import ModelFileError
from napari_unet_seg.core.inference.preprocess import PreparedImage
from napari_unet_seg.core.model.devices import describe_device, resolve_device


def blended(net, image: np.ndarray, window: int, overlap: float = 0.25) -> np.ndarray:
    """Sliding windows merged with a gaussian importance map (what MONAI does by default)."""
    _, h, w = image.shape
    grid = net.size_multiple
    ph, pw = math.ceil(h / grid) * grid, math.ceil(w / grid) * grid
    padded = np.pad(image, ((0, 0), (0, ph - h), (0, pw - w)), mode="edge")
    window = min(window, ph, pw)
    step = max(int(window * (1 - overlap)), 1)
    ys = sorted({min(y, ph - window) for y in range(0, ph, step)})
    xs = sorted({min(x, pw - window) for x in range(0, pw, step)})
    sigma = 0.125 * window
    g = np.exp(-((np.arange(window) - (window - 1) / 2) ** 2) / (2 * sigma**2))
    importance = np.outer(g, g).astype(np.float32) + 1e-3
    device = next(net.parameters()).device
    out = np.zeros((net.num_classes, ph, pw), np.float32)
    weight = np.zeros((ph, pw), np.float32)
    with torch.inference_mode():
        for y in ys:
            for x in xs:
                tile = torch.from_numpy(padded[None, :, y:y + window, x:x + window].copy()).to(device)
                logits = net(tile)[0].float().cpu().numpy()
                out[:, y:y + window, x:x + window] += logits * importance
                weight[y:y + window, x:x + window] += importance
    return (out / weight)[:, :h, :w]


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--model", default="nuclei")
    parser.add_argument("--device", default="auto", help="auto (cuda, then mps, then cpu), cpu, cuda or mps")
    args = parser.parse_args()
    device = resolve_device(args.device)
    print(f"device: {describe_device(device)}; precisions fp32 and bf16, as each row says")
    try:
        model = load_model(args.model)
    except ModelFileError:
        model = new_model(depth=4, base_channels=16)
    net = model.net.eval().to(device)
    raw, _ = make_mosaic(max(args.size, 1024))
    raw = raw[: args.size, : args.size]
    image = np.asarray(PreparedImage(raw, in_channels=1, normalization_settings=model.normalization))
    mpx = args.size**2 / 1e6
    print(f"model {model.name}: depth {net.depth}, width {net.base_channels}; image {args.size}x{args.size}; "
          f"torch threads {torch.get_num_threads()}")
    reference, t_ref = timed(lambda: predict_tiled(net, image, tile_size=10**6, precision="fp32", device=device))
    print(f"| method | window | precision | max abs diff vs whole image | s/Mpx |")
    print(f"|---|---|---|---|---|")
    print(f"| whole image, one pass | {args.size} | fp32 | 0 | {t_ref / mpx:.2f} |")
    # windows below ~2x the margin (128 px at depth 4) keep almost nothing: 512 is the smallest sensible
    for window in (512, 1024):
        out, t = timed(lambda: predict_tiled(net, image, tile_size=window, precision="fp32", device=device))
        print(f"| crop-to-centre (ours) | {window} | fp32 | {np.abs(out - reference).max():.2e} | {t / mpx:.2f} |")
    for window in (256, 512):
        out, t = timed(lambda: blended(net, image, window))
        print(f"| gaussian blend, overlap 0.25 | {window} | fp32 | {np.abs(out - reference).max():.2e} | {t / mpx:.2f} |")
    for window in (512, 1024):
        out, t = timed(lambda: predict_tiled(net, image, tile_size=window, precision="bf16", device=device))
        print(f"| crop-to-centre (ours) | {window} | bf16 | {np.abs(out - reference).max():.2e} | {t / mpx:.2f} |")


if __name__ == "__main__":
    main()
