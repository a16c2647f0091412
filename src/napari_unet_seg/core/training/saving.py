"""Saving a round's corrections into a project: what the round then trains on, and what was not saved.

Labels that look like another image's (see :func:`.checks.annotation_warnings`)
train this round only: saved, they would come back in every later round and
hold their image's place (a new correction of it merges with the saved one),
with no way to take them out. They stay in the user's layer or file.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..model.modelfile import Model
from .checks import annotation_warnings
from .data import TrainingPair
from .project import Project


@dataclass
class SavedRound:
    """``pairs``: what the round trains on; ``kept``: per pair name, objects of an earlier correction kept where
    nothing was changed this round; ``unsaved``: the names of pairs left out of the project."""

    pairs: list[TrainingPair]
    kept: dict[str, int] = field(default_factory=dict)
    unsaved: list[str] = field(default_factory=list)

    def unsaved_note(self) -> str | None:
        if not self.unsaved:
            return None
        names = ", ".join(self.unsaved)
        return (f"the labels of {names} look like another image's, so they train this round only and were not saved "
                "into the project")


def save_round(project: Project, model: Model, pairs: list[TrainingPair], *, scribbles: bool,
               use_project: bool = True) -> SavedRound:
    """Save ``pairs`` into ``project`` (those that look like labels of another image excepted) and return what
    the round trains on: the project's pairs of this kind (earlier rounds marked replay) plus the unsaved ones,
    or ``pairs`` alone when ``use_project`` is false. ``project.add``'s errors propagate."""
    doubtful = [not scribbles and bool(annotation_warnings(model, pair)) for pair in pairs]
    latest, kept = set(), {}
    for pair, unsure in zip(pairs, doubtful):
        if unsure:
            continue
        key = project.add(pair, scribbles=scribbles, task=model.task, source=pair.name)
        latest.add(key)
        if count := project.kept_from_earlier.get(key):
            kept[pair.name or key] = count
    unsaved = [pair for pair, unsure in zip(pairs, doubtful) if unsure]
    trains = project.pairs(scribbles=scribbles, task=model.task, latest=latest) + unsaved if use_project \
        else list(pairs)
    return SavedRound(trains, kept, [pair.name or "an image" for pair in unsaved])
