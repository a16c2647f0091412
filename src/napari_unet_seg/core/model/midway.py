"""Cancel inside a network pass: a large window on a CPU runs for many seconds, and Cancel should not wait for it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from torch import nn

from ..common.callbacks import CancelCallback, raise_if_cancelled


@contextmanager
def stops_midway(net: nn.Module, cancel: CancelCallback | None) -> Iterator[None]:
    """While the block runs, ``cancel()`` is heard before each convolution of ``net``, not only between passes.

    A forward pre-hook per convolution raises :class:`~..common.callbacks.Cancelled`;
    the hooks are removed when the block ends. Callers hold
    :func:`~.lock.exclusive` for the network, so no other run sees them.
    """
    if cancel is None:
        yield
        return

    def check(module: nn.Module, args: tuple) -> None:
        raise_if_cancelled(cancel)

    handles = [m.register_forward_pre_hook(check) for m in net.modules()
               if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()
