"""Peak memory of tiled inference on a lazy zarr image vs the image size.

    python benchmarks/bench_memory.py [--sizes 2048 4096 8192] [--device auto]

Each size runs in a fresh subprocess: a uint16 zarr image on disk is
normalised lazily (percentiles from a sample) and predicted window by window
into a zarr array on disk. Peak resident memory should stay flat as the image
grows, because it is bounded by the window batch, not the image.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile

from napari_unet_seg.core.model.devices import describe_device, resolve_device, resolve_precision

CHILD = r"""
import json, resource, sys, time, tempfile
import numpy as np, zarr
from napari_unet_seg import load_model, new_model, predict_tiled
from napari_unet_seg.core.inference.preprocess import PreparedImage
size, folder, device = int(sys.argv[1]), sys.argv[2], sys.argv[3]
try:
    model = load_model("nuclei")
except Exception:
    model = new_model(depth=4, base_channels=16)
image = zarr.create_array(store=f"{folder}/image.zarr", shape=(size, size), chunks=(1024, 1024), dtype="u2")
rng = np.random.default_rng(0)
for y in range(0, size, 1024):
    for x in range(0, size, 1024):
        image[y:y + 1024, x:x + 1024] = rng.integers(100, 4000, (min(1024, size - y), min(1024, size - x)), dtype=np.uint16)
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
out = zarr.create_array(store=f"{folder}/logits.zarr", shape=(2, size, size), chunks=(2, 1024, 1024), dtype="f4")
prepared = PreparedImage(image, in_channels=1, normalization_settings=model.normalization)
start = time.perf_counter()
predict_tiled(model.net, prepared, out=out, tile_size=1024, device=device)
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"size": size, "peak_mb": peak / 1024, "before_mb": base / 1024, "seconds": seconds}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[2048, 4096, 8192])
    parser.add_argument("--device", default="auto", help="auto (cuda, then mps, then cpu), cpu, cuda or mps")
    args = parser.parse_args()
    device = resolve_device(args.device)
    print(f"device: {describe_device(device)}; precision {resolve_precision('auto', device)} (peak RSS is host memory)")
    print("| image | input on disk | logits on disk | peak RSS | seconds |")
    print("|---|---|---|---|---|")
    for size in args.sizes:
        with tempfile.TemporaryDirectory() as folder:
            result = subprocess.run([sys.executable, "-c", CHILD, str(size), folder, args.device], capture_output=True, text=True)
            if result.returncode:
                print(result.stderr[-2000:])
                continue
            r = json.loads(result.stdout.strip().splitlines()[-1])
            print(f"| {size}x{size} | {size * size * 2 / 2**20:.0f} MB | {size * size * 8 / 2**20:.0f} MB | "
                  f"{r['peak_mb']:.0f} MB | {r['seconds']:.0f} |")


if __name__ == "__main__":
    main()
