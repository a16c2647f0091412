"""The Train widget's background job: everything slow happens here, off the main thread.

The job autosaves the pairs into the project, trains through the Qt-free
core, and saves the model. It talks to the widget only through plain
callbacks; the widget passes :class:`~._common.Relay` objects, which queue
each call onto the main thread, where layers may be touched.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..core.inference.object_size import rescale_factor
from ..core.inference.preview import RegionPredictor
from ..core.model.registry import user_model_dir
from ..core.common.errors import first_line
from ..core.training.checks import UnusableAnnotation, check_pairs, classes_called_for
from ..core.training.data import TrainingPair, input_channels
from ..core.training.finetune import (
    FinetuneResult, at_pipeline_scale, default_config, finetune, is_scratch, starting_model,
)
from ..core.training.loop import StepReport
from ..core.training.naming import (
    checkpoint_path, new_model_base, path_in_folder, save_trained_somewhere, starting_label,
)
from ..core.training.project import Project
from ..core.training.saving import save_round
from ._common import format_seconds


@dataclass
class TrainJob:
    """What the widget read from its controls and layers, frozen before the worker starts."""

    pairs: list[TrainingPair]
    init: str = "nuclei"
    task: str = "instances"
    classes: int | None = None  # a new class model's count; None: from the labels trained on (project included)
    class_names: tuple[str, ...] = ()  # a new class model's names of classes 1, 2...
    depth: int = 4
    width: int = 16
    scribbles: bool = False
    encoder: str | None = "nuclei"  # a new model starts from this model's encoder (None: random)
    diameter: float | None = None  # objects' size in the images (None: measured, as Segment does)
    max_steps: int | None = None
    max_seconds: float | None = 120.0
    name: str = ""
    project_dir: Path | None = None
    use_project: bool = True
    preview_image: Any = None
    preview_rgb: bool = False
    preview_box: Callable[[], tuple[int, int, int, int]] | None = None
    cancel: threading.Event = field(default_factory=threading.Event)
    overrides: dict[str, Any] = field(default_factory=dict)  # TrainConfig fields, for experts and tests


@dataclass
class JobOutcome:
    result: FinetuneResult
    path: Path
    n_pairs: int
    notes: list[str] = field(default_factory=list)  # what the user should know that is no warning


def outcome_text(outcome: JobOutcome, parent: str) -> str:
    """The verdict under the plot: whether it beat ``parent`` (both figures), what was saved, its scores and
    where they were measured, where training looked, and any warning."""
    result = outcome.result
    stopped = " (cancelled)" if result.train.cancelled else ""
    steps = f"{result.train.steps} step{'' if result.train.steps == 1 else 's'}"
    saved = (f"Saved model '{outcome.path.stem}' after {steps} in {format_seconds(result.train.seconds)}{stopped}, "
             f"trained on {outcome.n_pairs} image(s).")
    verdict = result.verdict(parent)
    # the comparison with the parent first, with both figures: the scores after it are the new model's alone
    lines = [verdict[0].upper() + verdict[1:] + "."] if verdict else []
    lines += [saved, f"{result.score_text()} on {result.scores_where()}."]
    lines += [text[0].upper() + text[1:] + "." for text in (result.focus_text(),) if text]
    lines += [f"Note: {note[0].upper()}{note[1:]}." for note in outcome.notes]
    lines += [f"Warning: {warning}" for warning in result.warnings]
    return "\n".join(lines)


def _quoted(names: list[str]) -> str:
    return ", ".join(f"'{name}'" for name in names)


def status_line(outcome: JobOutcome, parent: str, parent_in_segment: bool = True) -> str:
    """The verdict in a few words for the status line, which stays in view on a laptop when the full verdict
    scrolls below the plot. ``parent_in_segment``: the parent is a model Segment lists (not a file loaded into
    Train alone), so "Segment keeps" it is true."""
    result, name = outcome.result, outcome.path.stem
    done = "cancelled" if result.train.cancelled else "done"  # a run the user stopped is never said to be "done"
    if not result.worth_using and getattr(result, "doubtful_labels", None):
        return (f"{done}: saved '{name}', not put in use: the labels of {_quoted(result.doubtful_labels)} look like "
                "another image's; Segment's model is unchanged")
    if not result.worth_using and getattr(result, "unlearnt_classes", None):
        return (f"{done}: saved '{name}', not put in use: it did not learn {_quoted(result.unlearnt_classes)} "
                "(annotated nowhere); Segment's model is unchanged")
    if not result.worth_using and result.improved is None and result.train.cancelled:
        return f"{done}: saved '{name}' after {result.train.steps} steps, not put in use (nothing judged it)"
    if not result.worth_using:
        keeps = f"Segment keeps '{parent}'" if parent_in_segment else "Segment's model is unchanged"
        return f"{done}: saved '{name}', not better than '{parent}'; {keeps}"
    if result.improved is False:
        return f"{done}: saved '{name}' ('{parent}' with post-processing fitted); Segment uses it"
    better = {True: f", better than '{parent}'"}.get(result.improved, "")
    if result.tied:
        better = f", as good as '{parent}' (both got the held-out part all right)"
    return f"{done}: saved '{name}'{better}; Segment uses it"


def _ignore(*_: Any) -> None:
    pass


def run_training(
    job: TrainJob, *, status: Callable[[str], None] = _ignore, progress: Callable[[StepReport], None] = _ignore,
    preview: Callable[[tuple[int, int, int, int], np.ndarray], None] = _ignore, warn: Callable[[str], None] = _ignore,
) -> JobOutcome:
    """Autosave the pairs into the project, train, save the model; runs in a worker thread.

    ``status(text)`` says what is happening, ``progress(report)`` follows each
    training step, and ``preview(box, labels)`` receives the live prediction
    of the visible part (when ``job`` asks for previews); ``warn(text)`` what is
    wrong before the first step (a class painted nowhere), while it can still be stopped.
    """
    pairs = list(job.pairs)
    kept_notes: list[str] = []  # said in the verdict (not warnings)
    status("preparing the model...")
    scratch = is_scratch(job.init)
    classes = job.classes
    if scratch and job.task == "semantic" and classes is None:  # "from the labels": all it will train on
        saved = Project(job.project_dir).pairs(scribbles=job.scribbles, task=job.task) \
            if job.project_dir is not None and job.use_project else []
        classes = classes_called_for(pairs + saved, scribbles=job.scribbles)
    model = starting_model(job.init, task=job.task, classes=classes, depth=job.depth, width=job.width,
                           in_channels=input_channels(pairs[0]) if pairs else 1, encoder=job.encoder,
                           class_names=job.class_names)
    if job.project_dir is not None:
        check_pairs(model, pairs, scribbles=job.scribbles, require_objects=False)  # nothing unusable is saved
        status("checking the annotations and saving them into the project...")
        project = Project(job.project_dir)
        try:
            saved = save_round(project, model, pairs, scribbles=job.scribbles, use_project=job.use_project)
        except OSError as exc:  # read-only, full: said as the folder's problem, before any training
            raise UnusableAnnotation(f"the project folder {job.project_dir} cannot be written ({first_line(exc)}): "
                                     "choose another project folder") from None
        for name, kept in saved.kept.items():  # said: the layer alone is not what this round learns from
            kept_notes.append(f"{kept} object(s) of your earlier correction of {name} were kept where you "
                              "changed nothing this round")
            status(kept_notes[-1] + "...")
        if note := saved.unsaved_note():
            kept_notes.append(note)
        pairs = saved.pairs
        for problem in project.unreadable if job.use_project else ():
            warn(problem)
    config = default_config(scratch=scratch, task=model.task, scribbles=job.scribbles,
                            max_steps=job.max_steps, max_seconds=job.max_seconds)
    config = replace(config, **job.overrides)
    predict_preview = None
    if job.preview_image is not None and job.preview_box is not None:
        shown = at_pipeline_scale(model, job.pairs[:1], job.diameter)[0]  # at the scale Segment will use
        scale = 1.0 if shown.diameter is None else rescale_factor(model, shown.diameter)
        predictor = RegionPredictor(job.preview_image, model, rgb=job.preview_rgb, scale=scale)
        box_of = job.preview_box

        def predict_preview(current: Any) -> None:
            box = box_of()
            preview(box, predictor(current, box))

    status(f"training on {len(pairs)} image(s)...")
    base = new_model_base(model.task) if scratch else starting_label(job.init)  # as the user picked it
    recorded = project.recorded_names() if job.project_dir is not None else set()  # renamed away: still taken
    checkpoint = checkpoint_path(path_in_folder(user_model_dir(), job.name, base, new=scratch, taken=recorded))
    result = finetune(model, pairs, scribbles=job.scribbles, config=config, base="scratch" if scratch else base,
                      progress=progress, cancel=job.cancel.is_set, preview=predict_preview, checkpoint_to=checkpoint,
                      diameter=job.diameter, status=status, warn=warn)
    path, notes = save_trained_somewhere(model, [path_in_folder(user_model_dir(), job.name, base, new=scratch,
                                                                taken=recorded)])
    result.warnings.extend(notes)  # a full disk: saved elsewhere, and said
    checkpoint.unlink(missing_ok=True)  # the final model replaces it
    if job.project_dir is not None:
        try:
            Project(job.project_dir).record_model(path, result.history_record("scratch" if scratch else job.init))
        except OSError as exc:
            result.warnings.append(f"the project folder could not be written ({first_line(exc)}): '{path.stem}' is "
                                   "saved, but not in the project's History")
    return JobOutcome(result, path, len(pairs), kept_notes)
