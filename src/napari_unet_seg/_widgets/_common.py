"""Small generic Qt helpers shared by the plugin's dock widgets."""

from __future__ import annotations

import time

from qtpy.QtCore import QObject, Qt, Signal
from qtpy.QtWidgets import (
    QComboBox, QDoubleSpinBox, QFormLayout, QGroupBox, QSpinBox, QToolButton, QVBoxLayout, QWidget,
)

AUTO = "auto"


def auto_spinbox(maximum: int, *, step: int = 1, tooltip: str = "") -> QSpinBox:
    """An integer box where 0 reads "auto", so leaving it alone means "let the core choose"."""
    box = QSpinBox()
    box.setRange(0, maximum)
    box.setSingleStep(step)
    box.setSpecialValueText(AUTO)
    box.setToolTip(tooltip)
    return box


def auto_double_spinbox(maximum: float, *, suffix: str = "", tooltip: str = "") -> QDoubleSpinBox:
    """A decimal box where 0 reads "auto"."""
    box = QDoubleSpinBox()
    box.setRange(0.0, maximum)
    box.setDecimals(1)
    box.setSuffix(suffix)
    box.setSpecialValueText(AUTO)
    box.setToolTip(tooltip)
    return box


def compact(combo: QComboBox, characters: int = 12) -> QComboBox:
    """Keep a combo box from widening its dock to fit its longest item (long layer or model names)."""
    combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
    combo.setMinimumContentsLength(characters)
    return combo


def value_or_none(box: QSpinBox | QDoubleSpinBox) -> int | float | None:
    """The box's value, or None when it shows "auto"."""
    value = box.value()
    return value if value else None


class Collapsible(QWidget):
    """A section behind a "▸ title" toggle, closed at first.

    Settings whose defaults suit nearly everyone (device, precision, memory)
    stay out of a biologist's way until wanted.
    """

    def __init__(self, title: str, section: QWidget, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.section = section
        self.toggle = QToolButton()
        self.toggle.setText(title)
        self.toggle.setCheckable(True)
        self.toggle.setAutoRaise(True)
        self.toggle.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.toggle.toggled.connect(self._show)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.toggle)
        layout.addWidget(section)
        self._show(False)

    def _show(self, shown: bool) -> None:
        self.section.setVisible(shown)
        self.toggle.setArrowType(Qt.ArrowType.DownArrow if shown else Qt.ArrowType.RightArrow)


def form_group(title: str, parent: QWidget | None = None) -> tuple[QGroupBox, QFormLayout]:
    """A titled section with a label/field form inside, for grouping related settings."""
    group = QGroupBox(title, parent)
    form = QFormLayout(group)
    form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
    form.setContentsMargins(6, 6, 6, 6)
    return group, form


class ProgressRelay(QObject):
    """Carry ``progress(done, total)`` calls from a worker thread to the main thread.

    The core reports progress through a plain callback; this turns it into a
    queued Qt signal, rate-limited so that many tiny batches cannot flood the
    event loop (the last call of a run is always delivered).
    """

    progressed = Signal(int, int)

    def __init__(self, min_interval: float = 0.1, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._min_interval = min_interval
        self._last = 0.0

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if done >= total or now - self._last >= self._min_interval:
            self._last = now
            self.progressed.emit(int(done), int(total))


def format_seconds(seconds: float) -> str:
    """"42 s" or "3 min 5 s": short enough for a status line."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, rest = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {rest} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def eta_text(done: int, total: int, elapsed: float) -> str:
    """"12/40 windows, ~30 s left" from a running count and the time spent so far."""
    text = f"{done}/{total} windows"
    if 0 < done < total and elapsed > 0:
        text += f", ~{format_seconds(elapsed / done * (total - done))} left"
    return text

