"""One caller at a time per network: inference changes a network's state while it runs.

Lives with the model (not the tiling) because fine-tuning copies a shared
network too, and must not copy it half-way through someone's inference.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager

import torch

from ..common.callbacks import CancelCallback, Cancelled

_NET_LOCKS: weakref.WeakKeyDictionary[torch.nn.Module, threading.RLock] = weakref.WeakKeyDictionary()
_NET_LOCKS_GUARD = threading.Lock()


@contextmanager
def exclusive(net: torch.nn.Module, cancel: CancelCallback | None = None) -> Iterator[None]:
    """Hold ``net`` for one caller at a time; waiting callers can still cancel.

    Inference switches the network to eval mode and channels_last and back,
    which replaces its parameters in place: a second thread running the same
    network meanwhile reads freed memory and can crash the process (it did, in
    a two-file batch). Post-processing stays outside, so threads still overlap.
    """
    with _NET_LOCKS_GUARD:
        lock = _NET_LOCKS.setdefault(net, threading.RLock())
    while not lock.acquire(timeout=0.1):
        if cancel is not None and cancel():
            raise Cancelled("cancelled")
    try:
        yield
    finally:
        lock.release()
