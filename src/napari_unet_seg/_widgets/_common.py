"""Small Qt helpers shared by the dock widgets: boxes, sections, and the one way to run work in the background."""

from __future__ import annotations

import inspect
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from napari.qt.threading import FunctionWorker, GeneratorWorker, create_worker
from napari.utils.notifications import show_error, show_info
from qtpy.QtCore import QEvent, QObject, Qt, QTimer, Signal
from qtpy.QtWidgets import (
    QComboBox, QDoubleSpinBox, QFileDialog, QFormLayout, QGroupBox, QHBoxLayout, QLabel, QLineEdit, QProgressBar,
    QPushButton, QScrollArea, QSpinBox, QToolButton, QVBoxLayout, QWidget,
)

from ..core.common.callbacks import Cancelled
from ..core.common.errors import first_line
from ..core.model.devices import DeviceError
from ..core.model.modelfile import ModelFileError

log = logging.getLogger(__name__)

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
        if shown:  # opened at the bottom of a short dock's scrolling settings: brought into view, not left below
            QTimer.singleShot(0, self._bring_into_view)

    def _bring_into_view(self) -> None:
        try:
            parent = self.parentWidget()
        except RuntimeError:  # closed meanwhile
            return
        while parent is not None and not isinstance(parent, QScrollArea):
            parent = parent.parentWidget()
        if parent is not None and self.section.isVisible():
            parent.ensureWidgetVisible(self.section, 0, 0)


def refill(combo: QComboBox, names: list[str], current: str) -> None:
    """Replace ``combo``'s items with ``names``, keeping ``current`` chosen if listed (else the first), silently."""
    combo.blockSignals(True)
    combo.clear()
    combo.addItems(names)
    combo.setCurrentIndex(names.index(current) if current in names else (0 if names else -1))
    combo.blockSignals(False)


def form_group(title: str, parent: QWidget | None = None) -> tuple[QGroupBox, QFormLayout]:
    """A titled section with a label/field form inside, for grouping related settings."""
    group = QGroupBox(title, parent)
    form = QFormLayout(group)
    form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
    form.setContentsMargins(6, 6, 6, 6)
    return group, form


@dataclass
class RunControls:
    """A dock's action and Cancel buttons side by side (``buttons``), a thin bar and a wrapping status line."""

    run_button: QPushButton
    cancel_button: QPushButton
    buttons: QHBoxLayout
    progress_bar: QProgressBar
    status: QLabel


_LONG_RUN = re.compile(r"\S{25,}")  # a word this long (a file name, a path) cannot wrap at its spaces
_BREAK = "\u200b"  # a zero-width space: where Qt may wrap a line, unseen


