"""The output folder of a batch, checked before any work: one clean line when it cannot be used.

The line is what the CLI prints and the Batch widget shows ("Batch
segmentation stopped: <line>"), so it names the folder once and carries no
errno.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..common.atomic import check_writable_folder
from .errors import OutputFolderError


def refuse_a_file(outdir: str | os.PathLike) -> Path:
    """``outdir`` as a path; :class:`OutputFolderError` when it exists and is not a folder.

    Cheap and writes nothing: run before looking for input files.
    """
    outdir = Path(outdir)
    if outdir.exists() and not outdir.is_dir():
        raise OutputFolderError(f"output {outdir} exists and is not a folder")
    return outdir


MOUNT_ROOTS = (Path("/media"), Path("/mnt"), Path("/Volumes"), Path("/run/media"))  # where drives appear


def refuse_a_missing_drive(outdir: Path) -> None:
    """:class:`OutputFolderError` when making ``outdir`` would create a drive's folder under a mount root
    (``/media/usbstick/results``, ``/run/media/<user>/STICK/results`` with no stick in): the results would fill
    the system disk instead, unseen."""
    if outdir.exists():
        return
    whole = Path(os.path.abspath(outdir))
    existing = next((p for p in whole.parents if p.exists()), None)
    for root in MOUNT_ROOTS:
        if existing is None or root not in whole.parents:
            continue
        # the drive's folder would be made at the root or under a user's folder there (not itself a drive)
        if existing in (root, *root.parents) or (existing.parent == root and not os.path.ismount(existing)):
            missing = existing / whole.relative_to(existing).parts[0]
            raise OutputFolderError(f"output {outdir}: no drive is connected there ({missing} does not exist): "
                                    "connect the drive, or create the folder first if it is meant to be on this "
                                    "computer's disk")


def prepare_output_folder(outdir: str | os.PathLike) -> Path:
    """Create ``outdir`` if needed and prove a file can be written there, before any segmentation starts."""
    outdir = refuse_a_file(outdir)
    refuse_a_missing_drive(outdir)
    try:
        return check_writable_folder(outdir)
    except OSError as exc:  # its text is "cannot write to <folder>: <reason>", in strerror (its str adds "[Errno n]")
        raise OutputFolderError(exc.strerror or str(exc)) from None
