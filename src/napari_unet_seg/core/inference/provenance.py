"""Where a result came from: the model and its file's SHA-256, its lineage, every setting, the versions,
the device, the date, and the ``unet-seg predict`` command that makes the same labels again.

:func:`.pipeline.segment_image` builds it once per run (``SegmentResult.provenance``,
a plain JSON-ready dict), and every output carries it: TIFF metadata
(:func:`~..imageio.write_labels_tiff`), zarr attributes, the objects CSV's
header, the napari layer's ``metadata["provenance"]``. :func:`read_provenance`
reads it back from any of those files.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shlex
import threading
import zipfile
from collections.abc import Mapping
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..common.table_sidecar import table_comments
from ..export.stamp import read_zip_comment, record_in
from ..imageio import changed_since_written, is_zarr, read_tiff_provenance
from ..model.modelfile import Model, ModelFileError
from ..model.registry import builtin_model_paths, resolve_model_path
from .cells import CellOptions
from .options import RunOptions

FORMAT = "napari-unet-seg provenance 1"
KEY = "provenance"  # in zarr attrs["napari_unet_seg"], a CSV "# provenance:" line, a layer's metadata
IMAGE_PLACEHOLDER = "<image>"  # the image came from memory (a layer, an array)
OUTDIR_PLACEHOLDER = "<output folder>"
MODEL_PLACEHOLDER = "<model file>"  # a model that was never saved
NUCLEI_PLACEHOLDER = "<nuclei labels>"  # cells grown from a layer
NOT_AFFECTING_RESULT = ("tile_size", "batch_size")  # tiling is exact: any window gives the same labels

_DIGESTS: dict[tuple[str, int, int], str] = {}
_DIGESTS_LOCK = threading.Lock()


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of a file, remembered while its size and modification time stay the same (one hash per batch)."""
    path = Path(path)
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    with _DIGESTS_LOCK:
        if key in _DIGESTS:
            return _DIGESTS[key]
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    with _DIGESTS_LOCK:
        _DIGESTS[key] = digest.hexdigest()
    return _DIGESTS[key]


def describe_run(model: Model, options: RunOptions, *, device: str, precision: str,
                 image_path: str | os.PathLike | None = None, planes: Any = None, rgb: bool | None = None,
                 channel_axis: int | None = None) -> dict[str, Any]:
    """The provenance of one run: ``options`` as asked, ``device``/``precision`` as used.

    ``image_path`` is the image's file, if it came from one; ``planes`` the
    leading indices segmented when not all of them (None: all). A model
    without a file of its own (a dask worker's copy) is taken to be
    ``options.model``'s file.
    """
    file = model.path if model.path is not None else _model_file(options.model)
    builtin = file is not None and any(_same_file(file, p) for p in builtin_model_paths().values())
    record: dict[str, Any] = {
        "format": FORMAT,
        "date": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "input": str(Path(image_path).absolute()) if image_path is not None else None,
        "model": {
            "name": model.name,
            "file": str(Path(file).absolute()) if file is not None else None,
            "builtin": builtin,
            "sha256": _sha256_or_none(file),
            "task": model.task,
            "lineage": json.loads(to_json(model.metadata.get("lineage", []))),  # plain JSON, even fresh from training
            **_encoder_from(model.metadata),  # a new model that started on another's trained encoder says whose
            **({"class_names": list(model.class_names)} if model.task == "semantic" else {}),  # names a class output
        },
        "settings": {  # every RunOptions field as asked (new fields are recorded without a change here)
            **json.loads(to_json(asdict(options))),
            "planes": "all" if planes is None else [list(p) for p in planes],
            "rgb": rgb,
            "channel_axis": channel_axis,
        },
        "settings_not_affecting_result": list(NOT_AFFECTING_RESULT),
        "ran_on": {"device": str(device), "precision": str(precision)},
        "versions": _versions(),
        "output_folder": str(Path(options.store).parent.absolute()) if options.store else None,
    }
    record["command"] = predict_command(record)
    return record


