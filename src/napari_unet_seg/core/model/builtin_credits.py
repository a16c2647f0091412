"""Who made the built-in models, under what licence, and the datasets to cite: added to their metadata on reading.

Their files were written before model metadata held credits. Writing the
credits into them would change the files' hashes, and every result made
with them (whose provenance names the model by its hash) would then read as
made by another model. Models trained from now on carry their credits in
the file (``scripts/train_nuclei.py``), and the file's own credits win.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

DSB2018 = {"text": "Caicedo et al. (2019): Nucleus segmentation across imaging experiments: the 2018 Data Science "
                   "Bowl. Nature Methods 16, 1247-1253 (training data, CC0)", "doi": "10.1038/s41592-019-0612-7"}
S_BSST265 = {"text": "Kromp et al. (2020): An annotated fluorescence image dataset for training nuclear segmentation "
                     "methods. Scientific Data 7, 262 (training data, CC0)", "doi": "10.1038/s41597-020-00608-w"}
MODELS_FOLDER = Path(__file__).resolve().parents[2] / "models"  # napari_unet_seg/models


def builtin_credits(extra_data: bool) -> dict[str, Any]:
    """The credits of a built-in model trained on dsb2018 (and s-bsst265 with ``extra_data``)."""
    return {"authors": ["napari-unet-seg developers"], "license": "BSD-3-Clause",
            "cite": [DSB2018, *([S_BSST265] if extra_data else [])]}


def with_builtin_credits(path: str | os.PathLike, metadata: dict[str, Any]) -> dict[str, Any]:
    """``metadata`` with the credits of a shipped model file that has none of its own; others as they are."""
    if "authors" in metadata or Path(path).resolve().parent != MODELS_FOLDER:
        return metadata
    data = str((metadata.get("training") or {}).get("data", ""))
    return {**metadata, **builtin_credits("s-bsst265" in data)}
