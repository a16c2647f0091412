"""The one way dock widgets run background work: callbacks on the main thread, errors as notifications."""

from __future__ import annotations

import logging
import threading

import pytest
from qtpy.QtWidgets import QWidget

from napari_unet_seg._widgets import _common
from napari_unet_seg._widgets._common import Relay, progress_relay, start_worker
from napari_unet_seg.core.common.callbacks import Cancelled

pytestmark = pytest.mark.gui
TIMEOUT = 10_000


@pytest.fixture
def errors(monkeypatch) -> list[str]:
    shown: list[str] = []
    monkeypatch.setattr(_common, "show_error", shown.append)
    return shown


@pytest.fixture
def owner(qtbot) -> QWidget:
    widget = QWidget()
    qtbot.addWidget(widget)
    return widget


def _run(qtbot, owner, work, **callbacks) -> list[tuple]:
    """Start ``work`` and wait; returns (callback name, args, on the main thread?) in call order."""
    calls: list[tuple] = []
    main = threading.main_thread()

    def recorder(name):
        return lambda *args: calls.append((name, args, threading.current_thread() is main))

    names = ("on_returned", "on_yielded", "on_cancelled", "on_failed", "on_finished")
    worker = start_worker(owner, work, **{"failure": "It failed", **{n: recorder(n) for n in names}, **callbacks})
    qtbot.waitUntil(lambda: bool(calls) and calls[-1][0] == "on_finished", timeout=TIMEOUT)
    assert worker is not None
    return calls


def test_function_result_reaches_the_main_thread(qtbot, owner, errors):
    calls = _run(qtbot, owner, lambda: 42)
    assert [(name, args) for name, args, _ in calls] == [("on_returned", (42,)), ("on_finished", ())]
    assert all(on_main for *_, on_main in calls) and not errors


def test_generator_values_then_its_return_value(qtbot, owner, errors):
    def counting():
        yield 1
        yield 2
        return "done"

    calls = _run(qtbot, owner, counting)
    assert [(name, args) for name, args, _ in calls] == [
        ("on_yielded", (1,)), ("on_yielded", (2,)), ("on_returned", ("done",)), ("on_finished", ())]


@pytest.mark.parametrize("error, logged", [(MemoryError("out of memory\nmore detail"), False),
                                           (KeyError("surprise"), True)])
def test_errors_become_one_line_notifications(qtbot, owner, errors, caplog, error, logged):
    def failing():
        yield 1
        raise error

    with caplog.at_level(logging.ERROR, logger=_common.__name__):
        calls = _run(qtbot, owner, failing)
    assert [name for name, *_ in calls] == ["on_yielded", "on_failed", "on_finished"]
    assert calls[1][1] == (error,)
    assert errors == [f"It failed: {_common.first_line(error)}"] and "\n" not in errors[0]
    assert bool(caplog.records) is logged  # unexpected errors keep their traceback in the log


def test_cancelled_is_not_a_failure(qtbot, owner, errors):
    def cancelled():
        raise Cancelled("cancelled")

    calls = _run(qtbot, owner, cancelled)
    assert [name for name, *_ in calls] == ["on_cancelled", "on_finished"] and not errors


def test_destroying_the_widget_mid_run_sets_the_cancel_event(qtbot):
    owner = QWidget()
    cancel, started, finished = threading.Event(), threading.Event(), []

    def waits_for_cancel():
        started.set()
        if not cancel.wait(TIMEOUT / 1000):
            return "never cancelled"
        raise Cancelled("cancelled")

    worker = start_worker(owner, waits_for_cancel, failure="x", cancel_on_close=cancel,
                          on_finished=lambda: finished.append(True))
    assert started.wait(5)
    with qtbot.waitSignal(worker.finished, timeout=TIMEOUT):
        owner.deleteLater()  # what closing the viewer does to a dock widget
    assert cancel.is_set()
    qtbot.wait(50)
    assert finished == []  # nothing is delivered to a widget that is gone


def test_a_result_returned_after_cancel_is_discarded(qtbot, owner, errors):
    """Cancel during a last step that cannot stop (post-processing): its result must not be added after all."""
    cancel = threading.Event()

    def ignores_cancel():
        cancel.set()  # Cancel pressed while the work could not look
        return "labels"

    calls = _run(qtbot, owner, ignores_cancel, cancel_on_close=cancel, discard_if=cancel)
    assert [name for name, *_ in calls] == ["on_cancelled", "on_finished"] and not errors


def test_closing_the_dock_mid_run_cancels_it_and_says_so(qtbot, monkeypatch):
    shown: list[str] = []
    monkeypatch.setattr(_common, "show_info", shown.append)
    dock = QWidget()
    qtbot.addWidget(dock)
    owner = QWidget(dock)
    cancel, started = threading.Event(), threading.Event()

    def waits_for_cancel():
        started.set()
        if not cancel.wait(TIMEOUT / 1000):
            return "never cancelled"
        raise Cancelled("cancelled")

    calls: list[str] = []
    worker = start_worker(owner, waits_for_cancel, failure="x", cancel_on_close=cancel,
                          stopped_on_close="Work stopped: its panel was closed.",
                          on_cancelled=lambda: calls.append("cancelled"), on_returned=lambda v: calls.append(v))
    assert started.wait(5)
    with qtbot.waitSignal(worker.finished, timeout=TIMEOUT):
        owner.setParent(None)  # what closing a dock does to its widget: napari keeps it, unparented
    qtbot.waitUntil(lambda: calls == ["cancelled"], timeout=TIMEOUT)
    assert cancel.is_set() and shown == ["Work stopped: its panel was closed."]
    owner.setParent(dock)  # docked again after the run: nothing is cancelled or said
    owner.setParent(None)
    assert shown == ["Work stopped: its panel was closed."]


def test_a_finished_run_forgets_its_cancel_event(qtbot, owner):
    cancel = threading.Event()
    _run(qtbot, owner, lambda: None, cancel_on_close=cancel)
    owner.destroyed.emit()
    assert not cancel.is_set()


def test_relays_deliver_on_the_main_thread_and_progress_is_rate_limited(qtbot, owner):
    main = threading.main_thread()
    progress, texts = [], []
    relay = progress_relay(lambda done, total: progress.append((done, total, threading.current_thread() is main)),
                           min_interval=10.0, parent=owner)
    status = Relay(texts.append, parent=owner)

    def report():
        for done in range(1, 101):
            relay(done, 100)
            status(f"step {done}")

    thread = threading.Thread(target=report)
    thread.start()
    thread.join()
    qtbot.waitUntil(lambda: len(texts) == 100, timeout=TIMEOUT)
    assert [(d, t) for d, t, _ in progress] == [(1, 100), (100, 100)]  # the first, then the last always
    assert all(on_main for *_, on_main in progress)
