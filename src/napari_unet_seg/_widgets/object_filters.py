"""The object filters of Segment and Batch: smallest and largest area, and objects cut by the image's edge.

Folded away like the device settings, but its title says which filters are
on: a filter forgotten from last week must not drop objects unseen.
"""

from __future__ import annotations

from typing import Any

from qtpy.QtWidgets import QCheckBox, QSpinBox, QWidget

from ..core.inference.object_filter import ObjectFilter
from ._common import Collapsible, form_group

TITLE = "Object filters"
LARGEST_AREA = 100_000_000  # px: a spin box needs a top; no object of a real image comes near it


def _area_box(special: str, tooltip: str) -> QSpinBox:
    box = QSpinBox()
    box.setRange(0, LARGEST_AREA)
    box.setSingleStep(10)
    box.setSuffix(" px")
    box.setSpecialValueText(special)  # 0: no limit
    box.setToolTip(tooltip)
    return box


class ObjectFilterSection(Collapsible):
    """Smallest area, largest area, drop objects touching the edge; ``kwargs()`` gives them to RunOptions."""

    def __init__(self, parent: QWidget | None = None) -> None:
        self.min_area = _area_box("none", "Drop objects smaller than this (pixels of the image): debris, "
                                          "fragments. none = keep every object.")
        self.max_area = _area_box("no limit", "Drop objects larger than this (pixels of the image): clumps, "
                                              "background taken for an object. no limit = keep every object.")
        self.exclude_border = QCheckBox("drop objects touching the image edge")
        self.exclude_border.setToolTip("Objects cut by the edge of the field of view measure small: leave them out "
                                       "of counts and measurements.")
        section, form = form_group("")
        form.addRow("Smallest", self.min_area)
        form.addRow("Largest", self.max_area)
        form.addRow("", self.exclude_border)
        super().__init__(TITLE, section, parent)
        self._objects = True  # whether the output holds objects the filters can work on (see ``allow``)
        self.toggle.setToolTip("Keep only objects of a plausible size, not cut by the image's edge (applied to the "
                               "finished objects: the same in memory, on disk and in batches).")
        for box in (self.min_area, self.max_area):
            box.valueChanged.connect(self._retitle)
        self.exclude_border.toggled.connect(self._retitle)

    def current(self) -> ObjectFilter:
        return ObjectFilter(self.min_area.value(), self.max_area.value(), self.exclude_border.isChecked())

    def kwargs(self) -> dict[str, Any]:
        """The filters as RunOptions fields (none when the section does not apply: see ``allow``)."""
        if not self._objects:
            return {}
        found = self.current()
        return {"min_area": found.min_area, "max_area": found.max_area, "exclude_border": found.exclude_border}

    @property
    def for_objects(self) -> bool:
        """Whether the run's output holds objects (filters and frame links apply)."""
        return self._objects

    def allow(self, objects: bool) -> None:
        """Filters need objects: off (and said) for masks and class outputs, where they would be refused;
        the section stays open to see, its settings kept for the next objects."""
        self.section.setEnabled(objects)
        self._objects = objects
        self._retitle()

    def _retitle(self) -> None:
        found = self.current()
        if not self._objects:
            self.toggle.setText(f"{TITLE}: only for objects (instances output)")
        elif found.max_area and found.max_area < found.min_area:
            self.toggle.setText(f"{TITLE}: largest below smallest")
        else:
            self.toggle.setText(f"{TITLE}: {found.describe()}" if found.active else TITLE)