def describe_cells(options: CellOptions, *, nuclei_path: str | os.PathLike | None,
                   image_path: str | os.PathLike | None, channel: int | None, mask_path: str | os.PathLike | None,
                   nuclei_record: dict[str, Any] | None,
                   layers: Mapping[str, str | None] | None = None) -> dict[str, Any]:
    """The provenance of cells grown from a nuclei file (``unet-seg cells``), with the nuclei's own record.

    ``layers`` names the napari layers the *Cells from nuclei* dock grew them
    from (``nuclei``, ``stain``, ``mask``): files it has none of, so its
    command holds placeholders for them.
    """
    def absolute(path: str | os.PathLike | None) -> str | None:
        return None if path is None else str(Path(path).absolute())

    named = dict(layers or {})
    record: dict[str, Any] = {
        "format": FORMAT, "kind": "cells",
        "date": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "nuclei": absolute(nuclei_path), "image": absolute(image_path), "channel": channel,
        "mask": absolute(mask_path), "settings": asdict(options), "versions": _versions(),
        "nuclei_provenance": nuclei_record,
        **({"layers": named} if layers is not None else {}),
    }
    settings = record["settings"]
    image = record["image"] or (IMAGE_PLACEHOLDER if named.get("stain") else None)
    mask = record["mask"] or ("<mask>" if named.get("mask") else None)
    words = ["unet-seg", "cells", record["nuclei"] or NUCLEI_PLACEHOLDER]
    for flag, value in (("--image", image), ("--channel", channel), ("--boundary", settings["boundary"]),
                        ("--threshold", settings["threshold"]), ("--mask", mask),
                        ("--max-distance", settings["max_distance"])):
        if value is not None:
            words += [flag, str(value)]
    record["command"] = shlex.join(words)
    return record


def predict_command(record: dict[str, Any], *, image_path: str | os.PathLike | None = None,
                    output_dir: str | os.PathLike | None = None) -> str:
    """The ``unet-seg predict`` command (shell-quoted) that remakes these labels, from a provenance record.

    It names the device and precision actually used, so reduced-precision
    rounding is the same. Unknown paths (an image from memory, an unsaved
    model) are placeholders. ``image_path``/``output_dir`` override the record's.
    """
    model, settings = record["model"], record["settings"]
    image = image_path if image_path is not None else record.get("input")
    folder = output_dir if output_dir is not None else record.get("output_folder")
    args = ["unet-seg", "predict", str(image) if image else IMAGE_PLACEHOLDER,
            "-o", str(folder) if folder else OUTDIR_PLACEHOLDER,
            "--model", model["name"] if model["builtin"] else (model["file"] or MODEL_PLACEHOLDER)]
    if settings["diameter"] is not None:
        args += ["--diameter", repr(float(settings["diameter"]))]  # repr: the float exactly
    if settings["output"] != "instances":
        args += ["--output-kind", settings["output"]]
    if settings.get("flip_average"):
        args += ["--flip-average"]
    if settings.get("min_area"):
        args += ["--min-area", str(int(settings["min_area"]))]
    if settings.get("max_area"):
        args += ["--max-area", str(int(settings["max_area"]))]
    if settings.get("exclude_border"):
        args += ["--exclude-border"]
    if settings.get("channel") is not None:
        args += ["--channel", str(int(settings["channel"]))]
    if settings.get("link_frames"):
        args += ["--link-frames"]
    if settings.get("cells_channel") is not None:
        args += ["--cells-channel", str(int(settings["cells_channel"]))]
        if settings.get("cell_boundary", "cytoplasm") != "cytoplasm":
            args += ["--cell-boundary", str(settings["cell_boundary"])]
        for flag, name in (("--cell-threshold", "cell_threshold"), ("--cell-max-distance", "cell_max_distance")):
            if settings.get(name) is not None:
                args += [flag, repr(float(settings[name]))]
    args += ["--device", record["ran_on"]["device"].split(":")[0], "--precision", record["ran_on"]["precision"]]
    return shlex.join(args)


def _encoder_from(metadata: dict[str, Any]) -> dict[str, str]:
    training = metadata.get("training")
    source = training.get("encoder_from") if isinstance(training, dict) else None
    return {"encoder_from": str(source)} if source else {}


def with_paths(record: dict[str, Any], *, image_path: str | os.PathLike | None = None,
               output_dir: str | os.PathLike | None = None) -> dict[str, Any]:
    """A copy of ``record`` naming the image file and the output folder, its command rebuilt to match."""
    record = dict(record)
    if image_path is not None:
        record["input"] = str(Path(image_path).absolute())
    if output_dir is not None:
        record["output_folder"] = str(Path(output_dir).absolute())
    record["command"] = predict_command(record)
    return record


