"""Finding models by name: the built-in ones shipped in the package, the user's folder, or a file path.

Loaded models are cached, so pressing Segment twice does not rebuild the network.
"""

from __future__ import annotations

import copy
import os
from importlib import resources
from pathlib import Path

from .lock import exclusive
from .modelfile import SUFFIX, Model, ModelFileError, load_model_file, refuse_pickle

BUILTIN_PACKAGE = "napari_unet_seg.models"
DEFAULT_MODEL = "nuclei"
MODEL_DIR_VARIABLE = "NAPARI_UNET_SEG_MODEL_DIR"  # a model folder of the user's choice


def user_model_dir() -> Path:
    """Where fine-tuned models live (a per-user data folder); overridable for tests."""
    override = os.environ.get(MODEL_DIR_VARIABLE)
    if override:
        return Path(override)
    from platformdirs import user_data_dir

    return Path(user_data_dir("napari-unet-seg", appauthor=False)) / "models"


def builtin_model_paths() -> dict[str, Path]:
    """Models shipped inside the package, by name."""
    folder = resources.files(BUILTIN_PACKAGE)
    return {
        Path(entry.name).stem: Path(str(entry))
        for entry in folder.iterdir()
        if entry.name.endswith(SUFFIX)
    }


def available_models() -> dict[str, Path]:
    """Built-in and user models by name (a user model never hides a built-in one)."""
    models: dict[str, Path] = {}
    folder = user_model_dir()
    if folder.is_dir():
        for path in sorted(folder.glob(f"*{SUFFIX}")):
            models[path.stem] = path
    models.update(builtin_model_paths())
    return models


def resolve_model_path(name_or_path: str | os.PathLike) -> Path:
    """A model name (built-in or user) or a file path -> the file's path.

    A name wins over a file of that name in the current folder, unless it is
    written as a file (``x.safetensors``, ``./x``): then the file named is the
    one run, never a model of the folder that happens to share its name.
    """
    text = str(name_or_path)
    if not text.strip():
        raise ModelFileError("no model given: name one (see `unet-seg models`) or give a .safetensors file")
    models = available_models()
    path = Path(text).expanduser()
    named_as_file = bool(path.suffix) or os.sep in text or "/" in text
    if text in models and not (named_as_file and path.is_file()):  # a file named as a file is that file
        return models[text]
    if path.suffix or os.sep in text or path.exists():
        saved_as = path.with_name(path.name + SUFFIX)
        if not path.exists() and path.suffix != SUFFIX and saved_as.is_file():
            return saved_as  # save_model("m.pt") wrote m.pt.safetensors
        if not path.exists():
            raise ModelFileError(f"model file not found: {path}")
        refuse_pickle(path)
        return path
    if text == DEFAULT_MODEL:
        raise ModelFileError("the built-in 'nuclei' model is not installed in this copy of napari-unet-seg")
    known = ", ".join(sorted(models)) or "none"
    raise ModelFileError(f"no model named {text!r} (available: {known}); give a name or a .safetensors path")


_CACHE: dict[tuple[str, float], Model] = {}


def cached_model(name_or_path: str | os.PathLike | None = None) -> Model:
    """The model by name (``"nuclei"``, a user model) or path (None = the default), shared by every run of
    this process: read it, never change it (:func:`load_model` gives a copy of one's own).

    Cached by path and modification time, so pressing Segment twice does
    not rebuild the network, and a file written anew is read anew.
    """
    path = resolve_model_path(DEFAULT_MODEL if name_or_path is None else name_or_path)
    key = (str(path.resolve()), path.stat().st_mtime)
    if key not in _CACHE:
        _CACHE[key] = load_model_file(path)
    return _CACHE[key]


def load_model(name_or_path: str | os.PathLike | None = None) -> Model:
    """Load a model by name (``"nuclei"``, a user model) or path; None = the default.

    Returns a copy of its own: fine-tuning it, or changing its settings,
    changes no later ``segment("nuclei")`` (those share :func:`cached_model`).
    """
    shared = cached_model(name_or_path)
    with exclusive(shared.net):  # not mid-way through another thread's inference (eval mode, channels_last)
        net = copy.deepcopy(shared.net)
    return Model(net=net, metadata=copy.deepcopy(shared.metadata), name=shared.name, path=shared.path)


__all__ = ["DEFAULT_MODEL", "available_models", "builtin_model_paths", "cached_model", "load_model",
           "resolve_model_path", "user_model_dir"]
