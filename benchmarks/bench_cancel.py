"""How long Cancel takes to stop a segmentation, pressed at points through the run.

    python benchmarks/bench_cancel.py [--after 3 10 20] [--side 4096] [--device auto]

Segments the 4096² sample mosaic (``--side``) with the built-in model and sets the cancel
flag after each of ``--after`` seconds (one run each). Prints, for each, the
seconds from the press until ``segment()`` raised ``Cancelled``, and where the
run was (the last progress report). Cancel is heard between the network's
layers (:mod:`napari_unet_seg.core.model.midway`), so a large window on a CPU
no longer runs to its end first.
"""

from __future__ import annotations

import argparse
import threading
import time

from napari_unet_seg import load_model, segment
from napari_unet_seg._sample_data import make_mosaic
from napari_unet_seg.core.common.callbacks import Cancelled
from napari_unet_seg.core.model.devices import describe_device, resolve_device


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--after", type=float, nargs="+", default=[3.0, 10.0, 20.0], help="seconds before Cancel")
    parser.add_argument("--side", type=int, default=4096, help="the mosaic's side in pixels")
    parser.add_argument("--device", default="auto", help="auto (cuda, then mps, then cpu), cpu, cuda or mps")
    args = parser.parse_args()
    device = resolve_device(args.device)
    print(f"device: {describe_device(device)}")
    image, _ = make_mosaic(args.side)
    print(f"the {args.side}² sample mosaic, the built-in model")
    model = load_model("nuclei")
    print("| cancel pressed after | stopped within | last progress before it |")
    print("|---|---|---|")
    for after in args.after:
        pressed = threading.Event()
        reports: list[tuple[float, int, int]] = []
        start = time.perf_counter()
        timer = threading.Timer(after, pressed.set)
        timer.start()
        try:
            segment(image, model, device=str(device), cancel=pressed.is_set,
                    progress=lambda done, total: reports.append((time.perf_counter() - start, done, total)))
        except Cancelled:
            waited = time.perf_counter() - start - after
            last = f"{reports[-1][1]} / {reports[-1][2]} windows at {reports[-1][0]:.1f} s" if reports else "none yet"
            print(f"| {after:g} s | {waited:.2f} s | {last} |")
        else:
            print(f"| {after:g} s | finished first ({time.perf_counter() - start:.1f} s) | |")
        timer.cancel()


if __name__ == "__main__":
    main()
