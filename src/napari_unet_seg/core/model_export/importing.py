"""A bioimage.io package of napari-unet-seg's U-Net -> one of our model files (safetensors + JSON), running nothing.

The steps: open the package (:mod:`.package`), read its description
(:mod:`.description`), recognise our U-Net in it (:mod:`.our_unet`), map its
normalisation back (:mod:`.mapping`) and take what bioimage.io cannot express
from the model file our exporter attaches (:mod:`.attachment`). The output is
checked before any of that, and written only at the end, atomically.
"""

from __future__ import annotations

import copy
import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..common.atomic import check_writable_folder
from ..common.errors import first_line
from ..model.modelfile import SUFFIX, Model, default_metadata, save_model
from ..model.registry import builtin_model_paths, user_model_dir
from ..model.schema import ModelFileError
from ..model.unet import UNet
from .attachment import attached_metadata
from .description import PackageDescription, check_installed, read_description
from .mapping import ExportedNormalization, imported_activation, imported_normalization, restored_normalization
from .our_unet import load_network, our_architecture, reproduce_test_output, weights_bytes
from .package import ImportRefused, PackageFiles

# what an attached model file of the same network gives back: all bioimage.io cannot say, and the history
KEPT = ("class_names", "input", "postprocess", "object_diameter", "auto_band", "training", "lineage", "cite")


@dataclass(frozen=True)
class ImportedModel:
    """The model written, how closely it reproduced the package's test output, and what the user should know."""

    model: Model
    path: Path
    difference: float
    notes: tuple[str, ...]


def suggested_name(package_name: str) -> str:
    """A model (and file) name from a package's name: letters, digits, spaces and ``-_.()+``."""
    cleaned = re.sub(r"[^A-Za-z0-9 _.()+-]+", "-", package_name).strip(" .-")[:100]
    return cleaned or "imported-model"


