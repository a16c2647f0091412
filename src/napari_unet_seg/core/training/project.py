"""Human-in-the-loop memory: every annotated pair ever trained on, kept in a project folder.

Continuing training then learns from all corrections so far (no forgetting),
and a crash loses nothing: each pair is written (atomically) before training
starts. Layout: ``project.json`` (the index) and ``pairs/<key>.npz`` (image,
labels, optional annotated-region mask). A pair is keyed by its image content
and slice, so re-correcting the same image replaces its labels instead of
adding a stale copy.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
import zipfile
from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from ..common.atomic import atomic_path
from ..common.errors import first_line
from ..model.modelfile import read_metadata
from ..model.registry import MODEL_DIR_VARIABLE, user_model_dir
from .checks import UnusableAnnotation
from .data import TrainingPair
from .rounds import merge_rounds

INDEX = "project.json"
FORMAT_VERSION = 1


def default_project_dir() -> Path:
    """The project used when the user has not chosen one: next to the per-user model folder.

    A model folder chosen with ``NAPARI_UNET_SEG_MODEL_DIR`` holds it
    instead: nothing is written outside a folder the user chose (its parent
    may be a shared drive's root, or another user's). A project that earlier
    releases kept beside such a folder is still used, while there is no new one.
    """
    beside = user_model_dir().parent / "projects" / "default"
    if not os.environ.get(MODEL_DIR_VARIABLE):
        return beside
    inside = user_model_dir() / "projects" / "default"
    return beside if (beside / INDEX).is_file() and not (inside / INDEX).is_file() else inside


LAST_PROJECT = "last_project.txt"  # beside the default project: the folder the Train dock used last


def current_project_dir() -> Path:
    """The project the Train dock used last (while it is there), else :func:`default_project_dir`.

    A project chosen once stays chosen: a dock opened later, and napari
    started again, save the next round there and start on its model in use.
    """
    try:
        text = (default_project_dir().parent / LAST_PROJECT).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return default_project_dir()
    return Path(text) if text and (Path(text) / INDEX).is_file() else default_project_dir()


def lost_project_dir() -> Path | None:
    """The project the Train dock used last when it is gone (moved, renamed or deleted since), else None: the
    dock then starts on another project, and must say so rather than look like every correction was lost."""
    try:
        text = (default_project_dir().parent / LAST_PROJECT).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return Path(text) if text and not Path(text).exists() else None  # a folder without an index yet is not lost


def remember_project_dir(folder: str | os.PathLike) -> None:
    """Make ``folder`` the project a Train dock opened later starts on (nothing is lost if this cannot be written)."""
    pointer = default_project_dir().parent / LAST_PROJECT
    try:
        pointer.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(pointer, ".tmp") as tmp:
            tmp.write_text(str(Path(folder).absolute()), encoding="utf-8")
    except OSError:
        pass


def _key(image: np.ndarray, rgb: bool) -> str:
    digest = hashlib.sha1(np.ascontiguousarray(image).tobytes())
    digest.update(f"{image.shape}{image.dtype}{rgb}".encode())
    return digest.hexdigest()[:16]


def _kind_key(base: str, scribbles: bool, task: str | None) -> str:
    """The key of one kind of annotation of an image: objects (the image's own key), class scribbles, or dense
    classes. One image may be annotated in each kind; none replaces another."""
    return f"{base}-scribbles" if scribbles else f"{base}-classes" if task == "semantic" else base


def _has_objects(labels: np.ndarray, valid: np.ndarray | None) -> bool:
    return bool((labels > 0).any() if valid is None else (labels[valid] > 0).any())


def _task_of(path: Path) -> str:
    """"semantic" for a class model, else "instances" (also for a file that cannot be read: said where used)."""
    try:
        return str(read_metadata(path).get("task", "instances"))
    except Exception:  # noqa: BLE001 - any reader's error: not shown to be a class model
        return "instances"


def trained_when(path: str | os.PathLike) -> str | None:
    """When the model in ``path`` was last trained (its lineage's last date), None if unknown or unreadable: what
    tells a history row's model from another one put at its path later."""
    try:
        last = (read_metadata(path).get("lineage") or [{}])[-1]
    except (ValueError, OSError, KeyError, TypeError):  # ModelFileError is a ValueError: damaged or foreign
        return None
    return str(last["date"]) if isinstance(last, dict) and last.get("date") else None


def replaced_at_path(record: Mapping[str, Any]) -> bool:
    """Whether another model now lies at a history record's path (its own renamed or moved away, and a newer
    one saved there, e.g. by another project's round)."""
    path = recorded_model_path(record)
    trained = record.get("trained")
    return bool(trained) and path.is_file() and trained_when(path) != trained


def recorded_model_path(record: Mapping[str, Any]) -> Path:
    """The model file of a history record. Earlier releases' CLI recorded paths relative to where it ran:
    such a path is looked for there (the current folder) first, then in the user model folder.
    """
    path = Path(str(record.get("path", "")))
    if path.is_absolute() or path.is_file():
        return path
    beside = user_model_dir() / path.name
    return beside if beside.is_file() else path


LOCK = ".project.lock"
LOCK_WAIT = 10.0  # seconds a change waits for another process's (a write takes milliseconds)
LOCK_STALE = 30.0  # a lock file this old was left by a process killed while writing


@contextmanager
def _index_lock(folder: Path) -> Iterator[None]:
    """Hold ``folder``'s lock file while the index is read, changed and written (an ``O_EXCL`` file: works on
    every system and on shared folders). A lock left by a killed process is taken over; one held past
    ``LOCK_WAIT`` is not waited for any longer (a save is never given up for it)."""
    path, deadline, held = folder / LOCK, time.monotonic() + LOCK_WAIT, False
    while not held and time.monotonic() < deadline:
        try:
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            held = True
        except FileExistsError:
            with contextlib.suppress(OSError):
                if time.time() - path.stat().st_mtime > LOCK_STALE:
                    path.unlink()
                    continue
            time.sleep(0.02)
        except OSError:
            break  # a folder that cannot hold the lock (read-only): the write itself will say why
    try:
        yield
    finally:
        if held:
            with contextlib.suppress(OSError):
                path.unlink()


class Project:
    """A folder of annotated pairs and the models trained from them."""

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder)
        self.entries: list[dict[str, Any]] = []
        self.models: list[dict[str, Any]] = []
        self.unreadable: list[str] = []  # what the last pairs() left out, one sentence each
        self._in_use: str | None = None
        self._in_use_classes: str | None = None
        # per pair key: objects of an earlier round's correction that the last add() kept (see .rounds)
        self.kept_from_earlier: dict[str, int] = {}
        self._load()

    def _load(self) -> None:
        """Read the index as it is on disk now (nothing when there is none yet)."""
        index = self.folder / INDEX
        if index.exists():
            try:
                data = json.loads(index.read_text())
                self.entries, self.models = list(data["pairs"]), list(data.get("models", []))
                self._in_use = data.get("in_use") if isinstance(data.get("in_use"), str) else None
                classes = data.get("in_use_classes")
                self._in_use_classes = classes if isinstance(classes, str) else None
            except (ValueError, KeyError, TypeError) as exc:
                raise ValueError(f"{index} is damaged ({exc}); choose another project folder") from None

    @contextmanager
    def _changing(self) -> Iterator[None]:
        """Re-read the index, let the caller change it, write it, holding the project's lock: a pair or a model
        that another process (``unet-seg train`` beside napari, a second napari) recorded since this one read the
        project is kept, not written over with this process's older copy."""
        self.folder.mkdir(parents=True, exist_ok=True)
        with _index_lock(self.folder):
            self._load()
            yield
            self._save_index()

    def __len__(self) -> int:
        return len(self.entries)

    def add(self, pair: TrainingPair, *, scribbles: bool = False, task: str | None = None, source: str = "") -> str:
        """Save ``pair`` now; returns its key.

        It replaces an earlier version of the same image, except where
        ``pair.edited`` says the user changed nothing this round: there the
        earlier correction is kept (:func:`.rounds.merge_rounds`; the count of
        its objects kept goes to ``kept_from_earlier``).
        """
        image = np.asarray(pair.image)
        labels = np.asarray(pair.labels)
        valid = None if pair.valid is None else np.asarray(pair.valid) > 0
        base = _key(image, pair.rgb)
        key = _kind_key(base, scribbles, task)
        self._separate_kinds(base)
        saved = next((e for e in self.entries if e["key"] == key), None)
        self.kept_from_earlier.pop(key, None)
        if saved is not None and saved.get("left_out"):
            self._keep_left_out(saved)  # its image corrected anew: the new one trains, the old is kept aside
            saved = None
        if saved is not None and not scribbles and not _has_objects(labels, valid) and self._has_objects(saved):
            # e.g. a new, never-painted Labels layer picked for an image corrected before: the correction stays
            raise UnusableAnnotation(f"{pair.name or 'this image'} has a correction with objects saved in the "
                                     "project, and these labels have none: pick the labels you painted (the "
                                     "saved correction is kept)")
        if saved is not None and not scribbles and not saved["scribbles"] and pair.edited is not None:
            earlier = self._arrays(saved)
            if earlier is not None and earlier[0].shape == labels.shape:
                merged = merge_rounds(earlier[0], earlier[1], labels, valid, pair.edited)
                labels, valid = merged.labels, merged.valid
                if merged.kept:
                    self.kept_from_earlier[key] = merged.kept
        (self.folder / "pairs").mkdir(parents=True, exist_ok=True)
        arrays = {"image": image, "labels": labels}
        if valid is not None:
            arrays["valid"] = np.packbits(valid, axis=-1)

        with atomic_path(self.folder / "pairs" / f"{key}.npz", ".tmp") as tmp, open(tmp, "wb") as f:
            np.savez_compressed(f, **arrays)
        entry = {
            "key": key, "file": f"pairs/{key}.npz", "name": pair.name, "source": source,
            "rgb": pair.rgb, "scribbles": scribbles, "task": task, "shape": list(labels.shape),
            "has_region": valid is not None, "saved": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        with self._changing():
            self.entries = [e for e in self.entries if e["key"] != key] + [entry]
        return key

    def _separate_kinds(self, base: str) -> None:
        """A project of an earlier release keyed an image's annotations by the image alone, so class scribbles
        and a dense correction of one image replaced each other: an entry of another kind than objects under
        the image's own key moves to its kind's key (its file renamed), before anything replaces it."""
        def misplaced(entry: dict[str, Any]) -> bool:
            return entry["key"] == base and _kind_key(base, entry["scribbles"], entry.get("task")) != base

        if not any(misplaced(entry) for entry in self.entries):
            return
        with self._changing():
            for entry in filter(misplaced, self.entries):
                moved = f"pairs/{_kind_key(base, entry['scribbles'], entry.get('task'))}.npz"
                if (self.folder / moved).exists():
                    continue  # not ours to tell apart: left as it was
                if (self.folder / entry["file"]).exists():
                    os.replace(self.folder / entry["file"], self.folder / moved)
                entry["key"], entry["file"] = Path(moved).stem, moved

    def _arrays(self, entry: dict[str, Any]) -> tuple[np.ndarray, np.ndarray | None] | None:
        """A saved pair's labels and annotated-region mask (None: every pixel); None if it cannot be read."""
        try:
            with np.load(self.folder / entry["file"]) as data:
                labels = data["labels"]
                valid = None
                if "valid" in data:
                    valid = np.unpackbits(data["valid"], axis=-1, count=labels.shape[-1]).astype(bool)
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
            return None
        return labels, valid

    def _has_objects(self, entry: dict[str, Any]) -> bool:
        """Whether a saved pair's labels hold an object where they are annotated (unreadable: assumed so)."""
        arrays = self._arrays(entry)
        return True if arrays is None else _has_objects(*arrays)

    def pairs(self, *, scribbles: bool | None = None, task: str | None = None,
              latest: Collection[str] | None = None) -> list[TrainingPair]:
        """Saved pairs, read from disk; optionally only those of one kind (scribbles or not, task).

        With ``latest`` (the keys of this round's corrections), every other
        pair is marked ``replay``: it judges that the new round forgets nothing.
        """
        out = []
        self.unreadable = []
        for entry in self.entries:
            if entry.get("left_out"):
                continue  # the user took it out of training (kept, and can be put back)
            if scribbles is not None and entry["scribbles"] != scribbles:
                continue
            if task is not None and entry.get("task") not in (task, None):
                continue
            try:
                with np.load(self.folder / entry["file"]) as data:
                    valid = None
                    if "valid" in data:
                        valid = np.unpackbits(data["valid"], axis=-1, count=entry["shape"][-1]).astype(bool)
                    pair = TrainingPair(data["image"], data["labels"], valid=valid, rgb=entry["rgb"],
                                        name=entry["name"], replay=latest is not None and entry["key"] not in latest)
            except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
                # one damaged file (a crash mid-write, a bad copy) must not stop every later round
                self.unreadable.append(f"the saved correction of '{entry['name'] or entry['key']}' "
                                       f"({self.folder / entry['file']}) cannot be read ({first_line(exc)}): it is "
                                       "left out; correct that image again to save it anew")
                continue
            out.append(pair)
        return out

    def record_model(self, path: str | os.PathLike, summary: dict[str, Any]) -> None:
        """Remember which model was trained from this project, and how well it did.

        The path is recorded absolute: the history is read from napari or a
        later command, started in other folders.
        """
        record = {"path": str(Path(path).absolute()), "saved": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                  **({"trained": trained} if (trained := trained_when(path)) else {}), **summary}
        with self._changing():
            self.models.append(record)

    def recorded_names(self) -> set[str]:
        """The names of the models in this project's history, files there or not: a new model must not take the
        name of one renamed or moved away, or its history row would point at the newcomer."""
        return {Path(str(record.get("path", ""))).stem for record in self.models} - {""}

    @property
    def in_use(self) -> Path | None:
        """The objects model this project's loop last put in use (a better round, or one gone back to), while its
        file is there: napari, started again, starts Segment, Batch and the next round on it rather than on the
        built-in model. A class model put in use is kept apart (:attr:`in_use_classes`): docks that start on
        their own make objects, not a class map nobody asked for."""
        path = Path(self._in_use) if self._in_use else None
        return path if path is not None and path.is_file() and _task_of(path) != "semantic" else None

    @property
    def in_use_classes(self) -> Path | None:
        """The class model this project's loop last put in use, while its file is there (an earlier release
        recorded it as :attr:`in_use`)."""
        for recorded in (self._in_use_classes, self._in_use):
            path = Path(recorded) if recorded else None
            if path is not None and path.is_file() and _task_of(path) == "semantic":
                return path
        return None

    @property
    def in_use_recorded(self) -> Path | None:
        """The model in use as recorded, its file there or not (:attr:`in_use` only while it is)."""
        return Path(self._in_use) if self._in_use else None

    def set_in_use(self, path: str | os.PathLike) -> None:
        """Remember ``path`` as the model in use of its kind (recorded absolute, like the history)."""
        self.set_in_use_if(path, None, check=False)

    def set_in_use_if(self, path: str | os.PathLike, expected: str | None, *, check: bool = True) -> bool:
        """Put ``path`` in use unless the model in use of its kind is no longer ``expected`` (as recorded when the
        round began, see :meth:`recorded_in_use`): another program (napari's Train dock beside ``unet-seg
        train``) put another one in use meanwhile, which this round was never compared with. False then."""
        semantic = _task_of(Path(path)) == "semantic"
        with self._changing():
            if check and (self._in_use_classes if semantic else self._in_use) != expected:
                return False
            if semantic:
                self._in_use_classes = str(Path(path).absolute())
            else:
                self._in_use = str(Path(path).absolute())
        return True

    def recorded_in_use(self, task: str) -> str | None:
        """The model in use of ``task`` ("instances", "semantic") as recorded: what :meth:`set_in_use_if` expects."""
        return self._in_use_classes if task == "semantic" else self._in_use

    def locate_in_use(self) -> tuple[Path | None, Path | None]:
        """The objects model in use, and where it was recorded when it was found again at another place (renamed
        or moved within the model folder: the project follows it), else None."""
        if (path := self.in_use) is not None:
            return path, None
        gone = self.in_use_recorded
        moved = self.find_moved(gone) if gone is not None and not gone.is_file() else None
        if moved is None:
            return None, None
        self.relocate(gone, moved)
        return moved, gone

    def _keep_left_out(self, entry: dict[str, Any]) -> None:
        """Move a left-out annotation's file to ``pairs/left-out/`` before a new correction of its image takes its
        name (nothing the user made is deleted)."""
        source = self.folder / entry["file"]
        if not source.exists():
            return
        folder = self.folder / "pairs" / "left-out"
        folder.mkdir(parents=True, exist_ok=True)
        n = 1
        while (target := folder / f"{entry['key']}-{n}.npz").exists():
            n += 1
        os.replace(source, target)

    def leave_out(self, key: str, left_out: bool = True) -> None:
        """Take a saved annotation out of training (``left_out``), or put it back. Nothing is deleted: its file
        stays, and so does its entry, marked; a new correction of its image puts that image back in."""
        with self._changing():
            for entry in self.entries:
                if entry["key"] == key:
                    if left_out:
                        entry["left_out"] = True
                    else:
                        entry.pop("left_out", None)

    def find_moved(self, recorded: Path) -> Path | None:
        """Where a model of this project's history is now, after it was renamed or moved within the model folder
        (or the folder it was in): the one file there trained when it was, and named by no other row; None when
        there is none, or several (copies)."""
        row = next((r for r in reversed(self.models) if Path(str(r.get("path", ""))) == recorded), None)
        stamp = row.get("trained") if row is not None else None
        if not stamp:
            return None
        named = {recorded_model_path(r).absolute() for r in self.models}
        folders = {user_model_dir(), recorded.parent}
        found = {path.absolute() for folder in folders if folder.is_dir() for path in folder.glob("*.safetensors")
                 if path.absolute() not in named and trained_when(path) == stamp}
        return found.pop() if len(found) == 1 else None

    def relocate(self, old: Path, new: Path) -> None:
        """The model recorded at ``old`` is at ``new`` now: its history rows, and the model in use if it is that
        one, follow it."""
        with self._changing():
            for row in self.models:
                if Path(str(row.get("path", ""))) == old:
                    row["path"] = str(new.absolute())
            if self._in_use == str(old):
                self._in_use = str(new.absolute())
            if self._in_use_classes == str(old):
                self._in_use_classes = str(new.absolute())

    def latest_better(self) -> Path | None:
        """The newest objects model of the history that beat its parent (or kept its weights with post-processing
        fitted to the annotation, as the loop puts in use) and is still where it was recorded: what the loop had
        reached before, when the model in use is gone."""
        for row in reversed(self.models):
            path = recorded_model_path(row)
            if (row.get("improved") or row.get("tied") or row.get("fitted")) and path.is_file() \
                    and not replaced_at_path(row) \
                    and _task_of(path) != "semantic":
                return path
        return None

    def _save_index(self) -> None:
        index: dict[str, Any] = {"format_version": FORMAT_VERSION, "pairs": self.entries, "models": self.models}
        if self._in_use:
            index["in_use"] = self._in_use
        if self._in_use_classes:
            index["in_use_classes"] = self._in_use_classes
        text = json.dumps(index, indent=1)
        with atomic_path(self.folder / INDEX, ".tmp") as tmp:
            tmp.write_text(text)
