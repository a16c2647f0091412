"""One caller at a time per network: waiting callers can cancel; a thread may re-enter; other networks are free."""

import threading

import numpy as np
import pytest

from napari_unet_seg import Cancelled, UNet, predict_tiled
from napari_unet_seg.core.model.lock import exclusive


def test_waiting_for_a_busy_network_can_be_cancelled():
    import threading

    net = UNet(1, 2, depth=1, base_channels=2)
    holding, release = threading.Event(), threading.Event()

    def hold():
        with exclusive(net):
            holding.set()
            release.wait(10)

    other = threading.Thread(target=hold)
    other.start()
    holding.wait(10)
    outcome = []

    def wait_then_cancel():
        try:
            predict_tiled(net, np.zeros((8, 8), np.float32), device="cpu", cancel=lambda: True)
        except Cancelled:
            outcome.append("cancelled")

    waiter = threading.Thread(target=wait_then_cancel)
    waiter.start()
    waiter.join(5)  # the network is still held: only cancelling the wait lets it finish
    still_waiting = waiter.is_alive()
    release.set()
    other.join()
    waiter.join()
    assert not still_waiting and outcome == ["cancelled"]
    assert predict_tiled(net, np.zeros((8, 8), np.float32), device="cpu").shape == (2, 8, 8)  # free again


def test_the_holding_thread_may_enter_again():
    net = UNet(1, 2, depth=1, base_channels=2)
    with exclusive(net):
        with exclusive(net):  # e.g. fine-tuning copies a network inside its own inference
            pass


def _enter_and_leave(net, log):
    try:
        with exclusive(net, cancel=lambda: True):  # gives up at once if the network is held
            log.append("entered")
    except Cancelled:
        log.append("cancelled")


def test_networks_are_held_one_by_one_and_released_on_errors():
    a, b = UNet(1, 2, depth=1, base_channels=2), UNet(1, 2, depth=1, base_channels=2)
    holding, release = threading.Event(), threading.Event()

    def hold_a():
        with exclusive(a):
            holding.set()
            release.wait(10)

    other = threading.Thread(target=hold_a)
    other.start()
    holding.wait(10)
    try:
        got_b = []
        t = threading.Thread(target=_enter_and_leave, args=(b, got_b))
        t.start()
        t.join(5)
        assert got_b == ["entered"]  # another network is not blocked by a held one
        with pytest.raises(Cancelled):
            with exclusive(a, cancel=lambda: True):  # the held one is
                pass
    finally:
        release.set()
        other.join()
    with pytest.raises(ValueError):
        with exclusive(a):
            raise ValueError("inference failed")
    done = []
    t = threading.Thread(target=_enter_and_leave, args=(a, done))
    t.start()
    t.join(5)
    assert done == ["entered"]  # the failed holder let go
