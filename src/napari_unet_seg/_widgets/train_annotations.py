"""The project's saved annotations in the Train dock: which images every round learns from, each one tickable.

An annotation saved by mistake (another project's image, labels of the wrong
image) came back in every later round, with no way to take it out. Unticking
one leaves it out of training; nothing is deleted, and ticking it puts it back.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from napari.utils.notifications import show_error
from qtpy.QtCore import Qt
from qtpy.QtWidgets import QLabel, QListWidget, QListWidgetItem, QVBoxLayout, QWidget

from ..core.common.errors import first_line
from ..core.training.project import Project

KEY = Qt.ItemDataRole.UserRole


def annotation_line(entry: dict[str, Any]) -> str:
    """"cells 3 (objects, saved 2026-12-02)": an annotation as a user recognises it."""
    kind = "class scribbles" if entry.get("scribbles") else "classes" if entry.get("task") == "semantic" else \
        "objects"
    region = ", part of the image" if entry.get("has_region") else ""
    saved = str(entry.get("saved", ""))[:10]
    return f"{entry.get('name') or entry['key'][:8]} ({kind}{region}{', saved ' + saved if saved else ''})"


class SavedAnnotations(QWidget):
    """A project's saved annotations, newest first: ticked ones train, unticked ones are left out (kept)."""

    def __init__(self, on_changed: Callable[[Project], None] | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.folder: Path | None = None
        self._on_changed = on_changed  # hears the project after a tick (the dock's count of annotations follows)
        self.list = QListWidget()
        self.list.setAccessibleName("Saved annotations")
        self.list.setMinimumHeight(80)
        self.list.setToolTip("Every annotation saved in this project; each round trains on the ticked ones. Untick "
                             "one saved by mistake to leave it out of training: nothing is deleted, and ticking it "
                             "puts it back.")
        self.list.itemChanged.connect(self._ticked)
        self.note = QLabel()
        self.note.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.list)
        layout.addWidget(self.note)

    def show_project(self, project: Project | None) -> None:
        """List ``project``'s annotations (nothing when there is no readable project)."""
        self.folder = project.folder if project is not None else None
        self.list.blockSignals(True)
        self.list.clear()
        for entry in reversed(project.entries if project is not None else []):
            item = QListWidgetItem(annotation_line(entry))
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(Qt.CheckState.Unchecked if entry.get("left_out") else Qt.CheckState.Checked)
            item.setData(KEY, entry["key"])
            item.setToolTip(item.text())
            self.list.addItem(item)
        self.list.blockSignals(False)
        self._say(project)

    def _say(self, project: Project | None) -> None:
        left_out = sum(bool(e.get("left_out")) for e in project.entries) if project is not None else 0
        self.note.setText(f"{left_out} left out of training (kept; tick to put back)" if left_out else "")

    def _ticked(self, item: QListWidgetItem) -> None:
        if self.folder is None:
            return
        try:
            project = Project(self.folder)
            project.leave_out(str(item.data(KEY)), item.checkState() != Qt.CheckState.Checked)
        except (OSError, ValueError) as exc:
            show_error(f"The project could not be changed: {first_line(exc)}")
            return
        self._say(project)
        if self._on_changed is not None:
            self._on_changed(project)
