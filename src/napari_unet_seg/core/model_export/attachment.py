"""What a package exported by napari-unet-seg can give back: the metadata of the model file it attaches.

bioimage.io cannot express a model's task, object size, post-processing or
automatic inversion; our exporter therefore attaches the model file itself.
Only that file's JSON header is used (read as any model file's header is, so
no code runs), and only when it describes the very network the package
holds: the weights always come from the package's own weights entry.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from ..model.modelfile import SUFFIX, read_metadata
from ..model.schema import ModelFileError
from .package import ImportRefused, PackageFiles


def attached_metadata(files: PackageFiles, attachments: tuple[str, ...], arch: dict[str, int],
                      activation: str | None, weights_bytes: int) -> tuple[dict[str, Any] | None, list[str]]:
    """The metadata of the first attached model file of the same network (or None), and notes on those skipped.

    ``weights_bytes`` bounds the network's weights; a model file may add its
    training history, so a larger file is not read.
    """
    notes = []
    limit = weights_bytes + 100_000_000
    for name in attachments:
        if not name.endswith(SUFFIX):
            continue
        try:
            metadata = _header(files, name, limit)
        except ImportRefused as exc:
            notes.append(f"its attachment {name} was not used: {exc}")
            continue
        problem = _mismatch(metadata, arch, activation)
        if problem:
            notes.append(f"its attachment {name} was not used: {problem}")
            continue
        return metadata, notes
    return None, notes


def _header(files: PackageFiles, name: str, limit: int) -> dict[str, Any]:
    """The attached file's checked metadata (through a temporary copy: model files are read by path)."""
    data = files.read(name, "attached model file", limit)
    with tempfile.TemporaryDirectory(prefix="unet-seg-import-") as scratch:
        path = Path(scratch) / Path(name).name
        path.write_bytes(data)
        try:
            return read_metadata(path)
        except ModelFileError as exc:
            raise ImportRefused(str(exc).replace(str(path), path.name)) from None


def _mismatch(metadata: dict[str, Any], arch: dict[str, int], activation: str | None) -> str | None:
    """Why the attached file's metadata does not describe the package's network, or None when it does."""
    theirs = {k: v for k, v in metadata.get("architecture", {}).items() if k != "type"}
    if theirs != arch:
        return "it describes another network"
    softmax = metadata["task"] == "semantic" and arch["num_classes"] > 1
    if activation is not None and activation != ("softmax" if softmax else "sigmoid"):
        return f"its task ({metadata['task']}) does not match the package's {activation} output"
    return None
