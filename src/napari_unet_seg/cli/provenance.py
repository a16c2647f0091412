"""``unet-seg provenance OUTPUT``: where a result came from, and the command that makes it again."""

from __future__ import annotations

import argparse
import json
import zipfile
from pathlib import Path
from typing import Any

from ..core.inference.cells_step import describe_cells_request
from ..core.inference.object_filter import ObjectFilter
from ..core.inference.provenance import file_sha256, read_provenance, with_edits_said
from ..core.model.modelfile import (
    ModelFileError, import_hint, is_bioimageio_package, load_model_file, read_metadata,
)
from ..core.model.registry import available_models
from .errors import UserError

_SCORE_NAMES = {"ap50": "AP50", "mean_iou": "mean IoU"}  # as training names them


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "provenance", help="say which model, settings and command made a labels file, zarr store or objects CSV",
        description=("Print the provenance that `unet-seg predict` (and the Segment widget) record in every output: "
                     "the model, its file's SHA-256 and lineage, the settings, the device and precision used, the "
                     "versions, the date (UTC), and the `unet-seg predict` command that makes the same labels. "
                     "Says whether the model file is still the one that was used, and whether the labels were "
                     "edited since they were made (the command then makes them as they were before the edits)."))
    parser.add_argument("output", metavar="OUTPUT",
                        help="a *_labels.tif, *_labels.zarr, *_objects.csv, an export (.zip, .geojson, .ome.zarr), "
                             "or a model file (.safetensors: its description, authors, licence and training runs)")
    parser.add_argument("--json", action="store_true", help="print the whole record as JSON")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    path = Path(args.output)
    if not path.exists() and args.output in available_models():  # a model by name, as `--model` takes it
        path = available_models()[args.output]
    if not path.exists():
        raise UserError(f"no such file, folder or model: {path}")
    if path.suffix.lower() == ".safetensors":  # a model received: what it is, who made it, what it learnt from
        return _model_file(path, args.json)
    if is_bioimageio_package(path):
        raise UserError(f"{import_hint(path)}, and ask that file's provenance")
    if path.name.startswith("summary") and path.suffix.lower() == ".csv":
        raise UserError(f"{path} is a batch run's table: ask the provenance of one of its outputs "
                        "(a *_labels.tif or *_labels.zarr beside it)")
    if path.is_dir() and not (path / ".zattrs").exists() and not (path / "zarr.json").exists():
        raise UserError(f"{path} is a folder: give a labels file or store (*_labels.tif, *_labels.zarr, .ome.zarr), "
                        "an objects CSV or an export")
    try:
        record = read_provenance(path)
        record = None if record is None else with_edits_said(path, record)
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:  # not a TIFF, a broken store or zip
        if "not a TIFF file" in str(exc):  # any other file: what it would take, not tifffile's header bytes
            raise UserError(f"{path} is not an output of napari-unet-seg: give a labels file or store, an "
                            "objects CSV, an export (ROI .zip, .geojson, .ome.zarr) or a model file") from None
        raise UserError(f"{path} cannot be read: {exc}") from None
    if record is None:
        raise UserError(f"{path} holds no provenance (not written by napari-unet-seg, or by an older version)")
    if args.json:
        print(json.dumps(record, indent=2))
        return 0
    for name, value in summary(record):
        print(f"{name + ':':<10} {value}")
    return 0


def _parent_by(meta: dict) -> str:
    parents = meta.get("parent_authors") if isinstance(meta.get("parent_authors"), list) else []
    return f" (fine-tuned from a model by {', '.join(map(str, parents))})" if parents else ""


