"""Scroll areas that let every dock fit a small screen, whatever else is docked beside it.

napari stacks the docks of one side vertically, and the main window can
never be shorter than the sum of their minimum heights: one dock whose
content cannot shrink makes the window taller than a laptop screen. So each
dock's whole content sits in a scroll area (:func:`fill_dock`) no taller at
its smallest than :data:`DOCK_MINIMUM_HEIGHT`: four docks and their title
bars fit a 768-px-high window. Inside it the settings, the results and the
tables scroll on their own (:func:`scrolling`) and shrink first, so a dock
at its smallest still shows its button and status line, and the whole dock
scrolls only when even those do not fit.

napari gives the docks above the last one added their minimum height (the
last one takes the rest): that is what a user sees of Segment with Train
docked below it.

A scroll area here scrolls vertically only, and is never narrower than its
content can be: nothing is ever cut off at the side, out of reach.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from qtpy.QtCore import QEvent, QObject, QSize, Qt
from qtpy.QtGui import QResizeEvent
from qtpy.QtWidgets import (
    QAbstractButton,
    QAbstractSpinBox,
    QComboBox,
    QFormLayout,
    QFrame,
    QLabel,
    QLineEdit,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from ._dock_tabs import TabWhenCrowded

DOCK_MINIMUM_HEIGHT = 145  # px: four docks, their title bars, menu and status bar in a 768-px-high window


class VerticalScroll(QScrollArea):
    """A frameless scroll area that scrolls vertically, at least as wide as its content's minimum width.

    Its minimum height is ``minimum_height``. With ``fit_content`` it is
    the content's own minimum height, up to ``minimum_height``, and the
    content is given the viewport's height, or its minimum height for the
    viewport's width when that is more (Qt would give a content with
    wrapping labels its preferred height, and scroll where nothing needs to).
    """

    def __init__(self, content: QWidget, minimum_height: int, *, fit_content: bool = False,
                 at_most_content: bool = False) -> None:
        super().__init__()
        self._at_most_content = at_most_content  # never taller than the content wants: no blank band below it
        self.setWidgetResizable(not fit_content)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setWidget(content)
        self._minimum_height = minimum_height
        self._fit_content = fit_content
        if not fit_content:
            self.setMinimumHeight(minimum_height)
        content.installEventFilter(self)
        self._cap()

    def _cap(self) -> None:
        content = self.widget()
        if self._at_most_content and content is not None:
            self.setMaximumHeight(max(self._minimum_height, content.sizeHint().height() + self._margins().height()))

    def _margins(self) -> QSize:
        margins = self.contentsMargins()
        return QSize(margins.left() + margins.right(), margins.top() + margins.bottom())

    def minimumSizeHint(self) -> QSize:
        hint = super().minimumSizeHint()
        content = self.widget()
        if content is None:
            return hint
        needed = content.minimumSizeHint()
        width = needed.width() + self.verticalScrollBar().sizeHint().width() + self._margins().width()
        height = hint.height()
        if self._fit_content:
            height = min(needed.height() + self._margins().height(), self._minimum_height)
        return QSize(max(hint.width(), width), height)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        # the content's layout changed (a section opened, a longer text): its minimum size may have too
        if watched is self.widget() and event.type() == QEvent.Type.LayoutRequest:
            self._cap()
            self.updateGeometry()
            self._fit()
        return super().eventFilter(watched, event)

    def resizeEvent(self, event: QResizeEvent) -> None:  # also called when the viewport resizes (a scroll bar)
        super().resizeEvent(event)
        self._fit()

    def _fit(self) -> None:
        content = self.widget()
        if not self._fit_content or content is None:
            return
        width = max(self.viewport().width(), content.minimumSizeHint().width())
        layout = content.layout()
        height = content.minimumSizeHint().height()
        if layout is not None and layout.hasHeightForWidth():
            height = max(height, layout.minimumHeightForWidth(width))
        size = QSize(width, max(height, self.viewport().height()))
        if content.size() != size:
            content.resize(size)


def scrolling(content: QWidget, minimum_height: int = 100, *, at_most_content: bool = False) -> VerticalScroll:
    """``content`` in a vertical scroll area that may shrink to ``minimum_height`` (a dock's settings).

    ``at_most_content``: nor grow taller than the content, leaving the height to what comes below.
    """
    return VerticalScroll(content, minimum_height, at_most_content=at_most_content)


def fill_dock(dock: QWidget, content: QWidget, minimum_height: int = DOCK_MINIMUM_HEIGHT) -> VerticalScroll:
    """Make ``content`` the whole of ``dock``, scrolling once the dock is shorter than ``content`` can be.

    The dock's minimum height is ``content``'s, up to ``minimum_height``; the
    content's margins are narrowed (napari frames each dock already). On a
    short window the dock joins our other docks as a tab (:mod:`._dock_tabs`).
    """
    if content.layout() is not None:
        content.layout().setContentsMargins(6, 4, 6, 4)
    name_for_screen_readers(content)
    area = VerticalScroll(content, minimum_height, fit_content=True)
    layout = QVBoxLayout(dock)
    layout.setContentsMargins(0, 0, 0, 0)
    layout.addWidget(area)
    TabWhenCrowded(dock, content)
    return area


FIELDS = (QAbstractSpinBox, QComboBox, QLineEdit)  # inputs a screen reader announces by their name


def name_for_screen_readers(root: QWidget) -> None:
    """Give inputs the name their form row shows, and symbol buttons ("…", "↻") their tooltip's words.

    A form label is drawn beside its field, not attached to it: a screen
    reader announced the model list, the folder fields and the "…" buttons
    of the docks with no name (newcomer trial, keyboard and screen reader).
    """
    for form in root.findChildren(QFormLayout):
        for row in range(form.rowCount()):
            label = form.itemAt(row, QFormLayout.ItemRole.LabelRole)
            field = form.itemAt(row, QFormLayout.ItemRole.FieldRole)
            text = label.widget().text() if label is not None and isinstance(label.widget(), QLabel) else ""
            if not text or field is None:
                continue
            holder = field.widget()
            inputs = [holder] if isinstance(holder, FIELDS) else holder.findChildren(QWidget) if holder else \
                list(_widgets_in(field.layout()))
            for widget in inputs:
                if isinstance(widget, FIELDS) and not widget.accessibleName():
                    widget.setAccessibleName(text.rstrip(":"))
    for button in root.findChildren(QAbstractButton):
        if not any(c.isalnum() for c in button.text()) and not button.accessibleName() and button.toolTip():
            button.setAccessibleName(button.toolTip())


def _widgets_in(layout: Any) -> Iterator[QWidget]:
    """The widgets a form row's layout holds (a path and its "…" button), nested layouts included."""
    for index in range(layout.count() if layout is not None else 0):
        item = layout.itemAt(index)
        if item.widget() is not None:
            yield item.widget()
        elif item.layout() is not None:
            yield from _widgets_in(item.layout())
