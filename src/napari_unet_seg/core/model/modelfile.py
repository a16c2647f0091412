"""One-file models: safetensors weights plus a JSON metadata block, never pickle.

A model file is a plain ``.safetensors`` file whose header metadata holds, under
the key ``napari_unet_seg``, everything needed to use the weights the same way on
every path (widget, menu, CLI, batch): architecture, task, classes, expected
input, normalisation, post-processing defaults, training history and lineage.
Finding models by name (built-in, user folder) is :mod:`.registry`'s job.
"""

from __future__ import annotations

import copy
import json
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ..common.atomic import atomic_path
from ..common.errors import first_line
from .builtin_credits import with_builtin_credits
from .schema import TASKS, ModelFileError, architecture, check_metadata, check_tensors
from .unet import UNet

METADATA_KEY = "napari_unet_seg"
FORMAT_VERSION = 1
SUFFIX = ".safetensors"
PICKLE_SUFFIXES = {".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".bin"}



def default_metadata(task: str = "instances") -> dict[str, Any]:
    """Metadata that a new model starts from; callers fill in what they know."""
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, not {task!r}")
    return {
        "task": task,
        # instances: channel 0 = foreground, channel 1 = normalised distance to the edge
        "class_names": ["background", "object"],
        "input": {"channels": 1, "axes": "CYX", "color": "gray"},
        "normalization": {"method": "percentile", "low": 1.0, "high": 99.8, "invert": "auto"},
        "postprocess": {},
        "object_diameter": None,
        "training": {},
        "lineage": [],
    }


DEFAULT_AUTO_BAND = (0.75, 1.7)


@dataclass
class Model:
    """A network and the metadata that says how to feed it and read its output."""

    net: UNet
    metadata: dict[str, Any] = field(default_factory=default_metadata)
    name: str = "unsaved"
    path: Path | None = None

    @property
    def task(self) -> str:
        return self.metadata["task"]

    @property
    def class_names(self) -> list[str]:
        return list(self.metadata.get("class_names", []))

    @property
    def in_channels(self) -> int:
        return self.net.in_channels

    @property
    def normalization(self) -> dict[str, Any]:
        return self.metadata.get("normalization", {})

    @property
    def postprocess(self) -> dict[str, Any]:
        return self.metadata.get("postprocess", {})

    @property
    def object_diameter(self) -> float | None:
        """Object diameter (px) the network segments best at; rescaling aims at it.

        The training data's median, unless post-processing tuning found that the
        network works better with objects shown at another size.
        """
        return self.metadata.get("object_diameter")

    @property
    def auto_band(self) -> tuple[float, float]:
        """Measured sizes within these factors of :attr:`object_diameter` are not rescaled."""
        low, high = self.metadata.get("auto_band", DEFAULT_AUTO_BAND)
        return float(low), float(high)


def _package_version() -> str:
    try:
        from importlib.metadata import version

        return version("napari-unet-seg")
    except Exception:  # noqa: BLE001 - running from a source tree
        return "unknown"


def save_model(
    model: Model, path: str | os.PathLike, *, overwrite: bool = False, half_precision: bool = False
) -> Path:
    """Write ``model`` as one safetensors file (atomically: temp file + rename).

    Refuses to replace an existing file unless ``overwrite`` is true: model
    files are user work. ``half_precision`` stores the weights as float16 (half
    the file, so a wider built-in model fits in the wheel); they are loaded
    back as float32. The file ends in ``.safetensors`` (added when ``path``
    lacks it: ``m.pt`` becomes ``m.pt.safetensors``), the model is named after
    it, and the path written is returned.
    """
    if not isinstance(model, Model):
        raise TypeError(f"save_model takes a Model (from load_model or training), not {type(model).__name__}")
    path = Path(path)
    if path.suffix != SUFFIX:
        path = path.with_name(path.name + SUFFIX)
    if path.exists() and not overwrite:
        raise ModelFileError(f"{path} already exists; choose another name (model files are never overwritten)")
    path.parent.mkdir(parents=True, exist_ok=True)
    metadata = copy.deepcopy(model.metadata)
    metadata.update(
        format="napari-unet-seg",
        format_version=FORMAT_VERSION,
        name=path.stem,  # a model is named after its file, as the model lists show it
        architecture={"type": "UNet", **model.net.config()},
        package_version=_package_version(),
    )
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.net.state_dict().items()}
    if half_precision:
        tensors = {k: v.half() if v.is_floating_point() else v for k, v in tensors.items()}
    metadata["weights_dtype"] = "float16" if half_precision else "float32"
    with atomic_path(path, ".tmp") as tmp:
        try:
            save_file(tensors, str(tmp), metadata={METADATA_KEY: json.dumps(metadata)})
        except Exception as exc:  # safetensors' own error for a full disk, an I/O error: a write that failed
            if isinstance(exc, OSError):
                raise
            raise OSError(f"could not write {path.name}: {first_line(exc)}") from None
        if path.exists() and not overwrite:  # lost a race with another writer
            raise ModelFileError(f"{path} already exists; choose another name")
    return path


