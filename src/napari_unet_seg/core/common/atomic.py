"""Writing user-visible files all at once or not at all: a temporary sibling, renamed when complete.

An interrupted run (crash, Ctrl-C, full disk) then leaves the old file or no
file, never a truncated one. Temporary names start with a dot and end in
``.tmp`` or ``.partial`` (both ignored by git and by batch folder scans).
"""

from __future__ import annotations

import errno
import os
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_UMASK_LOCK = threading.Lock()


def current_umask() -> int:
    """The process's umask now (it can change while we run, e.g. a notebook's ``os.umask``).

    Linux says it in /proc without changing it; elsewhere it is read by
    setting and restoring it, which briefly leaves 0o077 (the strictest)
    for other threads, under a lock of our own.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _UMASK_LOCK:
        mask = os.umask(0o077)  # the strictest mask while it is read: nothing made meanwhile is too open
        os.umask(mask)
    return mask


def temporary_sibling(path: Path, suffix: str = ".partial") -> Path:
    """``.<name>.<pid><suffix>`` beside ``path``: same filesystem, so the final rename is atomic."""
    return path.with_name(f".{path.name}.{os.getpid()}{suffix}")


def remove(path: Path) -> None:
    """Remove a file or folder if it exists."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def replace_atomically(tmp: Path, path: Path) -> None:
    """Move a finished file or folder ``tmp`` to ``path``, replacing what was there."""
    if not tmp.is_dir():
        os.replace(tmp, path)
        return
    old = temporary_sibling(path, ".old")
    if path.exists():
        os.replace(path, old)
    os.replace(tmp, path)
    remove(old)


def check_writable_folder(folder: str | os.PathLike) -> Path:
    """Create ``folder`` if needed and prove a file can be written there, before any long work starts.

    Raises ``OSError`` whose message names the folder and the reason in one
    line (read-only, full, not a folder), so nothing is computed only to be lost.
    """
    folder = Path(folder)
    try:
        if folder.exists() and not folder.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, "it exists and is not a folder")
        folder.mkdir(parents=True, exist_ok=True)
        probe = temporary_sibling(folder / "write-test", ".tmp")
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise OneLineOSError(exc.errno, f"cannot write to {folder}: {reason}") from None
    return folder


class OneLineOSError(OSError):
    """An ``OSError`` whose text is its one-line message alone: no "[Errno n]" for people to puzzle over."""

    def __str__(self) -> str:
        return self.strerror or super().__str__()


@contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = ".partial") -> Iterator[Path]:
    """Yield a temporary path to write a file or folder into; it becomes ``path`` when the block succeeds.

    Whatever happens, no temporary file or folder is left behind. A symbolic
    link is written through (its target is replaced, the link stays); a
    device, pipe or socket is refused, never replaced by a file.
    """
    path = Path(path)
    if path.is_symlink():
        path = path.resolve()
    if path.exists() and not (path.is_file() or path.is_dir()):
        raise OneLineOSError(errno.EINVAL, f"{path} is not a regular file (a device, pipe or socket): "
                                              "give a file name to write")
    tmp = temporary_sibling(path, suffix)
    remove(tmp)
    remove_stale_siblings(path, suffix)
    try:
        yield tmp
        if tmp.is_file():  # some writers (safetensors) create files 0600: outputs follow the user's umask
            os.chmod(tmp, 0o666 & ~current_umask())
        replace_atomically(tmp, path)
    finally:
        remove(tmp)


def remove_stale_siblings(path: Path, suffix: str = ".partial") -> list[Path]:
    """Remove ``.<name>.<pid><suffix>`` siblings of ``path`` left by processes that are gone (killed mid-write).

    Only that exact name and a process that no longer runs: a live writer's
    temporary file, and anything else beside ``path``, are never touched.
    """
    removed = []
    prefix = f".{path.name}."
    try:
        siblings = list(path.parent.iterdir()) if path.parent.is_dir() else []
    except OSError:
        return removed
    for sibling in siblings:
        middle = sibling.name[len(prefix):-len(suffix)] if sibling.name.endswith(suffix) else ""
        if sibling.name.startswith(prefix) and middle.isdigit() and not process_alive(int(middle)):
            remove(sibling)
            removed.append(sibling)
    return removed


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` runs (one of another user's counts as running)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except (OSError, OverflowError):
        return False
    return True
