"""Average the weights of models trained from the same starting point ("model soup").

    python scripts/average_models.py A.safetensors B.safetensors -o SOUP.safetensors

Runs continued from one model stay in one basin of the loss, so their
average is usually at least as good as either and less tied to the noise of
one run. The first model's metadata is kept and the ingredients are recorded
in its training history.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from napari_unet_seg.core.model.modelfile import load_model_file, save_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", type=Path, nargs="+")
    parser.add_argument("-o", "--out", type=Path, required=True)
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args()
    models = [load_model_file(p) for p in args.models]
    shapes = {tuple(sorted(m.metadata["architecture"].items())) for m in models}
    if len(shapes) != 1:
        sys.exit("error: the models have different architectures and cannot be averaged")
    states = [m.net.state_dict() for m in models]
    averaged = {}
    for key, value in states[0].items():
        if value.is_floating_point():
            averaged[key] = torch.stack([s[key] for s in states]).mean(0)
        else:  # BatchNorm's step counter
            averaged[key] = value
    soup = models[0]
    soup.net.load_state_dict(averaged)
    training = dict(soup.metadata.get("training", {}))
    training["averaged_from"] = [
        {"file": p.name, "steps": m.metadata.get("training", {}).get("steps"),
         "arguments": m.metadata.get("training", {}).get("arguments")}
        for p, m in zip(args.models, models)
    ]
    soup.metadata["training"] = training
    print(f"saved {save_model(soup, args.out, overwrite=args.overwrite)}")


if __name__ == "__main__":
    main()