def _model_file(path: Path, as_json: bool) -> int:
    """A model file's own record: its name, what it does, its authors and licence, and each training run."""
    try:
        meta = read_metadata(path)
    except ModelFileError as exc:
        raise UserError(str(exc)) from None
    if as_json:
        print(json.dumps(meta, indent=2))
        return 0
    imported = meta.get("imported_from") if isinstance(meta.get("imported_from"), dict) else {}
    authors = meta.get("authors") if isinstance(meta.get("authors"), list) else []
    try:
        load_model_file(path)
        weights = "whole and usable"
    except ModelFileError as exc:  # its record still says what it was: shown, with what is wrong now
        weights = f"UNUSABLE: {exc}"
    lines = [("model", f"{meta.get('name') or path.stem} ({meta.get('task')}) in {path.absolute()}"),
             ("weights", weights),
             ("sha256", file_sha256(path)),
             ("about", str(meta.get("description") or "no description")),
             ("authors", ", ".join(map(str, authors)) or "not recorded" + _parent_by(meta)),
             ("licence", str(meta.get("license") or "not recorded"))]
    cite = [c for c in meta.get("cite") or [] if isinstance(c, dict) and c.get("text")]
    lines += [("cite", f"{c['text']}" + (f", doi:{c['doi']}" if c.get("doi") else "")) for c in cite]
    if imported:
        lines.append(("imported", f"from the bioimage.io package {imported.get('package')}"))
    runs = [run for run in meta.get("lineage") or [] if isinstance(run, dict) and "base" in run]
    training = meta.get("training") if isinstance(meta.get("training"), dict) else {}
    encoder = training.get("encoder_from")
    lines.append(("lineage", _training({"lineage": meta.get("lineage"), "builtin": False,
                                        **({"encoder_from": encoder} if encoder else {})})))
    for run in runs:
        scores = run.get("scores") or {}
        key = next((k for k in ("ap50", "mean_iou") if isinstance(scores.get(k), float)), None)  # objects; classes
        score = f", {_SCORE_NAMES[key]} {scores[key]:.3f} on {run.get('scores_on')}" if key else ""
        base = f"a new model on the encoder of '{encoder}'" if run.get("base") == "scratch" and encoder else \
            f"from '{run.get('base')}'"
        lines.append(("run", f"{run.get('date')}: {base}, {run.get('mode')}, "
                             f"{len(run.get('data') or [])} image(s), {run.get('steps')} steps{score}"))
    for name, value in lines:
        print(f"{name + ':':<10} {value}")
    return 0


def _training(model: dict[str, Any]) -> str:
    """The model's lineage in one line: fine-tuning runs (base, date), or the stages a built-in model was trained in."""
    lineage = model.get("lineage") or []
    if not lineage:
        return "built-in, as shipped" if model.get("builtin") else "no training recorded"
    last = lineage[-1]
    if "base" in last:  # a fine-tuning run (core.training.lineage), after any stages of a script-trained model
        runs = sum(isinstance(run, dict) and "base" in run for run in lineage)
        if last.get("base") == "scratch" and model.get("encoder_from"):  # not from nothing: say on what
            return (f"{runs} training run(s), the last a new model on the trained encoder of "
                    f"'{model['encoder_from']}', on {last.get('date')}")
        return f"{runs} fine-tuning run(s), the last from '{last.get('base')}' on {last.get('date')}"
    # the earlier stages of a model trained by a script (scripts/train_nuclei.py), then this file's own run
    built_in = "built-in, as shipped; " if model.get("builtin") else ""
    return f"{built_in}trained in {len(lineage) + 1} stages (see --json)"


def summary(record: dict[str, Any]) -> list[tuple[str, str]]:
    """The record as a few lines for people (``--json`` gives all of it); first, whether the labels were edited."""
    edited = [("EDITED", str(record["edited"]))] if record.get("edited") else []
    return edited + (_cells_summary(record) if record.get("kind") == "cells" else _run_summary(record))


