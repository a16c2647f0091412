"""What a model gets wrong on dsb2018 val fluorescence: merges, misses, splits, poor outlines.

    python scripts/error_anatomy.py [--model nuclei|PATH] [--worst 15]

Every truth nucleus not matched at IoU > 0.5 gets one reason:
*merged* (the predicted object covering most of it also covers half or more of
another truth nucleus), *split* (two or more predicted objects each cover a
fifth of it), *missed* (no predicted pixel touches it; *small* when under 60 px)
or *poor outline* (anything else). False objects are counted as *on background*
when less than a fifth of them lies on truth nuclei. Tells where the next gain
is; never used to train or tune anything.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

import numpy as np

from napari_unet_seg import load_model, segment

sys.path.insert(0, str(Path(__file__).resolve().parent))
from evaluate_builtin import dsb_val  # noqa: E402 - the one definition of the val images


def overlaps(truth: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Pixel counts of every (truth id, predicted id) pair, background row and column included."""
    t, p = truth.ravel().astype(np.int64), pred.ravel().astype(np.int64)
    rows, cols = int(t.max()) + 1, int(p.max()) + 1
    return np.bincount(t * cols + p, minlength=rows * cols).reshape(rows, cols)


def anatomy(truth: np.ndarray, pred: np.ndarray) -> Counter:
    inter = overlaps(truth, pred)
    t_area, p_area = inter.sum(1), inter.sum(0)
    iou = inter / (t_area[:, None] + p_area[None, :] - inter + 1e-9)
    iou[0, :] = iou[:, 0] = 0
    out = Counter()
    for t in np.flatnonzero(t_area[1:]) + 1:
        out["truth"] += 1
        if iou[t].max() > 0.5:
            out["matched"] += 1
            continue
        best = int(inter[t, 1:].argmax()) + 1
        if inter[t, best] == 0:
            out["missed, small" if t_area[t] < 60 else "missed"] += 1
        elif ((inter[1:, best] / np.maximum(t_area[1:], 1)) >= 0.5).sum() >= 2:
            out["merged"] += 1
        elif (inter[t, 1:] > 0.2 * t_area[t]).sum() >= 2:
            out["split"] += 1
        else:
            out["poor outline"] += 1
    for p in np.flatnonzero(p_area[1:]) + 1:
        if iou[:, p].max() <= 0.5:
            out["false objects"] += 1
            out["false, on background"] += inter[1:, p].sum() < 0.2 * p_area[p]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="nuclei")
    parser.add_argument("--dsb", type=Path, default=Path("../shared/data/dsb2018"))
    parser.add_argument("--worst", type=int, default=15, help="list this many images with the lowest AP50")
    args = parser.parse_args()
    model = load_model(args.model)
    total, per_image = Counter(), []
    for name, image, truth in dsb_val(args.dsb):
        counts = anatomy(truth, segment(image, model))
        total += counts
        missed = counts["truth"] - counts["matched"]
        per_image.append((counts["matched"] / max(counts["truth"] + counts["false objects"], 1), name, counts, missed))
    per_image.sort(key=lambda row: row[0])
    for ap, name, counts, missed in per_image[: args.worst]:
        reasons = ", ".join(f"{k} {v}" for k, v in counts.items() if k not in ("truth", "matched") and v)
        print(f"{ap:.3f} {name}: {counts['truth']} nuclei, {missed} unmatched; {reasons}")
    unmatched = total["truth"] - total["matched"]
    print(f"\n{len(per_image)} images, {total['truth']} nuclei, {unmatched} unmatched, {total['false objects']} false objects; "
          f"mean AP50 {np.mean([row[0] for row in per_image]):.3f}")
    for reason in ("merged", "missed", "missed, small", "poor outline", "split"):
        print(f"  {reason}: {total[reason]} ({100 * total[reason] / max(unmatched, 1):.0f} % of unmatched)")
    print(f"  false objects on background: {total['false, on background']} of {total['false objects']}")


if __name__ == "__main__":
    main()
