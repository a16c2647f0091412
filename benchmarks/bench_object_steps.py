"""What the object filters and frame links add to a run: seconds per megapixel, in memory and on disk.

    python benchmarks/bench_object_steps.py [--size 4096] [--frames 10] [--objects 8000]

Labels of ``--objects`` disks (radius 6-14 px, some touching the edge) on a ``--size``² plane, as a
segmentation of the 4096² sample mosaic holds (~7,800 nuclei); the filters (smallest 100 px, largest
600 px, no objects touching the edge) run on it in memory and in a zarr store of 512-px chunks. Then a
``--frames``-frame time-lapse of that plane, each frame's disks moved 2 px and renumbered at random,
is linked in memory and on disk. Each figure is the best of 3.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
import zarr

from napari_unet_seg.core.inference.frame_links import link_frames
from napari_unet_seg.core.inference.object_filter import ObjectFilter, filter_plane

CHUNK = 512


def disks(size: int, count: int, shift: int = 0, seed: int = 0) -> np.ndarray:
    """``count`` disks at random places (later ones over earlier ones), ids 1..count in random order."""
    rng = np.random.default_rng(seed)
    labels = np.zeros((size, size), np.uint32)
    centres = rng.integers(0, size, (count, 2)) + shift
    radii = rng.integers(6, 15, count)
    ids = np.random.default_rng(seed + shift + 1).permutation(count) + 1
    for (y, x), r, i in zip(centres, radii, ids):
        y0, y1, x0, x1 = max(y - r, 0), min(y + r + 1, size), max(x - r, 0), min(x + r + 1, size)
        if y0 >= y1 or x0 >= x1:
            continue
        yy, xx = np.mgrid[y0:y1, x0:x1]
        labels[y0:y1, x0:x1][(yy - y) ** 2 + (xx - x) ** 2 <= r * r] = i
    return labels


def best_of(runs: int, setup, work) -> float:
    times = []
    for _ in range(runs):
        data = setup()
        start = time.perf_counter()
        work(data)
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--frames", type=int, default=10)
    parser.add_argument("--objects", type=int, default=8000)
    args = parser.parse_args()
    plane = disks(args.size, args.objects)
    mpx = args.size**2 / 1e6
    found = ObjectFilter(min_area=100, max_area=600, exclude_border=True)
    folder = tempfile.mkdtemp(prefix="bench-object-steps-")

    def stored(data: np.ndarray, name: str):
        store = zarr.open(f"{folder}/{name}.zarr", mode="w", shape=data.shape, dtype=data.dtype,
                          chunks=(1,) * (data.ndim - 2) + (CHUNK, CHUNK))
        store[:] = data
        return store

    kept = filter_plane(plane.copy(), (), found, args.size)
    memory = best_of(3, plane.copy, lambda d: filter_plane(d, (), found, args.size))
    disk = best_of(3, lambda: stored(plane, "plane"), lambda d: filter_plane(d, (), found, CHUNK))
    print(f"filters on {args.size}² ({len(np.unique(plane)) - 1} objects; kept {kept[0]}, dropped {kept[2]}): "
          f"in memory {memory:.2f} s ({memory / mpx:.3f} s/Mpx), zarr {disk:.2f} s ({disk / mpx:.3f} s/Mpx)")
    movie = np.stack([disks(args.size, args.objects, shift=2 * t) for t in range(args.frames)])
    ids = link_frames(movie.copy(), args.size)
    memory = best_of(3, movie.copy, lambda d: link_frames(d, args.size))
    disk = best_of(3, lambda: stored(movie, "movie"), lambda d: link_frames(d, CHUNK))
    total = mpx * args.frames
    print(f"links over {args.frames} frames of {args.size}² ({ids} ids): in memory {memory:.2f} s "
          f"({memory / total:.3f} s/Mpx), zarr {disk:.2f} s ({disk / total:.3f} s/Mpx)")


if __name__ == "__main__":
    main()
