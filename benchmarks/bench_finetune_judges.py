"""Which held-out score should decide whether fine-tuned weights replace their parent? Judges compared on ONE run.

    nice -n 5 python benchmarks/bench_finetune_judges.py [--cells all] [--seeds 0,1] [--seconds 120]
        [--out records.jsonl] [--table records.jsonl ...]

Comparing judges by running the fine-tuning matrix once per judge mixes the judge with run-to-run
noise (a cell moves by +-0.04 between runs). Here each cell of ``bench_finetune_matrix.py``'s matrix
(the same domains, image, modes and ``finetune`` call) trains once; every set of weights the loop scores
on the held-out annotation (the parent at step 0, each ``eval_every`` step, the last step) is kept with
its held-out scores, and scored afterwards on the domain's other images (Segment's result with the
parent's post-processing, AP at IoU 0.5 to 0.9). Each judge then picks from the same candidates:

  AP50            strictly higher held-out AP50 than the parent's, best by (AP50, Dice) (the rule before)
  AP50-90         strictly higher held-out AP50-90 than the parent's, best by (AP50-90, AP50, Dice)
  AP50 & AP50-90  AP50 no lower and AP50-90 strictly higher
  AP50-90, perfect ties  as AP50-90, and trained weights that tie a perfect parent (1.0) replace it (now)
  last average    the weights training ended with, whatever the held-out part says (no judge)
  oracle          the best on the other images (what no judge can know)

Prints a markdown table; ``--out`` also appends each cell's record (JSON lines), and ``--table FILE ...``
prints the comparison from saved records.
The trainer's evaluation is wrapped (a benchmark-only patch) to keep the candidates; nothing else changes.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np

import bench_finetune_matrix as matrix
from napari_unet_seg.core.model.modelfile import Model
from napari_unet_seg.core.training import loop
from napari_unet_seg.core.training.data import TrainingPair
from napari_unet_seg.core.training.finetune import default_config, finetune, starting_model
from napari_unet_seg.core.training.loop import perfect_tie
from napari_unet_seg.core.training.metrics import matching_accuracies

CELLS = [f"{d}:{m}" for d in matrix.DOMAINS for m in ("dense", "mask")]


class CandidateRecorder:
    """Wraps ``Trainer.evaluate`` and ``Trainer.finish`` to keep every scored set of weights."""

    def __init__(self) -> None:
        self.candidates: list[dict] = []
        self.final: dict | None = None

    def install(self) -> None:
        evaluate, finish = loop.Trainer.evaluate, loop.Trainer.finish
        recorder = self

        def recording_evaluate(trainer: loop.Trainer, step: int) -> dict[str, float]:
            scores = evaluate(trainer, step)
            averaged = trainer.average is not None and step > 0
            with trainer.average.swapped_in(trainer.net) if averaged else contextlib.nullcontext():
                state = {k: v.detach().cpu().clone() for k, v in trainer.net.state_dict().items()}
            recorder.candidates.append({"step": step, "held": dict(scores), "state": state})
            return scores

        def recording_finish(trainer: loop.Trainer, step: int) -> None:
            weights = trainer.average.state if trainer.average is not None else trainer.net.state_dict()
            recorder.final = {"step": step, "state": {k: v.detach().cpu().clone() for k, v in weights.items()}}
            finish(trainer, step)

        loop.Trainer.evaluate, loop.Trainer.finish = recording_evaluate, recording_finish


def others_scores(model: Model, others: list) -> list[float]:
    """Mean AP at IoU 0.5, 0.6, ... 0.9 over the other images (Segment's result)."""
    rows = [matching_accuracies(truth, matrix.segment(image, model, rgb=image.ndim == 3, device="cpu"))
            for _, image, truth in others]
    return np.mean(rows, axis=0).tolist()


def run_cell(domain: str, mode: str, seed: int, seconds: float, recorder: CandidateRecorder,
             settings: list[str] = ()) -> dict:
    images = matrix.DOMAINS[domain]()
    index = max(range(len(images)), key=lambda i: images[i][2].size)
    name, image, labels = images[index]
    others = [im for i, im in enumerate(images) if i != index][:5]
    valid = None
    if mode == "mask":
        valid = np.zeros(labels.shape, bool)
        valid[:, : labels.shape[1] // 3] = True
    base = starting_model("nuclei")
    model = starting_model("nuclei")
    config = replace(default_config(scratch=False, task="instances", max_seconds=seconds), device="cpu", seed=seed)
    config = matrix.with_overrides(config, list(settings))
    recorder.candidates.clear()
    result = finetune(model, [TrainingPair(image, labels, valid, rgb=image.ndim == 3, name=name)],
                      config=config, base="nuclei")
    rows = []
    for candidate in [*recorder.candidates, {**recorder.final, "step": -recorder.final["step"], "held": None}]:
        weights = Model(copy.deepcopy(model.net), copy.deepcopy(base.metadata), "candidate", None)
        weights.net.load_state_dict(candidate["state"])
        rows.append({"step": candidate["step"], "held": candidate["held"], "others": others_scores(weights, others)})
    return {"domain": domain, "mode": mode, "seed": seed, "steps": result.train.steps, "rows": rows,
            **({"settings": list(settings)} if settings else {})}


def _strictly_better(rows: list[dict], passes: Callable[[dict, dict], bool], key: Callable[[dict], tuple]) -> dict:
    parent, best = rows[0], rows[0]
    for row in rows[1:]:
        if row["held"] is not None and passes(row["held"], parent["held"]) and (
                best is parent or key(row["held"]) >= key(best["held"])):
            best = row
    return best


def _better_or_perfect(h: dict, p: dict) -> bool:
    """The loop's rule (``loop.BestWeights``): AP50-90 strictly higher, or both perfect (``loop.perfect_tie``)."""
    return h["ap50_90"] > p["ap50_90"] or perfect_tie(h["ap50_90"], p["ap50_90"])


JUDGES: dict[str, Callable[[list[dict]], dict]] = {
    "AP50": lambda rows: _strictly_better(rows, lambda h, p: h["ap50"] > p["ap50"], lambda h: (h["ap50"], h["dice"])),
    "AP50-90": lambda rows: _strictly_better(rows, lambda h, p: h["ap50_90"] > p["ap50_90"],
                                             lambda h: (h["ap50_90"], h["ap50"], h["dice"])),
    "AP50 & AP50-90": lambda rows: _strictly_better(
        rows, lambda h, p: h["ap50"] >= p["ap50"] and h["ap50_90"] > p["ap50_90"],
        lambda h: (h["ap50_90"], h["ap50"], h["dice"])),
    "AP50-90, perfect ties": lambda rows: _strictly_better(rows, _better_or_perfect,
                                                           lambda h: (h["ap50_90"], h["ap50"], h["dice"])),
    "last average": lambda rows: rows[-1],
    "oracle": lambda rows: max(rows, key=lambda r: r["others"][0]),
}


def table(records: list[dict]) -> str:
    """Other images' AP50 for each cell and judge (the step picked after @; negative: the final average)."""
    lines = ["| cell | steps | parent | " + " | ".join(JUDGES) + " |", "|---" * (3 + len(JUDGES)) + "|"]
    gains: dict[str, list[float]] = {j: [] for j in JUDGES}
    for record in records:
        rows = record["rows"]
        parent = rows[0]["others"][0]
        cells = []
        for judge, pick in JUDGES.items():
            chosen = pick(rows)
            gains[judge].append(chosen["others"][0] - parent)
            cells.append(f"{chosen['others'][0]:.3f} @{chosen['step']}")
        lines.append(f"| {record['domain']} {record['mode']} (seed {record['seed']}) | {record['steps']} | "
                     f"{parent:.3f} | " + " | ".join(cells) + " |")
    lines.append("| **mean gain** | | | " + " | ".join(f"**{np.mean(g):+.3f}**" for g in gains.values()) + " |")
    lines.append("| cells worse / worst | | | " + " | ".join(
        f"{sum(x < -0.0005 for x in g)} / {min(g):+.3f}" for g in gains.values()) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cells", default="all", help="domain:mode,... (e.g. enlarged:dense,tissue:mask)")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--out", type=Path, default=None, help="append each cell's record here (JSON lines)")
    parser.add_argument("--table", type=Path, nargs="+", help="only print the comparison from saved records")
    parser.add_argument("--data", type=Path, default=matrix.DATA, help="the folder holding dsb2018/ and s-bsst265/")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="a TrainConfig field to change (repeatable), as bench_finetune_matrix.py's --set")
    args = parser.parse_args()
    if args.table:
        print(table([json.loads(line) for path in args.table for line in path.read_text().splitlines() if line]))
        return
    matrix.DATA = args.data
    cells = CELLS if args.cells == "all" else args.cells.split(",")
    recorder = CandidateRecorder()
    recorder.install()
    records = []
    for seed in (int(s) for s in args.seeds.split(",")):
        for cell in cells:
            domain, mode = cell.split(":")
            record = run_cell(domain, mode, seed, args.seconds, recorder, args.set)
            records.append(record)
            if args.out is not None:
                with args.out.open("a") as out:
                    out.write(json.dumps(record) + "\n")
            print(f"{cell} seed {seed}: {record['steps']} steps", file=sys.stderr, flush=True)
    print(table(records))


if __name__ == "__main__":
    main()
