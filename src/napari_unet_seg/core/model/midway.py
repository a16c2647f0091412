"""Cancel inside a network pass: a large window on a CPU runs for many seconds, and Cancel should not wait for it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from torch import nn

from ..common.callbacks import CancelCallback, ProgressCallback, raise_if_cancelled


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


@contextmanager
def reports_midway(net: nn.Module, progress: ProgressCallback | None, passes: int = 1) -> Iterator[int]:
    """While the block runs ``passes`` forward passes of ``net``, ``progress(k, total)`` is called after each of
    its convolutions; yields ``total`` (the convolutions, plus one step for writing the result), which the
    caller reports once done.

    For a run that is one network call (a one-window image, ~8 s a megapixel on a 2-core CPU) the count of
    windows sat at 0 % with no time left until the very end; counting layers gives the dock a moving bar and
    an estimate. Hooks are removed when the block ends; callers hold :func:`~.lock.exclusive` for the network.
    """
    convolutions = [m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    total = len(convolutions) * max(passes, 1) + 1
    if progress is None or not convolutions:
        yield total
        return
    done = [0]

    def after(module: nn.Module, args: tuple, output: object) -> None:
        done[0] += 1
        progress(min(done[0], total - 1), total)  # an out-of-memory retry runs layers again: never past the end

    handles = [m.register_forward_hook(after) for m in convolutions]
    try:
        yield total
    finally:
        for handle in handles:
            handle.remove()
