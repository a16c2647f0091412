"""A bioimage.io package's files, from a folder or a ``.zip``, read by name and never from outside the package.

An imported package is someone else's data: a name in its ``rdf.yaml`` may
point anywhere (``../../secret``, a URL, a symbolic link), and a zip may
promise a small file that inflates to gigabytes. Every file is therefore read
through :class:`PackageFiles`, which keeps names inside the package and sizes
within the caller's limit.
"""

from __future__ import annotations

import posixpath
import zipfile
from pathlib import Path
from typing import Self

DESCRIPTION_NAMES = ("bioimageio.yaml", "rdf.yaml")  # spec 0.5 prefers the first; 0.4 packages use the second
MAX_DESCRIPTION_BYTES = 10_000_000


class ImportRefused(ValueError):
    """A package that cannot be imported, or an output not to overwrite; the message is one line.

    What is said of a package is said of "it" (``its weights file ...``): the
    import names the package in front.
    """


def _description_name(names: list[str]) -> str | None:
    """The package's description among file names at its top level (``*.bioimageio.yaml`` counts too)."""
    for wanted in DESCRIPTION_NAMES:
        if wanted in names:
            return wanted
    named = sorted(n for n in names if n.endswith(".bioimageio.yaml"))
    return named[0] if named else None


class PackageFiles:
    """The files of one package: a folder or a zip (the description at its top, or in its one top folder)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if self.path.name in ("rdf.yaml", "bioimageio.yaml") and self.path.is_file():
            self.path = self.path.parent  # the file `bioimageio test` is given: its package is the folder
        self._zip: zipfile.ZipFile | None = None
        self._prefix = ""
        if not self.path.exists():
            raise ImportRefused("no such file or folder")
        if self.path.is_dir():
            found = _description_name([p.name for p in self.path.iterdir() if p.is_file()])
        elif zipfile.is_zipfile(self.path):
            found = self._open_zip()
        elif self.path.suffix.lower() == ".zip":
            raise ImportRefused("it is named .zip but is not a readable zip: damaged or incomplete (a download cut "
                                "short?)")
        else:
            raise ImportRefused("it is not a bioimage.io package (a folder or .zip holding an rdf.yaml)")
        if found is None:
            self.close()
            raise ImportRefused("it is not a bioimage.io package: it holds no rdf.yaml or bioimageio.yaml")
        self.description_name = found

    def _open_zip(self) -> str | None:
        try:
            self._zip = zipfile.ZipFile(self.path)
            names = self._zip.namelist()
        except (zipfile.BadZipFile, OSError, ValueError) as exc:
            raise ImportRefused(f"it is a damaged zip file ({exc})") from None
        found = _description_name([n for n in names if "/" not in n])
        tops = {n.split("/", 1)[0] for n in names if "/" in n}
        if found is None and len(tops) == 1:  # a zipped folder: the package is inside its one folder
            self._prefix = f"{tops.pop()}/"
            found = _description_name([n[len(self._prefix):] for n in names if n.startswith(self._prefix)
                                       and "/" not in n[len(self._prefix):]])
        return found

    @property
    def root(self) -> Path | zipfile.ZipFile:
        """Where the package's relative names start, as bioimageio.spec's validation context wants it."""
        return self._zip if self._zip is not None else self.path

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _member(self, name: str, what: str) -> str:
        """``name`` as a clean relative name inside the package; refused when it points outside."""
        if "://" in name:
            raise ImportRefused(f"its {what} is at {name}, outside the package; napari-unet-seg imports only the "
                                "files a package holds")
        clean = posixpath.normpath(name.replace("\\", "/"))
        if clean.startswith(("/", "../")) or clean == ".." or not clean or clean == ".":
            raise ImportRefused(f"its {what} {name!r} is not inside the package")
        return clean

    def size(self, name: str, what: str) -> int:
        """The size in bytes of the package's file ``name`` (its ``what``, for messages)."""
        member = self._member(name, what)
        if self._zip is not None:
            try:
                return self._zip.getinfo(self._prefix + member).file_size
            except KeyError:
                raise ImportRefused(f"its {what} {name} is missing from the package") from None
        path = (self.path / member).resolve()
        if not path.is_relative_to(self.path.resolve()):
            raise ImportRefused(f"its {what} {name!r} is not inside the package")
        if not path.is_file():
            raise ImportRefused(f"its {what} {name} is missing from the package")
        return path.stat().st_size

    def read(self, name: str, what: str, limit: int) -> bytes:
        """The bytes of the file ``name``, refused beyond ``limit`` bytes (a zip's claim is checked as read)."""
        size = self.size(name, what)
        if size > limit:
            raise ImportRefused(f"its {what} {name} is {size / 1e6:.1f} MB, more than the {limit / 1e6:.1f} MB "
                                "expected")
        member = self._member(name, what)
        try:
            if self._zip is not None:
                with self._zip.open(self._prefix + member) as f:
                    data = f.read(limit + 1)
            else:
                data = (self.path / member).read_bytes()
        except Exception as exc:  # noqa: BLE001 - a damaged zip (zlib, EOF, BadZipFile), an unsupported or
            # encrypted member (NotImplementedError, RuntimeError), a failing disk: one line whatever zipfile raises
            raise ImportRefused(f"its {what} {name} cannot be read ({exc})") from None
        if len(data) > limit:
            raise ImportRefused(f"its {what} {name} is larger than the package says")
        return data

    def description(self) -> bytes:
        """The bytes of the package's ``rdf.yaml`` (or ``bioimageio.yaml``)."""
        return self.read(self.description_name, "description", MAX_DESCRIPTION_BYTES)
