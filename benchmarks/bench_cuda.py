"""The whole pipeline on a CUDA GPU against the CPU: same labels, and how fast.

    python benchmarks/bench_cuda.py [--model nuclei] [--big 8192] [--json out.json]

Segments the plugin's 4096² sample mosaic with ``segment()`` on the CPU in
fp32, on the GPU in fp32 and on the GPU at its default precision (bf16 on a
GPU that has it), after one warm-up call. Reports seconds per megapixel, the
objects found, AP50 against the mosaic's truth, and how far the GPU's labels
agree with the CPU's (AP50 of one against the other, and pixels whose
foreground differs). Then ``--big``: the mosaic tiled to that side, on the GPU
only (the blockwise path, several blocks post-processed at once), with the
process's peak host memory. Last, training on the GPU in each precision
(a tiny network, a few steps on synthetic nuclei): the loss stays finite and
the weights move (fp16 needs its loss scaled). Needs a CUDA device; exits
with a message without one.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch

from napari_unet_seg import load_model, segment
from napari_unet_seg._sample_data import make_mosaic
from napari_unet_seg.core.training.data import TrainingPair
from napari_unet_seg.core.training.finetune import starting_model
from napari_unet_seg.core.training.loop import TrainConfig, train
from napari_unet_seg.core.training.metrics import matching_accuracy

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from helpers import synthetic_nuclei  # noqa: E402 - the tests' own synthetic data


def train_check(precision: str) -> dict[str, object]:
    """A tiny network trained 40 steps on the GPU at ``precision``: finite losses, parameters that moved.

    Only parameters count: BatchNorm's running statistics change on every
    training-mode forward pass, whether or not an optimiser step was taken.
    """
    image, labels = synthetic_nuclei((256, 256), n=30)
    model = starting_model("none", depth=2, width=8)
    before = {k: v.detach().clone() for k, v in model.net.named_parameters()}
    result = train(model, [TrainingPair(image, labels)],
                   TrainConfig(max_steps=40, crop_size=128, batch_size=4, device="cuda", precision=precision))
    losses = [h["loss"] for h in result.history if "loss" in h]
    moved = max(float((v.detach().float() - before[k].float()).abs().max()) for k, v in model.net.named_parameters())
    return {"steps": result.steps, "first_loss": round(losses[0], 4), "last_loss": round(losses[-1], 4),
            "finite": bool(np.isfinite(losses).all()), "largest_parameter_change": round(moved, 5)}


def timed(image: np.ndarray, model, **kwargs) -> tuple[np.ndarray, float]:
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    labels = segment(image, model, **kwargs)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return labels, time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="nuclei")
    parser.add_argument("--big", type=int, default=8192, help="side of the tiled mosaic for the blockwise run (0: skip)")
    parser.add_argument("--json", default=None, help="also write the figures here")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("bench_cuda: no CUDA device here", file=sys.stderr)
        return 2
    model = load_model(args.model)
    image, truth = make_mosaic()
    mpx = image.size / 1e6
    report: dict[str, object] = {"gpu": torch.cuda.get_device_name(0), "torch": torch.__version__,
                                 "cpu_threads": torch.get_num_threads(), "mosaic_mpx": mpx}
    print(f"device: CUDA {report['gpu']} (torch {report['torch']}), {report['cpu_threads']} CPU threads; "
          f"the 4096² mosaic ({mpx:.1f} Mpx)", flush=True)
    segment(image[:1024, :1024], model, device="cuda")  # warm-up: CUDA context, cuDNN's choice of kernels
    runs = {"cpu_fp32": dict(device="cpu", precision="fp32"), "cuda_fp32": dict(device="cuda", precision="fp32"),
            "cuda_auto": dict(device="cuda")}
    labels = {}
    for name, kwargs in runs.items():
        labels[name], seconds = timed(image, model, **kwargs)
        report[name] = {"s_per_mpx": round(seconds / mpx, 3), "seconds": round(seconds, 2),
                        "objects": int(len(np.unique(labels[name])) - 1),
                        "ap50_truth": round(matching_accuracy(truth, labels[name]), 4)}
        print(name, report[name], flush=True)
    for name in ("cuda_fp32", "cuda_auto"):
        report[name]["ap50_vs_cpu"] = round(matching_accuracy(labels["cpu_fp32"], labels[name]), 4)
        report[name]["foreground_px_differ"] = int(((labels["cpu_fp32"] > 0) != (labels[name] > 0)).sum())
        print(name, "vs cpu", report[name]["ap50_vs_cpu"], report[name]["foreground_px_differ"], flush=True)
    if args.big:
        reps = -(-args.big // image.shape[0])
        big = np.tile(image, (reps, reps))[:args.big, :args.big]
        torch.cuda.reset_peak_memory_stats()
        big_labels, seconds = timed(big, model, device="cuda")
        report["cuda_big"] = {"side": args.big, "s_per_mpx": round(seconds / (big.size / 1e6), 3),
                              "seconds": round(seconds, 2), "highest_label": int(big_labels.max()),
                              "gpu_peak_mb": round(torch.cuda.max_memory_allocated() / 2**20),
                              "host_peak_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}
        print("cuda_big", report["cuda_big"], flush=True)
    for precision in ("fp32", "bf16", "fp16"):
        report[f"train_{precision}"] = train_check(precision)
        print(f"train_{precision}", report[f"train_{precision}"], flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