def _run_summary(record: dict[str, Any]) -> list[tuple[str, str]]:
    """What a Segment or predict run recorded."""
    model, settings, ran_on = record.get("model", {}), record.get("settings", {}), record.get("ran_on", {})
    versions = record.get("versions", {})
    trained = _training(model)
    planes = settings.get("planes", "all")
    return [
        ("date", str(record.get("date"))),
        ("input", str(record.get("input") or "an image in memory (no file)")),
        ("model", f"{model.get('name')} ({model.get('file') or 'never saved to a file'})"),
        ("sha256", f"{model.get('sha256')}  [{_model_file_now(model)}]"),
        ("lineage", trained),
        ("settings", (f"diameter {settings.get('diameter') or 'auto'}, output {_output(model, settings)}, "
                      f"planes {planes if planes == 'all' else len(planes)}{_extras(settings)}")),
        ("ran on", (f"{ran_on.get('device')}, {ran_on.get('precision')} (asked: {settings.get('device')}, "
                    f"{settings.get('precision')})")),
        ("versions", ", ".join(f"{k} {v}" for k, v in versions.items())),
        ("command", str(record.get("command"))),
    ]


def _cells_summary(record: dict[str, Any]) -> list[tuple[str, str]]:
    """Cells grown from nuclei: from what, how, and what made the nuclei."""
    settings, nuclei = record.get("settings", {}), record.get("nuclei_provenance") or {}
    channel = "" if record.get("channel") is None else f", channel {record['channel']}"
    layers = record.get("layers") or {}  # grown in napari: layers, not files

    def source(key: str, layer_key: str) -> str | None:
        return record.get(key) or (f"layer '{layers[layer_key]}'" if layers.get(layer_key) else None)

    limits = [f"threshold {settings.get('threshold') or 'auto'}" if not source("mask", "mask") else
              f"cells where {source('mask', 'mask')} is nonzero",
              f"reach {settings.get('max_distance') or 'no limit'}"]
    made_by = (f"model {nuclei.get('model', {}).get('name')} ({nuclei.get('command')})" if nuclei
               else "unknown (no provenance in the nuclei file)")
    return [
        ("date", str(record.get("date"))),
        ("cells of", str(source("nuclei", "nuclei"))),
        ("stain", f"{source('image', 'stain') or 'none'}{channel}"),
        ("settings", f"boundary {settings.get('boundary')}, " + ", ".join(limits)),
        ("nuclei by", made_by),
        ("versions", ", ".join(f"{k} {v}" for k, v in record.get("versions", {}).items())),
        ("command", str(record.get("command"))),
    ]


def _output(model: dict[str, Any], settings: dict[str, Any]) -> str:
    """What the file holds: objects, or classes (a class model's output, or an instance model's mask)."""
    if model.get("task") == "semantic":
        names = model.get("class_names") or []
        return f"classes ({', '.join(map(str, names[1:]))})" if len(names) > 1 else "classes"
    return "foreground mask" if settings.get("output") == "semantic" else "objects"


def _extras(settings: dict[str, Any]) -> str:
    """The settings that change the labels beyond the basics, when on: mirror averaging, filters, frame links,
    one channel, cells grown beside them."""
    found = ObjectFilter(int(settings.get("min_area") or 0), int(settings.get("max_area") or 0),
                         bool(settings.get("exclude_border")))
    extras = [
        *(["mirror averaging"] if settings.get("flip_average") else []),
        *([f"kept only {found.describe()}"] if found.active else []),
        *(["same id across frames"] if settings.get("link_frames") else []),
        *([f"channel {settings['channel']}"] if settings.get("channel") is not None else []),
        *([f"cells over {describe_cells_request(settings)}"] if settings.get("cells_channel") is not None else []),
    ]
    return "".join(f", {extra}" for extra in extras)


def _model_file_now(model: dict[str, Any]) -> str:
    file = model.get("file")
    if not file or not model.get("sha256"):
        return "cannot be checked"
    if not Path(file).is_file():
        return "that file is gone"
    return "the file is unchanged" if file_sha256(file) == model["sha256"] else "the file has CHANGED since"
