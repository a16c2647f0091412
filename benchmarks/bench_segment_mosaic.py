"""``segment()`` on the 4096² sample mosaic, end to end: precision auto (bf16 where the CPU has AMX) and fp32,
interleaved, twice each; s/Mpx and the objects found (issue 21's 0.5 s/Mpx goal).

    python benchmarks/bench_segment_mosaic.py
"""
import time

import numpy as np

from napari_unet_seg import segment
from napari_unet_seg._sample_data import make_mosaic

image, _ = make_mosaic(4096)
mpx = image.size / 1e6
segment(image[:512, :512])  # warm-up: model load, threads
runs = {}
for _ in range(2):
    for precision in ("auto", "fp32"):
        start = time.perf_counter()
        labels = segment(image, precision=precision)
        seconds = time.perf_counter() - start
        runs.setdefault(precision, []).append((seconds / mpx, int(labels.max())))
for precision, got in runs.items():
    print(precision, ", ".join(f"{s:.2f} s/Mpx ({n} objects)" for s, n in got))
