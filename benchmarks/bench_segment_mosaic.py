"""``segment()`` on the sample mosaic, end to end: precision auto (bf16 where the CPU has AMX) and fp32,
interleaved, ``--repeats`` times each; s/Mpx and the objects found (issue 21's goal: 0.5 s/Mpx).

    python benchmarks/bench_segment_mosaic.py [--side 4096] [--repeats 2]

Prints a markdown table. Take it on an idle machine: the figure is wall time.
"""

from __future__ import annotations

import argparse
import time

from napari_unet_seg import segment
from napari_unet_seg._sample_data import make_mosaic


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", type=int, default=4096, help="the mosaic's side in pixels (default 4096)")
    parser.add_argument("--repeats", type=int, default=2, help="runs of each precision, interleaved (default 2)")
    args = parser.parse_args()
    image, _ = make_mosaic(args.side)
    mpx = image.size / 1e6
    segment(image[:512, :512])  # warm-up: the model loaded, the threads started
    runs: dict[str, list[tuple[float, int]]] = {"auto": [], "fp32": []}
    for _ in range(args.repeats):
        for precision in runs:
            start = time.perf_counter()
            labels = segment(image, precision=precision)
            runs[precision].append(((time.perf_counter() - start) / mpx, int(labels.max())))
    print(f"`segment()` on the {args.side}² sample mosaic ({mpx:.1f} Mpx), end to end, interleaved\n")
    print("| precision | s/Mpx | objects |")
    print("|---|---|---|")
    for precision, got in runs.items():
        print(f"| {precision} | {', '.join(f'{s:.2f}' for s, _ in got)} | {', '.join(str(n) for _, n in got)} |")


if __name__ == "__main__":
    main()
