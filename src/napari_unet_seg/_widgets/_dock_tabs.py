"""On a short window, a dock of ours opened beside others of ours joins them as a tab instead of squeezing them.

napari stacks the docks of one side and shares the height between them: on
a laptop screen (768 px) Segment with Train below it showed only its Image
row, and a third dock left each a few rows behind two scroll bars. When the
docks of ours on that side and the new one cannot each have the height they
ask for, the new dock is tabbed onto the last of them and raised, so every
dock is whole and one click away. A taller window keeps them stacked; a user
who wants them stacked anyway drags the tab out; another plugin's docks, and
a dock opened floating or already tabbed, are left as they are.
"""

from __future__ import annotations

from napari.utils.notifications import show_info
from qtpy.QtCore import QEvent, QObject, QTimer
from qtpy.QtWidgets import QDockWidget, QMainWindow, QScrollArea, QVBoxLayout, QWidget

TITLE_AND_FRAME = 40  # px a dock adds to its content's height: napari's title bar and the frame


class TabWhenCrowded(QObject):
    """Placed on a dock's content: the first time napari shows it, :func:`place` decides stacked or tabbed."""

    def __init__(self, dock_content: QWidget, body: QWidget) -> None:
        super().__init__(dock_content)
        self._content = dock_content
        self._body = body
        self._placed = False
        dock_content.installEventFilter(self)

    def wanted_height(self) -> int:
        """The height this dock asks for: its settings, buttons and results without scrolling."""
        return natural_height(self._body) + TITLE_AND_FRAME

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self._content and event.type() == QEvent.Type.Show and not self._placed:
            self._placed = True
            QTimer.singleShot(0, lambda: place(self._content))  # once napari has laid the new dock out
        return False


def natural_height(body: QWidget) -> int:
    """``body``'s height with each scroll area in its column as tall as its content (a scroll area asks for less).

    Read from ``body``'s own column (a vertical box layout, as every dock of
    ours has); anything else gives its plain size hint.
    """
    layout = body.layout()
    if not isinstance(layout, QVBoxLayout):
        return body.sizeHint().height()
    shown = []
    for index in range(layout.count()):
        item = layout.itemAt(index)
        widget = item.widget()
        if widget is not None and not widget.isVisibleTo(body):
            continue
        if isinstance(widget, QScrollArea) and widget.widget() is not None:
            shown.append(widget.widget().sizeHint().height() + 2 * widget.frameWidth())
        elif item.spacerItem() is None:
            shown.append(item.sizeHint().height())
    margins = layout.contentsMargins()
    return sum(shown) + max(0, len(shown) - 1) * max(layout.spacing(), 0) + margins.top() + margins.bottom()


def enclosing_dock(widget: QWidget) -> QDockWidget | None:
    parent = widget.parentWidget()
    while parent is not None and not isinstance(parent, QDockWidget):
        parent = parent.parentWidget()
    return parent


def _placer(dock: QDockWidget) -> TabWhenCrowded | None:
    return dock.findChild(TabWhenCrowded)


def area_height(window: QMainWindow) -> int:
    """The height the docks of one side share: between the menu bar and the status bar."""
    central = window.centralWidget()
    return central.height() if central is not None else window.height()


def place(dock_content: QWidget) -> bool:
    """Tab the dock holding ``dock_content`` onto another of ours when stacking would squeeze them (True if tabbed)."""
    try:
        dock = enclosing_dock(dock_content)
    except RuntimeError:  # closed before it was ever laid out
        return False
    if dock is None or dock.isFloating() or not dock.isVisible():
        return False
    window = dock.parentWidget()
    if not isinstance(window, QMainWindow) or window.tabifiedDockWidgets(dock):
        return False
    side = window.dockWidgetArea(dock)
    ours = [other for other in window.findChildren(QDockWidget)
            if other is not dock and other.isVisible() and not other.isFloating()
            and window.dockWidgetArea(other) == side and _placer(other) is not None]
    if not ours:
        return False
    groups = {frozenset([other, *window.tabifiedDockWidgets(other)]) for other in ours}  # tabs share one height
    wanted = _placer(dock).wanted_height() + sum(
        max(_placer(other).wanted_height() for other in group if other in ours) for group in groups)
    if wanted <= area_height(window):
        return False
    window.tabifyDockWidget(ours[-1], dock)
    dock.show()
    dock.raise_()
    show_info(f"{_title(dock)} opened as a tab beside {_title(ours[-1])} (this window is too short to stack them): "
              "switch with the tabs under the docks, or drag a tab out to stack them.")
    return True


def _title(dock: QDockWidget) -> str:
    """The dock's name as its tab shows it, without napari's "(plugin)" suffix."""
    return dock.windowTitle().split(" (")[0] or "The dock"
