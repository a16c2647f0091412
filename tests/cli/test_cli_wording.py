"""Messages from the core name the command line's flag: "overwrite" is said as ``--overwrite``."""

from __future__ import annotations

import numpy as np

from napari_unet_seg.cli.errors import cli_wording
from napari_unet_seg.cli.main import main
from napari_unet_seg.core.imageio import write_labels_tiff


def test_the_export_refusal_names_the_real_flag(tmp_path, capsys):
    labels = write_labels_tiff(tmp_path / "a_labels.tif", np.eye(8, dtype=np.uint16))
    out = tmp_path / "out.geojson"
    out.write_text("keep me")
    assert main(["export", str(labels), "--format", "geojson", "-o", str(out)]) == 2
    assert capsys.readouterr().err == (f"unet-seg export: error: {out} already exists (--overwrite to replace it)\n")
    assert out.read_text() == "keep me"


def test_only_the_word_for_the_option_is_translated():
    assert cli_wording("output exists (use overwrite to redo it)") == "output exists (use --overwrite to redo it)"
    assert cli_wording("kept, even with overwrite; move it") == "kept, even with --overwrite; move it"
    for untouched in ("pass --overwrite", "model files are never overwritten", "/data/overwrite/a.tif exists",
                      "overwrite.tif exists", "cannot read overwrite_me.tif"):
        assert cli_wording(untouched) == untouched


def test_os_errors_are_said_without_python_errno_prefixes():
    import errno
    import os

    from napari_unet_seg.cli.errors import os_error_line

    assert os_error_line(OSError(None, "cannot write to out: read-only")) == "cannot write to out: read-only"
    assert os_error_line(OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "a.tif")) == \
        "a.tif: No space left on device"
    assert os_error_line(FileExistsError("x already exists")) == "x already exists"