MAX_HEADER_BYTES = 100_000_000


def read_header(path: str | os.PathLike) -> tuple[dict[str, Any], dict[str, Any]]:
    """The safetensors header (tensor names, shapes, types) and our checked metadata, without the weights."""
    path = Path(path)
    refuse_pickle(path)
    try:
        with open(path, "rb") as f:
            header_len = int.from_bytes(f.read(8), "little")
            if not 2 <= header_len <= MAX_HEADER_BYTES:
                raise ValueError
            header = json.loads(f.read(header_len))
        metadata = json.loads(header["__metadata__"][METADATA_KEY])
    except FileNotFoundError:
        raise ModelFileError(f"model file not found: {path}") from None
    except IsADirectoryError:
        if is_bioimageio_package(path):
            raise ModelFileError(import_hint(path)) from None
        raise ModelFileError(f"{path} is a folder, not a model file") from None
    except (ValueError, KeyError, TypeError, OSError, RecursionError):
        if is_bioimageio_package(path):
            raise ModelFileError(import_hint(path)) from None
        raise ModelFileError(f"{path} is not a napari-unet-seg model file (no readable model metadata)") from None
    if not isinstance(header, dict):
        raise ModelFileError(f"{path} is not a napari-unet-seg model file (no readable model metadata)")
    check_metadata(metadata, str(path), FORMAT_VERSION)
    _check_complete(path, 8 + header_len, header)
    return header, with_builtin_credits(path, metadata)


_PACKAGE_HINT = ("{path} is a bioimage.io model package, not a model file: turn it into one with "
                 "`unet-seg import-model {path} -o {target}`")


def import_hint(path: Path) -> str:
    """The one line that says a bioimage.io package is not a model file, with the command that makes one (named
    after the package: its own name may be a built-in model's, which an import into the model folder refuses)."""
    stem = path.parent.name if path.name in ("rdf.yaml", "bioimageio.yaml") else path.stem
    return _PACKAGE_HINT.format(path=path, target=f"{stem or 'imported'}-imported.safetensors")


def is_bioimageio_package(path: Path) -> bool:
    """A bioimage.io package given where a model file goes: a folder or zip holding an rdf.yaml, or the yaml."""
    if path.name in ("rdf.yaml", "bioimageio.yaml"):
        return True
    if path.is_dir():
        return (path / "rdf.yaml").is_file() or (path / "bioimageio.yaml").is_file()
    try:
        with zipfile.ZipFile(path) as archive:
            return any(Path(name).name in ("rdf.yaml", "bioimageio.yaml") for name in archive.namelist())
    except (OSError, zipfile.BadZipFile):
        return False


