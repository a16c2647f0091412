"""Where a trained model goes and what it is called: never over an existing model or file."""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Collection
from pathlib import Path

from ..common.errors import first_line
from ..model.modelfile import SUFFIX, Model, save_model
from ..model.registry import available_models


def model_file_path(path: str | os.PathLike) -> Path:
    """``path`` with the ``.safetensors`` suffix added unless it has it (``model.pt`` -> ``model.pt.safetensors``)."""
    path = Path(path)
    return path if path.suffix == SUFFIX else path.with_name(path.name + SUFFIX)


_SUFFIX = re.compile(r"-finetuned(-\d+)?$")


def fresh_model_name(base: str, folder: Path, *, new: bool = False, taken: Collection[str] = ()) -> str:
    """``<base>-finetuned``, then ``-2``, ``-3``...: never the name of an existing model or file, nor one of
    ``taken`` (a project's history: a model renamed or moved away still has its name there).

    ``new``: a model trained from scratch fine-tunes nothing: ``<base>``, ``<base>-2``...
    """
    stem = (base or "model") if new else _SUFFIX.sub("", base or "model") + "-finetuned"
    taken = set(available_models()) | set(taken)
    name, n = stem, 1
    while name in taken or (folder / f"{name}.safetensors").exists():
        n += 1
        name = f"{stem}-{n}"
    return name


_FORBIDDEN = set('<>:"/\\|?*')  # Windows refuses these in a file name; / and \\ would leave the model folder
_RESERVED = {"con", "prn", "aux", "nul", *(f"com{k}" for k in range(1, 10)), *(f"lpt{k}" for k in range(1, 10))}
MAX_NAME = 200  # characters: the model file and its checkpoint's longer name stay within 255 bytes


def check_model_name(name: str) -> None:
    """Refuse a typed model name that is no plain file name, in one line: ``../escape`` saved the model outside
    the model folder, where no list showed it, and ``a:b*?`` or ``CON`` break on shared or Windows folders."""
    if not name:
        return
    bad = sorted({c for c in name if c in _FORBIDDEN or ord(c) < 32})
    if bad or name in (".", "..") or name.startswith(".."):
        shown = " ".join(repr(c)[1:-1] for c in bad) or name
        raise ValueError(f"'{name}' cannot name a model: leave out {shown} (a model is one file in the model "
                         "folder; letters, digits, spaces, - and _ are safe)")
    if name.split(".")[0].strip().lower() in _RESERVED:
        raise ValueError(f"'{name}' cannot name a model: Windows keeps that name for a device")
    if name.endswith((" ", ".")):
        raise ValueError(f"'{name}' cannot name a model: Windows ends no file name with a space or a dot")
    if len(name.encode()) > MAX_NAME:
        raise ValueError(f"a model name of {len(name.encode())} bytes is too long: give at most {MAX_NAME}")


def starting_label(init: str | os.PathLike) -> str:
    """A starting model as the user named it: a model's name, or a file's name without its folder and suffix (the
    name inside a renamed or received file is not the one they picked)."""
    text = str(init)
    return Path(text).stem if text.lower().endswith(".safetensors") or os.sep in text else text


def new_model_base(task: str) -> str:
    """The name a model trained from scratch starts from: what it finds, not what it came from."""
    return "classes-model" if task == "semantic" else "objects-model"


def path_in_folder(folder: Path, name: str, base: str, *, new: bool = False, taken: Collection[str] = ()) -> Path:
    """Where a model the user named ``name`` (empty: none) goes in ``folder``; a taken name gets a fresh one.

    Used where the user types a name (the Train widget); a path given
    explicitly (``unet-seg train -o``) is refused instead when it exists.
    ``taken``: names recorded elsewhere (see :func:`fresh_model_name`).
    """
    if name and name not in available_models() and name not in taken and not model_file_path(folder / name).exists():
        return model_file_path(folder / name)
    return model_file_path(folder / fresh_model_name(name or base, folder, new=new and not name, taken=taken))


def checkpoint_path(final: Path) -> Path:
    """Where the checkpoints of a model being trained into ``final`` go: beside it, a name no file has yet.

    An earlier run's checkpoint (left by a crash) is never overwritten: it may be all that is left of it.
    """
    final = model_file_path(final)
    path, n = final.with_name(f"{final.stem}-checkpoint{SUFFIX}"), 2
    while path.exists():
        path, n = final.with_name(f"{final.stem}-checkpoint-{n}{SUFFIX}"), n + 1
    return path


def save_checkpoint(model: Model, state: dict, *, path: str | Path) -> Path:
    """Write ``model`` with the weights ``state`` to ``path``, replacing the previous checkpoint (atomically)."""
    net = copy.deepcopy(model.net).to("cpu")
    net.load_state_dict(state)
    metadata = {**copy.deepcopy(model.metadata), "name": Path(path).stem,
                "checkpoint": "written during training; the final model replaces it when training ends"}
    return save_model(Model(net=net, metadata=metadata), path, overwrite=True)


def save_trained(model: Model, path: str | Path) -> Path:
    """Save under ``path`` (never over an existing file), naming the model after its file."""
    path = model_file_path(path)
    model.metadata["name"] = path.stem
    saved = save_model(model, path)
    model.name, model.path = path.stem, saved
    return saved


def save_trained_somewhere(model: Model, paths: list[Path]) -> tuple[Path, list[str]]:
    """Save the trained model at the first of ``paths`` that can be written, else in the temporary folder.

    Minutes of training are not thrown away because one disk is full or a
    folder became read-only: the model goes to the next place (the model
    folder, then the system's temporary folder), and the returned notes say
    where it went and why (empty when the first place took it). ``OSError``
    only when nowhere could hold it.
    """
    import tempfile

    tried: list[str] = []
    fallback = Path(tempfile.gettempdir()) / "napari-unet-seg-models"
    places = [*paths, path_in_folder(fallback, Path(paths[0]).stem, Path(paths[0]).stem)]
    for place in places:
        taken = None
        try:
            if model_file_path(place).exists():  # written meanwhile (another run given the same -o): beside it
                taken, place = model_file_path(place), _free_beside(model_file_path(place))
            saved = save_trained(model, place)
        except OSError as exc:
            tried.append(f"{model_file_path(place)} ({first_line(exc)})")
            continue
        notes = [f"could not write {'; nor '.join(tried)}: the model was saved as {saved} instead"] if tried else []
        if taken is not None:
            notes.append(f"{taken} was written while this model trained (another run?) and is kept: this model was "
                         f"saved as {saved}")
        return saved, notes
    raise OSError(f"the trained model could not be saved anywhere: {'; '.join(tried)}")


def _free_beside(path: Path) -> Path:
    """``<stem>-2.safetensors`` beside ``path`` (or -3, ...): the first name nobody holds."""
    k = 2
    while (candidate := path.with_name(f"{path.stem}-{k}{SUFFIX}")).exists():
        k += 1
    return candidate
