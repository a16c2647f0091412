"""One batch run at a time per output folder: a second one is refused in one line, a dead one's lock is taken over.

Two runs writing into one folder at once would each rewrite ``summary.csv``
from what they saw when they started, so the one that ends last drops the
other's rows, and both segment the same files. The lock is a small JSON file
in the folder naming the process, its machine and when it started; a thread
touches it every few seconds while the run lasts. A lock whose process is
gone (same machine), or that nobody has touched for a while (a run on another
machine sharing the folder, killed), is stale and taken over.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..common.atomic import process_alive, remove
from .errors import OutputFolderError

LOCK_NAME = ".unet-seg-batch.lock"
HEARTBEAT_S = 10.0  # how often a running batch touches its lock
STALE_S = 120.0  # a lock untouched this long belongs to a run that is gone (killed, machine off)


def _holder(path: Path) -> dict | None:
    """The lock's record, or None when there is none (or it is unreadable: a run killed while writing it)."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        return record if isinstance(record, dict) else None
    except (OSError, ValueError):
        return None


def _alive(path: Path, record: dict) -> bool:
    """Whether the run that wrote ``record`` still runs: its process on this machine, else a recent heartbeat."""
    try:
        touched = time.time() - path.stat().st_mtime
    except OSError:
        return False
    if touched > STALE_S:
        return False
    if record.get("host") == socket.gethostname():
        pid = record.get("pid")
        return isinstance(pid, int) and process_alive(pid)
    return True


def _refusal(outdir: Path, record: dict) -> OutputFolderError:
    since = time.strftime("%H:%M", time.localtime(record["started"])) if isinstance(
        record.get("started"), (int, float)) else "earlier"
    where = "" if record.get("host") == socket.gethostname() else f" on {record.get('host', 'another machine')}"
    return OutputFolderError(f"another batch run (process {record.get('pid', '?')}{where}, started {since}) is "
                             f"writing into {outdir}: wait for it to end, or choose another output folder")


def _take(path: Path, outdir: Path) -> None:
    """Create the lock, or raise if a live run holds it; a stale lock is replaced."""
    record = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}
    for _ in range(3):  # a stale lock removed between two runs starting at once: one of them wins
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
        except FileExistsError:
            held = _holder(path)
            if held is not None and _alive(path, held):
                raise _refusal(outdir, held) from None
            if held is None and _recent(path):
                time.sleep(0.2)  # being written by a run that started a moment ago: read it again
                continue
            remove(path)
            continue
        except OSError:
            return  # a folder that takes no lock file (checked writable just before): run unguarded
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(record, f)
        return
    held = _holder(path)
    raise _refusal(outdir, held or {})


def _recent(path: Path) -> bool:
    try:
        return time.time() - path.stat().st_mtime < 2.0
    except OSError:
        return False


@contextmanager
def folder_lock(outdir: Path) -> Iterator[None]:
    """Hold ``outdir``'s batch lock while the block runs; :class:`OutputFolderError` if another run holds it."""
    path = outdir / LOCK_NAME
    _take(path, outdir)
    done = threading.Event()

    def beat() -> None:
        while not done.wait(HEARTBEAT_S):
            try:
                os.utime(path)
            except OSError:
                return

    thread = threading.Thread(target=beat, name="unet-seg batch lock", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        held = _holder(path)
        if held is not None and held.get("pid") == os.getpid() and held.get("host") == socket.gethostname():
            remove(path)
