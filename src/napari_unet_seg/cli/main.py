"""``unet-seg``: entry point that assembles the subcommands.

Each subcommand module has ``add_parser(subparsers)`` and ``run(args) -> int``.
User mistakes print one line on stderr and exit non-zero, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from ..__about__ import __version__
from ..core.model.devices import DeviceError
from ..core.model.modelfile import ModelFileError
from . import cells, evaluate, export, export_model, import_model, measure, models, predict, provenance, train
from .errors import UserError, cli_wording, os_error_line

SUBCOMMANDS = [predict, cells, measure, models, evaluate, train, export, export_model, import_model, provenance]


class OneLineParser(argparse.ArgumentParser):
    """A mistyped option says what is wrong in one line, as every other user mistake does, not after the whole
    usage (5-12 lines for a subcommand): the line ends by pointing at --help."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="unet-seg",
        description="Segment microscopy images with a U-Net (the engine of the napari-unet-seg plugin).",
    )
    parser.add_argument("--version", action="version", version=f"napari-unet-seg {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in SUBCOMMANDS:
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except (UserError, ModelFileError, DeviceError) as exc:
        print(f"unet-seg {args.command}: error: {_worded(args, str(exc))}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader went away (`unet-seg ... | head`): stop quietly, as Unix tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except OSError as exc:  # a folder that cannot be written, a full disk: the user's to fix, in one line
        print(f"unet-seg {args.command}: error: {_worded(args, os_error_line(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"unet-seg {args.command}: interrupted", file=sys.stderr)
        return 130


def _worded(args: argparse.Namespace, message: str) -> str:
    """A core error in this command's words: "overwrite" becomes the ``--overwrite`` flag where it has one."""
    return cli_wording(message) if hasattr(args, "overwrite") else message


if __name__ == "__main__":
    sys.exit(main())
