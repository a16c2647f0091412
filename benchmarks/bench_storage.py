"""Labels in memory vs labels written block by block to zarr: are they the same?

    python benchmarks/bench_storage.py [--size 4096] [--block-size 2048] [--diameter D] [--device auto]

The built-in model segments the sample mosaic (the shipped images tiled into
one large image) twice: in memory as one whole image (``block_size`` larger
than the image; ``segment()`` itself also goes block by block above 2048 px),
and ``segment_to_zarr()`` block by block. It prints both object counts, the pixels whose foreground
differs, and whether the two label images hold the same objects pixel for
pixel (ids may differ: blocks number objects in block order).
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np

from napari_unet_seg import load_model
from napari_unet_seg._sample_data import make_mosaic
from napari_unet_seg.core.inference.options import RunOptions
from napari_unet_seg.core.inference.pipeline import segment_image, segment_to_zarr
from napari_unet_seg.core.model.devices import resolve_device


def same_objects(a: np.ndarray, b: np.ndarray) -> bool:
    """The same objects pixel for pixel, whatever their ids."""
    if not np.array_equal(a > 0, b > 0):
        return False
    pairs = np.unique(np.stack([a[a > 0].astype(np.int64), b[b > 0].astype(np.int64)]), axis=1)
    return pairs.shape[1] == len(np.unique(a[a > 0])) == len(np.unique(b[b > 0]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--block-size", type=int, default=2048)
    parser.add_argument("--diameter", type=float, default=None, help="default: measured, as users get it")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    image, _ = make_mosaic(args.size)
    model = load_model("nuclei")
    device = resolve_device(args.device)
    print(f"{args.size}x{args.size} sample mosaic, built-in model, device {device}, fp32, "
          f"blocks of {args.block_size} px")
    options = {"diameter": args.diameter, "device": args.device, "precision": "fp32"}
    start = time.perf_counter()
    whole = RunOptions(diameter=args.diameter, device=args.device, precision="fp32", block_size=max(image.shape))
    memory = segment_image(image, whole, model=model).labels
    memory_s = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        disk = np.asarray(segment_to_zarr(image, model, f"{folder}/labels.zarr", block_size=args.block_size,
                                          **options)[:])
        disk_s = time.perf_counter() - start
    differ = int(((memory > 0) != (disk > 0)).sum())
    print("| storage | objects | seconds |")
    print("|---|---|---|")
    print(f"| in memory, whole image | {len(np.unique(memory)) - 1} | {memory_s:.0f} |")
    print(f"| zarr, block by block | {len(np.unique(disk)) - 1} | {disk_s:.0f} |")
    print(f"foreground differs on {differ} px ({100 * differ / memory.size:.3f} %); "
          f"same objects pixel for pixel: {'yes' if same_objects(memory, disk) else 'NO'}")


if __name__ == "__main__":
    main()
