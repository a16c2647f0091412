"""Batch throughput: a plain loop vs the pipelined local batch vs a 2-worker dask LocalCluster.

    python benchmarks/bench_batch.py [--files 12] [--size 512] [--device auto]

Prints files/s for each. The local batch overlaps reading, inference,
post-processing and writing of consecutive files; the cluster run spreads files over worker processes (one torch
thread each), which is how --scheduler scales out on a real cluster.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from helpers import synthetic_nuclei  # noqa: E402

from napari_unet_seg import new_model, save_model, segment  # noqa: E402
from napari_unet_seg.core.batch.runner import run_batch  # noqa: E402
from napari_unet_seg.core.inference.options import RunOptions  # noqa: E402
from napari_unet_seg.core.imageio import read_image, write_labels_tiff  # noqa: E402
from napari_unet_seg.core.model.devices import describe_device, resolve_device


def make_inputs(folder: Path, files: int, size: int) -> list[Path]:
    paths = []
    for i in range(files):
        image, _ = synthetic_nuclei((size, size), n=size // 8, seed=i)
        path = folder / f"img_{i:03d}.tif"
        tifffile.imwrite(path, image, compression="zlib")
        paths.append(path)
    return paths


def plain_loop(paths: list[Path], outdir: Path, options: RunOptions) -> None:
    from napari_unet_seg import load_model

    model = load_model(options.model)
    for path in paths:
        image = read_image(path)
        labels = segment(image.data, model, device=options.device, precision=options.precision)
        write_labels_tiff(outdir / f"{path.stem}_labels.tif", labels)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--files", type=int, default=12)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=0, help="torch threads in this process (0: torch's default)")
    parser.add_argument("--device", default="auto", help="auto (cuda, then mps, then cpu), cpu, cuda or mps")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "in").mkdir()
        paths = make_inputs(tmp / "in", args.files, args.size)
        torch.manual_seed(0)
        model_path = save_model(new_model("instances", depth=3, base_channels=8), tmp / "bench.safetensors")
        options = RunOptions(model=str(model_path), device=args.device, precision="fp32")
        print(f"device: {describe_device(resolve_device(args.device))}; precision fp32")
        print(f"{args.files} files of {args.size}x{args.size}, UNet depth 3 / 8 channels, "
              f"torch threads {torch.get_num_threads()}")

        rates = {}
        start = time.perf_counter()
        (tmp / "loop").mkdir()
        plain_loop(paths, tmp / "loop", options)
        rates["plain loop (read, segment, write)"] = args.files / (time.perf_counter() - start)

        start = time.perf_counter()
        results = run_batch([tmp / "in"], tmp / "local", options)
        assert all(r.status == "ok" for r in results)
        rates["local batch (reader thread + 2 segment/write threads)"] = args.files / (time.perf_counter() - start)

        from distributed import LocalCluster

        with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                          dashboard_address=None) as cluster:
            start = time.perf_counter()
            results = run_batch([tmp / "in"], tmp / "cluster", options, scheduler=cluster.scheduler_address)
            assert all(r.status == "ok" for r in results)
            rates[f"dask LocalCluster, {args.workers} worker processes x 1 thread"] = (
                args.files / (time.perf_counter() - start))
        same = all(np.array_equal(tifffile.imread(tmp / "local" / f"{p.stem}_labels.tif"),
                                  tifffile.imread(tmp / "cluster" / f"{p.stem}_labels.tif")) for p in paths)
        for name, rate in rates.items():
            print(f"{name:55s} {rate:6.2f} files/s")
        print(f"cluster results identical to local: {same}")


if __name__ == "__main__":
    main()
