"""What a running segmentation has reported, said in words: the stage, how far it is, the time left.

The core reports only ``progress(done, total)`` for the network's windows
(a block's share of them, for planes segmented block by block), with 0 as
the network starts, so a one-window image shows its network stage too. Before
the first report the image is read, normalised and its objects measured; after
the last one the objects are separated (seeds, watershed) and, for zarr
results, the store finished. Those stages report nothing, so the dock names
them from where the count stands and shows the time spent, never a frozen line.
No Qt here.
"""

from __future__ import annotations

from dataclasses import dataclass

from ._common import format_seconds

PREPARING, NETWORK, FINISHING = "preparing", "network", "finishing"
SHARE = 100_000  # the count a run's reports are scaled to


@dataclass
class SegmentProgress:
    """The reports of one run, and the time (``time.monotonic()``) it started."""

    name: str
    started: float
    measuring: bool = True  # the object size is measured first (diameter "auto")
    to_disk: bool = False  # the labels go to a zarr store, finished after the last window
    planes: int = 1  # slices of a stack to segment: each takes an equal share of the count, in order
    done: int = 0
    total: int = 0
    first: tuple[float, int] | None = None  # when the first report came, and its count
    last: tuple[float, int] | None = None  # when the latest report came, and its count

    def report(self, done: int, total: int, now: float) -> None:
        if total > 0:  # as a share of SHARE: blocks count windows, or layers when one call (units may differ)
            done, total = round(done * SHARE / total), SHARE
        if done > 0:
            if self.first is None:
                self.first = (now, done)
            self.last = (now, done)
        self.done, self.total = done, total

    @property
    def stage(self) -> str:
        if self.total <= 0:
            return PREPARING
        return FINISHING if self.done >= self.total else NETWORK

    def percent(self) -> int | None:
        """The network's share done (0-100), or None while the stage has no count (a busy bar)."""
        return None if self.stage != NETWORK else int(100 * self.done / self.total)

    def seconds_left(self, now: float) -> float | None:
        """The network's time left: at its pace between reports, counted down since the latest one.

        The pace leaves the preparation out once there are two reports (with
        one, it is included: an upper bound). Reports may be few (a plane
        segmented block by block reports once a block), so the estimate is
        made at a report and counts down until the next. None: no estimate.
        """
        if self.stage != NETWORK or self.first is None or self.last is None:
            return None
        (t0, d0), (t1, d1) = self.first, self.last
        pace = (t1 - t0) / (d1 - d0) if d1 > d0 else (t1 - self.started) / d1
        left = pace * (self.total - d1) - (now - t1)
        return left if left >= 1 else None

    def text(self, now: float) -> str:
        """One status line, e.g. "Network: 50 % of 'cells', ~20 s left for it · 31 s so far"."""
        spent = f" · {format_seconds(now - self.started)} so far"
        if self.stage == PREPARING:
            what = "reading the image, measuring its objects" if self.measuring else "reading the image"
            return f"Preparing '{self.name}' ({what})…{spent}"
        if self.stage == FINISHING:
            store = ", writing the store" if self.to_disk else ""
            return f"Post-processing '{self.name}' (making the labels{store})…{spent}"
        left = self.seconds_left(now)
        eta = f", ~{format_seconds(left)} left for it" if left is not None else ""
        return f"Network: {self.percent()} % of '{self.name}'{self._slice()}{eta}{spent}"

    def _slice(self) -> str:
        """ " (slice 3 of 6)" while a stack's slice is under way (its share of the count), else ""."""
        if self.planes <= 1 or self.total <= 0:
            return ""
        at = min(self.planes, self.done * self.planes // self.total + 1)
        return f" (slice {at} of {self.planes})"