def _check_complete(path: Path, weights_start: int, header: dict[str, Any]) -> None:
    """A file cut short (a copy or download that stopped) has its metadata but not all its weights: say so early.

    Model lists read only the header; without this they would offer the file
    as fine, and only loading it would fail.
    """
    ends = [entry["data_offsets"][1] for key, entry in header.items() if key != "__metadata__"
            and isinstance(entry, dict) and isinstance(entry.get("data_offsets"), list)
            and len(entry["data_offsets"]) == 2 and isinstance(entry["data_offsets"][1], int)]
    needed = weights_start + max(ends, default=0)
    size = path.stat().st_size
    if size < needed:
        raise ModelFileError(f"{path.name} is incomplete: {size} of its {needed} bytes (a copy or download cut short?)")


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The JSON metadata of a model file (checked), without loading the weights."""
    return read_header(path)[1]


@dataclass(frozen=True)
class ModelInfo:
    """What a user interface needs to know about a model file, read without loading its weights."""

    name: str
    task: str
    in_channels: int
    class_names: tuple[str, ...]
    object_diameter: float | None

    @classmethod
    def of(cls, path: str | os.PathLike) -> ModelInfo:
        """The description of the model file at ``path``; :class:`ModelFileError` when it is unusable."""
        path = Path(path)
        metadata = read_metadata(path)
        try:
            return cls(name=path.stem, task=str(metadata.get("task", "instances")),
                       in_channels=int(metadata.get("architecture", {}).get("in_channels", 1)),
                       class_names=tuple(map(str, metadata.get("class_names", []))),
                       object_diameter=metadata.get("object_diameter"))
        except (TypeError, ValueError, AttributeError):
            raise ModelFileError(f"{path.name}: its metadata cannot be read") from None


def refuse_pickle(path: Path) -> None:
    """Pickled PyTorch files can run code when loaded: refuse them by name, before opening."""
    if path.suffix.lower() in PICKLE_SUFFIXES:
        raise ModelFileError(
            f"{path.name} is a PyTorch pickle, which can run arbitrary code when loaded; "
            "napari-unet-seg only loads .safetensors model files"
        )


def load_model_file(path: str | os.PathLike) -> Model:
    """Load a model file; every failure is a one-line :class:`ModelFileError`."""
    path = Path(path)
    header, metadata = read_header(path)
    arch = architecture(metadata, path.name)
    check_tensors(header, arch, path.name)  # before anything is allocated
    try:
        net = UNet(**arch)
        state = load_file(str(path), device="cpu")
        net.load_state_dict(state, strict=True)
    except (KeyError, TypeError, ValueError, RuntimeError, SafetensorError, OSError) as exc:
        raise ModelFileError(f"{path.name} is damaged or incomplete: {first_line(exc, 200)}") from None
    if not all(bool(torch.isfinite(tensor).all()) for tensor in state.values() if tensor.is_floating_point()):
        raise ModelFileError(f"{path.name} is damaged: some of its weights are not numbers (NaN or infinite), so it "
                             "would find nothing in any image")
    net.eval()
    metadata["name"] = path.stem  # a copied or renamed file is the model of its new name everywhere
    return Model(net=net, metadata=metadata, name=path.stem, path=path)


def new_model(
    task: str = "instances",
    *,
    in_channels: int = 1,
    num_classes: int | None = None,
    depth: int = 4,
    base_channels: int = 16,
    class_names: list[str] | None = None,
) -> Model:
    """A freshly initialised model with consistent metadata.

    Instance models always have two output channels (foreground, centre map);
    semantic models have one channel per class, background included.
    """
    metadata = default_metadata(task)
    if task == "instances":
        num_classes = 2
        metadata["class_names"] = ["background", "object"]
    else:
        if num_classes is None or num_classes < 2:
            raise ValueError("a semantic model needs at least 2 classes (background included)")
        metadata["class_names"] = class_names or ["background"] + [f"class {i}" for i in range(1, num_classes)]
    metadata["input"]["channels"] = in_channels
    if in_channels > 1:
        metadata["input"]["color"] = "channels"
    net = UNet(in_channels=in_channels, num_classes=num_classes, depth=depth, base_channels=base_channels)
    return Model(net=net, metadata=metadata)


__all__ = ["Model", "ModelFileError", "ModelInfo", "load_model_file", "new_model", "read_metadata", "refuse_pickle", "save_model"]
