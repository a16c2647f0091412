"""The Train widget's history: every model trained in a project, newest first, and one click back to any of them.

Going back only selects a model; nothing is ever deleted, so going forward
again is the same click.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from napari.utils.notifications import show_error, show_info
from qtpy.QtCore import Qt
from qtpy.QtWidgets import QListWidget, QListWidgetItem, QPushButton, QVBoxLayout, QWidget

from ..core.model.registry import available_models
from ..core.training.evaluation import SCORE_NAMES
from ..core.training.naming import starting_label
from ..core.training.project import Project, recorded_model_path, replaced_at_path


def history_line(record: Mapping[str, Any]) -> str:
    """One model of the project's lineage: its scores, how it compared with its parent, and when it was saved."""
    path = recorded_model_path(record)
    parent = starting_label(str(record.get("parent", "?")))  # a file loaded into Train: its name, not its path
    shown = [key for key in ("ap50_90", "ap50", "mean_iou") if isinstance(record.get(key), (int, float))]
    scores = [f"{SCORE_NAMES[key]} {record[key]:.3f}" for key in shown]
    if shown and isinstance(record.get(f"parent_{shown[0]}"), (int, float)):  # rounds hold out different parts
        scores[0] += f" (parent {record[f'parent_{shown[0]}']:.3f})"  # on the same part: the list's tooltip says
    score = ", ".join(scores) or "no score"
    kind = " (class model)" if "mean_iou" in shown else ""
    verdict = {True: f"better than {parent}", False: f"not better than {parent}"}.get(record.get("improved"),
                                                                                     f"from {parent}")
    if record.get("tied"):
        verdict = f"as good as {parent} (held-out part all right)"
    elif record.get("improved") is False and record.get("fitted"):  # still worth using: Segment switched to it
        verdict = f"{parent}'s weights (training did not beat them), post-processing fitted"
    text = f"{path.stem}{kind}: {score}, {verdict} ({record.get('saved', '')[:10]})"
    if not path.is_file():
        return text + " [file missing]"
    return text + REPLACED if replaced_at_path(record) else text


REPLACED = " [another model is at its path now]"


def starting_models(records: list[Mapping[str, Any]]) -> list[str]:
    """The installed models the project's rounds started from (its roots), oldest first, each once.

    A project can hold class models trained from scribbles beside a nuclei
    loop: each line of descent offers a way back to where it started.
    """
    trained = {Path(str(record.get("path", ""))).stem for record in records}
    installed = available_models()
    roots = [record.get("parent") for record in records]
    return list(dict.fromkeys(r for r in roots if isinstance(r, str) and r not in trained and r in installed))


class ModelHistory(QWidget):
    """The list of a project's models and a button that makes the chosen one the model in use."""

    def __init__(self, on_use: Callable[[Path], None], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._on_use = on_use
        self.models = QListWidget()
        self.models.setAccessibleName("Models trained in this project")
        self.models.setToolTip("Every model trained in this project, newest first; nothing is ever deleted. Each "
                               "round is scored on its own held-out part of your annotation: compare a row's score "
                               "with its parent's on the same part (in brackets), not with other rows.")
        self.models.setMinimumHeight(80)
        self.models.setWordWrap(True)
        self.use_button = QPushButton("Use this model")
        self.use_button.setToolTip("Segment with the chosen model, and start the next training from it.")
        self.use_button.clicked.connect(self.use_chosen)
        self.models.itemDoubleClicked.connect(lambda _item: self.use_chosen())
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.models)
        layout.addWidget(self.use_button)

    def show_project(self, project: Project | None, start_from: str = "") -> None:
        """List ``project``'s models, newest first, then the model it started from (to go back to it too).

        The model named ``start_from`` (the next round's starting point, the one
        Segment switched to after a round) is marked.
        Nothing is listed when there is no readable project.
        """
        self.models.clear()
        records = list(project.models) if project is not None else []
        lines = [(history_line(record), str(recorded_model_path(record))) for record in reversed(records)]
        for root in starting_models(records):
            lines.append((f"{root}: where this project started", str(available_models()[root])))
        for text, path in lines:
            if start_from and Path(path).stem == start_from:
                text = f"{text} [start from]"
            item = QListWidgetItem(text)
            item.setToolTip(text)  # a narrow dock wraps or cuts a line; the whole of it on hover
            item.setData(Qt.ItemDataRole.UserRole, path)
            self.models.addItem(item)

    def use_chosen(self) -> None:
        """Hand the chosen model's file to ``on_use``, or say why not."""
        item = self.models.currentItem()
        if item is None:
            show_info("Choose a model in the history first.")
            return
        path = Path(item.data(Qt.ItemDataRole.UserRole))
        if not path.is_file():
            show_error(f"{path} no longer exists.")
            return
        if REPLACED in item.text():  # said on its line (history_line)
            show_error(f"{path} now holds another model: this one was renamed or moved away (find it by its "
                       "name in your files and load it in Segment with 'Load from file…').")
            return
        self._on_use(path)
