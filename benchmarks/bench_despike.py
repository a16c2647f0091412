"""What despiking (``normalization.despike``) costs next to the network.

    python benchmarks/bench_despike.py [--size 2048] [--device auto]

Times, for one 16-bit camera-like image: fitting the normalisation, reading
every pixel normalised (what tiling does, window by window), and the built-in
model's whole segmentation -- with despiking off and on.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from napari_unet_seg import load_model, segment
from napari_unet_seg._sample_data import make_mosaic
from napari_unet_seg.core.inference.preprocess import PreparedImage
from napari_unet_seg.core.model.devices import describe_device, resolve_device, resolve_precision


def seconds(run, repeat: int = 3) -> float:
    """Best of ``repeat`` runs."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--device", default="auto", help="auto (cuda, then mps, then cpu), cpu, cuda or mps")
    args = parser.parse_args()
    device = resolve_device(args.device)
    print(f"device: {describe_device(device)}; precision {resolve_precision('auto', device)}")
    rng = np.random.default_rng(0)
    image = make_mosaic(args.size)[0].astype(np.uint16) * 16
    image[rng.random(image.shape) < 0.001] = 4095  # hot pixels
    model = load_model("nuclei")
    segment(image[:256, :256], model, device=args.device)  # warm-up: the first run pays for torch's start-up
    print(f"{args.size}x{args.size} image, built-in model")
    print("| despike | fit normalisation, s | read all windows, s | segment(), s |")
    print("|---|---|---|---|")
    for despike in (0.0, model.normalization.get("despike", 0.25)):
        model.metadata["normalization"]["despike"] = despike
        settings = model.normalization
        fit = seconds(lambda: PreparedImage(image, in_channels=1, normalization_settings=settings))
        prepared = PreparedImage(image, in_channels=1, normalization_settings=settings)
        read = seconds(lambda: [prepared[:, y:y + 512, x:x + 512]
                                for y in range(0, args.size, 512) for x in range(0, args.size, 512)])
        whole = seconds(lambda: segment(image, model, device=args.device), repeat=1)
        print(f"| {despike} | {fit:.3f} | {read:.3f} | {whole:.1f} |")


if __name__ == "__main__":
    main()
