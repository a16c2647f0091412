"""``unet-seg models``: list the models this installation can use."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..core.model.modelfile import ModelFileError, read_metadata
from ..core.model.registry import available_models, builtin_model_paths, user_model_dir
from ..core.training.project import Project, current_project_dir


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("models", help="list built-in and user models",
                            description="List the built-in models and those in your model folder.")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    builtin = builtin_model_paths()
    models = available_models()
    in_use = models_in_use()
    print(f"user model folder: {user_model_dir()}")
    if not models:
        print("no models installed yet")
    for name, path in sorted(models.items()):
        origin = "built-in" if name in builtin else "user"
        try:
            meta = read_metadata(path)
            arch = meta.get("architecture", {})
            detail = f"{meta.get('task')}, classes {', '.join(meta.get('class_names', []))}, depth {arch.get('depth')}, width {arch.get('base_channels')}"
            verdict = last_run_verdict(meta)
            if verdict:
                detail += f"; {verdict}"
        except ModelFileError as exc:
            detail = f"unreadable: {exc}"
        mark = in_use.pop(path.resolve(), "")
        print(f"{name:<24} {origin:<9} {mark}{detail}  ({path})")
    for path, mark in in_use.items():  # written outside the model folder (``unet-seg train -o elsewhere/...``)
        print(f"{path.stem:<24} {'elsewhere':<9} {mark}give its path as --model  ({path})")
    for path in shadowed_models():
        print(f"{path.stem:<24} {'hidden':<9} a built-in model has this name, so `--model {path.stem}` runs the "
              f"built-in one: rename the file to use it by name, or give its path  ({path})")
    return 0


def models_in_use() -> dict[Path, str]:
    """The models napari's docks start on (the project Train used last: its objects and class models in use), each
    with the mark its row gets; the command line uses `nuclei` unless told (--model)."""
    try:
        folder = current_project_dir()
        project = Project(folder)
    except (OSError, ValueError):
        return {}
    objects = project.in_use
    gone = project.in_use_recorded
    if objects is None and gone is not None and not gone.is_file():
        objects = project.find_moved(gone)  # renamed or moved: napari finds it so (and the project follows it)
    marks = {}
    for path, what in ((objects, "objects"), (project.in_use_classes, "classes")):
        if path is not None:
            marks[path.resolve()] = f"[in use: napari's docks start on it for {what}, project {folder}] "
    return marks


def shadowed_models() -> list:
    """Files of the user model folder named like a built-in model: never offered by name, so said."""
    folder, builtin = user_model_dir(), builtin_model_paths()
    if not folder.is_dir():
        return []
    return [path for path in sorted(folder.glob("*.safetensors")) if path.stem in builtin
            and path.resolve() != builtin[path.stem].resolve()]


def last_run_verdict(meta: dict) -> str:
    """What the model's last fine-tuning run achieved, in a few words; "" when unknown.

    A fine-tune whose trained weights did not beat its parent is still saved
    (its post-processing may be fitted, and nothing is deleted), so the list
    says which ones are only their parent's weights.
    """
    lineage = meta.get("lineage") or []
    last = lineage[-1] if lineage and isinstance(lineage[-1], dict) else {}
    base, kept = last.get("base"), last.get("kept_weights")
    if kept == "trained":
        scores, parent = last.get("scores") or {}, last.get("parent_scores") or {}
        key = "ap50_90" if "ap50_90" in scores else "ap50"
        if scores.get(key) == parent.get(key) == 1.0:  # a perfect tie: the trained weights win it, not "better"
            return f"fine-tuned from {base}: as good as {base} on its held-out annotation (both got it all right)"
        return f"fine-tuned from {base}: better on its held-out annotation"
    if kept == "parent":
        fitted = (last.get("postprocess_fitted") or {}).get("changed")
        return (f"training did not beat {base}: {base}'s weights"
                + (", post-processing fitted to the annotation" if fitted else " unchanged"))
    return ""