def to_json(record: dict[str, Any], indent: int | None = None) -> str:
    """ASCII JSON (TIFF descriptions must be 7-bit), on one line unless ``indent``."""
    return json.dumps(record, indent=indent, ensure_ascii=True, default=str)


def records_classes(record: dict[str, Any] | None) -> bool:
    """Whether a run's record is of a class map (a class model's output, or an instance model's mask), not objects."""
    record = record or {}
    return (record.get("model") or {}).get("task") == "semantic" or \
        (record.get("settings") or {}).get("output") == "semantic"


def csv_comments(record: dict[str, Any] | None) -> dict[str, str]:
    """The header comments of an objects CSV made from labels with this provenance (none when unknown)."""
    return {"command": record.get("command", ""), KEY: to_json(record)} if record else {}


def class_map_comments(record: dict[str, Any] | None) -> dict[str, str]:
    """Header comments naming the class model that made a class map (``--classes``): a per-class table recorded
    only the file's name, so which model sorted the objects was lost once the table travelled."""
    model = (record or {}).get("model") or {}
    if not model.get("name"):
        return {}
    sha = f" (sha256 {model['sha256']})" if model.get("sha256") else ""
    return {"classes_model": f"{model['name']}{sha}", "classes_command": str(record.get("command", ""))}


EDITED = "the labels were changed after they were made; the provenance is of what made them"


def marked_edited(record: Mapping[str, Any]) -> dict[str, Any]:
    """``record`` saying that the labels it travels with are no longer those its command makes."""
    return {**record, "edited": EDITED}


def with_edits_said(path: str | os.PathLike, record: dict[str, Any]) -> dict[str, Any]:
    """``record`` marked edited when the output at ``path`` was changed after it was made.

    An export or table already says so; a labels TIFF is read and compared
    with the hash recorded when it was written (corrected in Fiji, which
    keeps the record, or rewritten from napari). A zarr store records no hash.
    """
    path = Path(path)
    if "edited" in record:
        return record
    if path.suffix.lower() == ".csv":
        edited = "edited" in table_comments(path)
    elif path.suffix.lower() in (".tif", ".tiff") and "labels_digest" in record:
        import tifffile

        edited = changed_since_written(tifffile.imread(path), record)
    else:
        edited = False
    return marked_edited(record) if edited else record


def read_provenance(path: str | os.PathLike) -> dict[str, Any] | None:
    """The provenance recorded in an output, None if it has none.

    Our outputs (labels TIFF, zarr store, objects CSV) and our exports
    (ImageJ ROI zip, GeoJSON, OME-Zarr) all carry it.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if is_zarr(path):
        import zarr

        store = zarr.open(str(path), mode="r")
        record = record_in(dict(store.attrs))
        if record is None and isinstance(store, zarr.Group) and "labels" in store:  # an OME-Zarr export
            for name in store["labels"].attrs.get("labels", []):
                record = record or record_in(dict(store["labels"][name].attrs))
        return record
    if suffix == ".csv":
        return _csv_provenance(path)
    if suffix == ".zip":
        with zipfile.ZipFile(path) as archive:
            return read_zip_comment(archive.comment)
    if suffix in (".geojson", ".json"):
        with open(path, encoding="utf-8") as f:
            return record_in(json.load(f))
    return read_tiff_provenance(path)


def _csv_provenance(path: Path) -> dict[str, Any] | None:
    """From the JSON beside an objects table, or an earlier version's ``# provenance: {...}`` line."""
    beside = table_comments(path).get(KEY)
    if beside:
        return json.loads(beside)
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.startswith("#"):
                break
            key, _, value = line[1:].partition(":")
            if key.strip() == KEY:
                return json.loads(value)
    return None


def _model_file(name_or_path: str | None) -> Path | None:
    if name_or_path is None:
        return None
    try:
        return resolve_model_path(name_or_path)
    except (ModelFileError, OSError):
        return None


def _sha256_or_none(path: Path | None) -> str | None:
    try:
        return file_sha256(path) if path is not None else None
    except OSError:  # gone or unreadable: the labels are made; the record says the digest is unknown
        return None


def _same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _versions() -> dict[str, str]:
    import numpy
    import torch

    try:
        from importlib.metadata import version

        package = version("napari-unet-seg")
    except Exception:  # noqa: BLE001 - running from a source tree
        package = "unknown"
    return {"napari-unet-seg": package, "torch": torch.__version__, "numpy": numpy.__version__,
            "python": platform.python_version()}