def import_bioimageio(
    package: str | os.PathLike,
    output: str | os.PathLike | None = None,
    *,
    name: str | None = None,
    overwrite: bool = False,
) -> ImportedModel:
    """Write the bioimage.io package ``package`` (folder or .zip) as a model file, when its network is our U-Net.

    ``output`` is the ``.safetensors`` file to write; None puts ``<name>.safetensors``
    in the user model folder, where every model list finds it. ``name``
    (default: the file's name, or the package's) names the model. An existing
    file is kept unless ``overwrite``. Every refusal is a one-line :class:`ImportRefused`.
    """
    if name is not None and not name.strip():
        raise ImportRefused("the model's name is empty")
    if name is not None and name.lower().endswith(SUFFIX):  # a name that reads as a file: `--model x.safetensors`
        raise ImportRefused(f"{name!r} is a file's name, not a model's: name it {name[:-len(SUFFIX)]!r}")
    check_installed()
    target = None if output is None else _check_output(Path(output), overwrite)
    with _about(package):
        files = PackageFiles(package)
    with files:
        with _about(package):
            descr = read_description(files)
            arch = our_architecture(descr)
        if target is None:
            name = name or suggested_name(descr.name)
            target = _check_output(_in_user_folder(name), overwrite)
        with _about(package):
            net, digest = load_network(files, descr, arch)
            norm, activation = _operations(descr)
            difference = reproduce_test_output(files, descr, net, norm, activation)
            attached, notes = attached_metadata(files, descr.attachments, arch, activation, weights_bytes(arch))
            task = None if attached else _task(descr, net.num_classes, activation)
    metadata = _metadata(descr, net, norm, attached, task, name or target.stem)
    if attached is None:
        notes.append("the package does not say how large its objects are: napari-unet-seg will not resize images "
                     "for this model")
    elif metadata["normalization"] == norm.settings() != attached.get("normalization"):
        notes.append("its preprocessing differs from its attached model file's; the package's was kept")
    metadata["imported_from"] = {
        "format": "bioimage.io", "format_version": descr.format_version, "package": Path(package).name,
        "name": descr.name, "weights": descr.weights, "weights_sha256": digest,
        "test_output_difference": float(difference), "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    model = Model(net=net, metadata=metadata, name=metadata["name"])
    try:
        model.path = save_model(model, target, overwrite=overwrite)
    except ModelFileError as exc:  # lost a race with another writer
        raise ImportRefused(str(exc)) from None
    return ImportedModel(model, model.path, difference, tuple(notes))


@contextmanager
def _about(package: str | os.PathLike) -> Iterator[None]:
    """Name the package in front of what is refused about it ("PACKAGE: its weights ...")."""
    try:
        yield
    except ImportRefused as exc:
        raise ImportRefused(f"{os.fspath(package)}: {exc}") from None


def _check_output(path: Path, overwrite: bool) -> Path:
    """Refuse, before any work, a file not to overwrite or a folder that cannot be written."""
    if path.suffix != SUFFIX:
        raise ImportRefused(f"{path.name}: a model file's name must end in {SUFFIX}")
    if path.is_dir():
        raise ImportRefused(f"{path} is a folder; give the model file to write")
    if path.exists() and not overwrite:
        raise ImportRefused(f"{path} already exists; choose another name or pass --overwrite")
    try:
        check_writable_folder(path.parent)
    except OSError as exc:
        raise ImportRefused(first_line(exc)) from None
    return path


def _in_user_folder(name: str) -> Path:
    if "/" in name or os.sep in name or name.startswith("."):
        raise ImportRefused(f"{name!r} cannot be a model's name (no slashes, no leading dot)")
    if name in builtin_model_paths():
        raise ImportRefused(f"{name!r} is a built-in model's name; choose another name")
    return user_model_dir() / f"{name}{SUFFIX}"


def _operations(descr: PackageDescription) -> tuple[ExportedNormalization, str | None]:
    try:
        return imported_normalization(descr.preprocessing), imported_activation(descr.postprocessing)
    except ValueError as exc:
        raise ImportRefused(str(exc)) from None


def _task(descr: PackageDescription, classes: int, activation: str | None) -> tuple[str, list[str]]:
    """Task and class names from the package alone: what our exporter writes for each task, read back."""
    names = list(descr.output_channel_names or [])
    if activation == "softmax" and classes >= 2:
        return "semantic", names if len(names) == classes else ["background"] + [f"class {i}" for i in
                                                                               range(1, classes)]
    if classes == 2 and (names == ["foreground", "centre"] or (not names and activation == "sigmoid")):
        return "instances", ["background", "object"]
    if classes == 1 and activation == "sigmoid":
        return "semantic", names or ["object"]
    raise ImportRefused(f"napari-unet-seg cannot tell what its {classes} output(s) "
                        f"{'through a ' + activation if activation else 'without sigmoid or softmax'} mean (its "
                        "instance models give foreground and centre through a sigmoid, its semantic models one "
                        "softmax channel per class)")


def _metadata(descr: PackageDescription, net: UNet, norm: ExportedNormalization, attached: dict[str, Any] | None,
              task: tuple[str, list[str]] | None, name: str) -> dict[str, Any]:
    """Our metadata for the imported network: the attached model file's where there is one, else the package's."""
    if attached is not None:
        metadata = default_metadata(attached["task"])
        metadata.update({k: copy.deepcopy(attached[k]) for k in KEPT if k in attached})
        metadata["normalization"] = restored_normalization(norm, attached.get("normalization"))
    else:
        assert task is not None
        metadata = default_metadata(task[0])
        metadata["class_names"] = task[1]
        metadata["input"].update(channels=net.in_channels, color="channels" if net.in_channels > 1 else "gray")
        metadata["normalization"] = norm.settings()
    metadata.update(name=name, description=descr.description, authors=list(descr.authors), license=descr.license)
    return metadata