class StatusLabel(QLabel):
    """A dock's sentence about layers and files: wrapped, plain text. A long name without spaces breaks anywhere
    instead of widening the dock past a laptop's screen, and a name holding ``<b>`` is shown, not obeyed."""

    def __init__(self, text: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setTextFormat(Qt.TextFormat.PlainText)
        self.setWordWrap(True)
        self.setText(text)

    def setText(self, text: str) -> None:  # noqa: N802 (Qt's name)
        def breakable(match: re.Match[str]) -> str:
            word = match.group()
            return _BREAK.join(word[i:i + 16] for i in range(0, len(word), 16))

        super().setText(_LONG_RUN.sub(breakable, text))

    def text(self) -> str:
        """The text as set (its invisible break points taken out, so copies and comparisons see the names whole)."""
        return super().text().replace(_BREAK, "")


def run_controls(action: str, run: Callable[[], Any], cancel: Callable[[], Any], status: str = "",
                 tooltip: str = "") -> RunControls:
    """The controls under a dock's settings: ``run()`` on the action (``tooltip`` says what it does),
    ``cancel()`` on Cancel (off until a run)."""
    run_button, cancel_button = QPushButton(action), QPushButton("Cancel")
    run_button.setToolTip(tooltip)
    cancel_button.setEnabled(False)
    cancel_button.setToolTip("Stop this run; nothing is added and no layer changes.")
    run_button.clicked.connect(lambda: run())
    cancel_button.clicked.connect(lambda: cancel())
    buttons = QHBoxLayout()
    buttons.addWidget(run_button)
    buttons.addWidget(cancel_button)
    progress_bar = QProgressBar()
    progress_bar.setMaximumHeight(12)
    progress_bar.setTextVisible(False)
    return RunControls(run_button, cancel_button, buttons, progress_bar, StatusLabel(status))


class Relay(QObject):
    """Carry calls of a core callback from a worker thread to ``slot`` on the main thread.

    The core reports through plain callbacks; calling a relay turns each call
    into a queued Qt signal, so ``slot`` may touch layers and widgets. With a
    ``min_interval`` the calls are rate-limited so that many tiny steps cannot
    flood the event loop; calls for which ``always(*args)`` is true (the last
    one of a run) are always delivered.
    """

    _called = Signal(object)

    def __init__(self, slot: Callable[..., Any], *, min_interval: float = 0.0,
                 always: Callable[..., bool] | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._slot = slot
        self._min_interval = min_interval
        self._always = always
        self._last = 0.0
        self._called.connect(self._deliver)

    def __call__(self, *args: Any) -> None:
        if self._min_interval:
            now = time.monotonic()
            if now - self._last < self._min_interval and not (self._always is not None and self._always(*args)):
                return
            self._last = now
        try:
            self._called.emit(args)
        except RuntimeError:  # the widget was closed mid-run: nobody is listening any more
            pass

    def _deliver(self, args: tuple[Any, ...]) -> None:
        self._slot(*args)


def progress_relay(slot: Callable[[int, int], None], *, min_interval: float = 0.1,
                   parent: QObject | None = None) -> Relay:
    """A :class:`Relay` for the core's ``progress(done, total)``: rate-limited, the final call always delivered."""
    return Relay(lambda done, total: slot(int(done), int(total)), min_interval=min_interval,
                 always=lambda done, total: done >= total, parent=parent)


# Mistakes a user can fix (a wrong file, too little memory, a busy GPU): a notification is enough.
USER_ERRORS = (ModelFileError, DeviceError, ValueError, OSError, MemoryError, RuntimeError)


def report_failure(failure: str, exc: BaseException) -> None:
    """Tell the user ``"<failure>: <first line of exc>"``; unexpected errors are logged with their traceback too."""
    if not isinstance(exc, USER_ERRORS):
        log.error("%s", failure, exc_info=exc)
    show_error(f"{failure}: {first_line(exc)}")


@dataclass(frozen=True)
class _Outcome:
    """What a guarded worker returns: napari would show a raised error as a traceback."""

    value: Any = None
    error: Exception | None = None


def _guarded(work: Callable[[], Any]) -> Callable[[], Any]:
    """``work`` (a function or generator function) with every exception caught into an :class:`_Outcome`."""
    if inspect.isgeneratorfunction(work):
        def guarded_generator() -> Iterator[Any]:
            try:
                value = yield from work()
            except Exception as exc:  # noqa: BLE001 - reported on the main thread
                return _Outcome(error=exc)
            return _Outcome(value)

        return guarded_generator

    def guarded() -> _Outcome:
        try:
            return _Outcome(work())
        except Exception as exc:  # noqa: BLE001 - reported on the main thread
            return _Outcome(error=exc)

    return guarded


class _WorkerEnds(QObject):
    """The main-thread ends of one worker's signals.

    A child of the widget, so nothing arrives once the widget is gone; it sets
    the cancel event if the widget is destroyed (the viewer closed) mid-run.
    """

    def __init__(self, owner: QObject, failure: str | Callable[[Exception], str],
                 cancel_on_close: threading.Event | None,
                 callbacks: dict[str, Callable[..., None] | None],
                 discard_if: threading.Event | None = None, stopped_on_close: str | None = None) -> None:
        super().__init__(owner)
        self._owner = owner
        self._failure = failure
        self._callbacks = callbacks
        self._discard_if = discard_if
        self._cancel = cancel_on_close
        self._stopped_on_close = stopped_on_close
        self._stop = None
        if cancel_on_close is not None:
            event = cancel_on_close  # not self: the slot must outlive the C++ widget
            self._stop = lambda *_: event.set()
            owner.destroyed.connect(self._stop)
            if stopped_on_close is not None:
                owner.installEventFilter(self)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt's name
        """Closing a dock only unparents its widget (napari keeps it): the run would go on unseen, beyond any
        Cancel button. It is cancelled instead, and a notification says so."""
        if watched is self._owner and event.type() == QEvent.Type.ParentChange and self._owner.parent() is None \
                and self._cancel is not None and not self._cancel.is_set():
            self._cancel.set()
            show_info(self._stopped_on_close)
        return False

    def _call(self, name: str, *args: Any) -> None:
        callback = self._callbacks.get(name)
        if callback is not None:
            callback(*args)

    def yielded(self, value: Any) -> None:
        self._call("on_yielded", value)

    def returned(self, outcome: _Outcome) -> None:
        if outcome.error is None and self._discard_if is not None and self._discard_if.is_set():
            self._call("on_cancelled")  # Cancel came while a last step could not stop: its result is not wanted
        elif outcome.error is None:
            self._call("on_returned", outcome.value)
        elif isinstance(outcome.error, Cancelled):
            self._call("on_cancelled")
        else:
            failure = self._failure(outcome.error) if callable(self._failure) else self._failure
            report_failure(failure, outcome.error)
            self._call("on_failed", outcome.error)

    def finished(self) -> None:
        if self._stop is not None:
            self._owner.destroyed.disconnect(self._stop)
            self._stop = None
            if self._stopped_on_close is not None:
                self._owner.removeEventFilter(self)
        try:
            self._call("on_finished")
        finally:
            self.deleteLater()


def start_worker(
    owner: QObject,
    work: Callable[[], Any],
    *,
    failure: str | Callable[[Exception], str],
    cancel_on_close: threading.Event | None = None,
    discard_if: threading.Event | None = None,
    stopped_on_close: str | None = None,
    on_returned: Callable[[Any], None] | None = None,
    on_yielded: Callable[[Any], None] | None = None,
    on_cancelled: Callable[[], None] | None = None,
    on_failed: Callable[[Exception], None] | None = None,
    on_finished: Callable[[], None] | None = None,
) -> FunctionWorker | GeneratorWorker:
    """Start ``work()`` in a napari thread worker: the one way the dock widgets run background work.

    ``work`` is a function or a generator function taking no arguments (bind
    them with :func:`functools.partial`); the started worker is returned.
    Every callback runs on the main thread, where layers may be touched:
    ``on_yielded(value)`` per value a generator yields, then one of
    ``on_returned(value)``, ``on_cancelled()`` (``work`` raised
    :class:`Cancelled`) or ``on_failed(exc)`` (after a notification
    ``"<failure>: <reason>"``, ``failure`` a text or a function of the
    exception; never a traceback dialog), and last
    ``on_finished()``. Progress from core callbacks travels through a
    :class:`Relay`. ``cancel_on_close`` is set if ``owner`` is destroyed mid-run, and (with
    ``stopped_on_close``, the notification that says so) when its dock is closed. A value returned
    after ``discard_if`` was set (Cancel pressed during a last step that cannot stop) goes to
    ``on_cancelled``, not ``on_returned``: nothing is added after Cancel.
    """
    ends = _WorkerEnds(owner, failure, cancel_on_close, {
        "on_returned": on_returned, "on_yielded": on_yielded, "on_cancelled": on_cancelled,
        "on_failed": on_failed, "on_finished": on_finished,
    }, discard_if=discard_if, stopped_on_close=stopped_on_close)
    worker = create_worker(_guarded(work), _start_thread=False)
    if isinstance(worker, GeneratorWorker):
        worker.yielded.connect(ends.yielded)
    worker.returned.connect(ends.returned)
    worker.finished.connect(ends.finished)
    worker.start()
    return worker


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


class LookAgainAfterAdding(QObject):
    """Calls ``callback`` once the code that added a layer has finished.

    Segment records what a result is (a class output, the image it came
    from) right after adding its layer, so a picker that looked as the layer
    came cannot tell yet: it looks again then.
    """

    def __init__(self, owner: QObject, viewer: Any, callback: Callable[[], None]) -> None:
        super().__init__(owner)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(0)
        self._timer.timeout.connect(callback)
        viewer.layers.events.inserted.connect(self.poke)

    def poke(self, event: Any = None) -> None:
        self._timer.start()


def folder_row(line: QLineEdit, title: str, parent: QWidget) -> QWidget:
    """A folder's path and a small "…" button that picks it: the button stays in view at any dock width. A folder
    picked is as one typed in (``editingFinished``)."""
    row = QWidget()
    layout = QHBoxLayout(row)
    layout.setContentsMargins(0, 0, 0, 0)
    line.setMinimumWidth(60)
    button = QToolButton()
    button.setText("…")
    button.setToolTip(f"Choose the {title.lower()}")

    def choose() -> None:
        folder = QFileDialog.getExistingDirectory(parent, title)
        if folder:
            line.setText(folder)
            line.editingFinished.emit()

    button.clicked.connect(choose)
    layout.addWidget(line, 1)
    layout.addWidget(button)
    return row
