"""Peak memory of the whole pipeline, zarr image to zarr labels, vs the image size.

    python benchmarks/bench_memory_labels.py [--sizes 2048 4096 8192 16384] [--device auto]

Each size runs in a fresh subprocess: the sample mosaic is tiled into a
uint8 zarr image on disk, and ``segment_to_zarr`` (normalisation from a
sample, the object-size check, network, seeds, watershed, block by block)
writes its labels to a zarr store on disk. Peak resident memory should stay
flat as the image grows: it is bounded by one block and its halo.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile

CHILD = r"""
import json, resource, sys, time
import numpy as np, zarr
from napari_unet_seg import load_model
from napari_unet_seg._sample_data import make_mosaic
from napari_unet_seg.core.inference.pipeline import segment_to_zarr
from napari_unet_seg.core.model.devices import resolve_device
size, folder, device = int(sys.argv[1]), sys.argv[2], sys.argv[3]
tile = make_mosaic(2048)[0]
image = zarr.create_array(store=f"{folder}/image.zarr", shape=(size, size), chunks=(1024, 1024), dtype="u1")
for y in range(0, size, 2048):
    for x in range(0, size, 2048):
        image[y:y + 2048, x:x + 2048] = tile[:min(2048, size - y), :min(2048, size - x)]
del tile
model = load_model("nuclei")
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
out = segment_to_zarr(image, model, f"{folder}/labels.zarr", device=device)
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"size": size, "peak_mb": peak / 1024, "before_mb": base / 1024, "seconds": seconds,
                  "objects": int(out.attrs["objects"]), "device": str(resolve_device(device))}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[2048, 4096, 8192, 16384])
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    rows, peaks = [], []
    for size in args.sizes:
        with tempfile.TemporaryDirectory() as folder:
            result = subprocess.run([sys.executable, "-c", CHILD, str(size), folder, args.device], capture_output=True,
                                    text=True)
            if result.returncode:
                print(result.stderr[-2000:])
                continue
            r = json.loads(result.stdout.strip().splitlines()[-1])
            peaks.append(r["peak_mb"])
            rows.append(f"| {size}x{size} | {size * size / 2**20:.0f} MB | {r['objects']} | {r['peak_mb']:.0f} MB | "
                        f"{r['seconds']:.0f} | {r['seconds'] / (size * size / 1e6):.2f} |")
    print(f"built-in model, device {r['device'] if rows else args.device}, precision auto")
    print("| image | input on disk (uint8) | objects | peak RSS | seconds | s/Mpx |")
    print("|---|---|---|---|---|---|")
    print("\n".join(rows))
    if len(peaks) > 1:
        print(f"peak memory, largest / smallest image: {peaks[-1] / peaks[0]:.2f}")


if __name__ == "__main__":
    main()
