"""The QC picture of an output a rerun keeps: QC asked for a folder segmented without it draws what is missing.

Read from the files as they are (the image, its labels, its cells), as the
run that made them would have drawn it. Never raises: a picture that cannot
be made is left out, and the page says "no picture".
"""

from __future__ import annotations

from ..common.errors import first_line
from ..common.file_names import file_stem
from ..imageio import read_image, read_labels
from ..inference.options import RunOptions
from .cells_output import cells_path
from .files import with_channels
from .jobs import Job
from .qc import write_qc_picture


def draw_kept_picture(job: Job) -> str:
    """Draw ``job.qc`` from the output already in the folder; a note ("" when drawn)."""
    if job.qc is None:
        return ""
    try:
        labels = read_labels(job.target)
        image = read_image(job.source)
        cells_file = cells_path(job.target)
        cells = read_labels(cells_file) if cells_file.exists() else None
    except Exception as exc:  # noqa: BLE001 - a file changed or gone: no picture, said on the page
        return f"no QC picture: {first_line(exc)}"
    if image.stack and image.data.ndim == 3 and len(labels.shape) == 2:
        image = with_channels(image, RunOptions(channel=0))  # (C, H, W) with labels of one plane: its channels
    return write_qc_picture(job.qc, image.data, labels, rgb=image.rgb, channel_axis=image.channel_axis,
                            cells=cells, classes=file_stem(job.target.name).endswith("_classes"))
