"""Outputs already in the output folder: whether unet-seg wrote them, and what the run that did used.

unet-seg records its provenance in every labels output it writes (the TIFF's
metadata, the zarr store's attributes; see :mod:`..inference.provenance`). A
file of an output's name without one is the user's, most often a hand-made
``<stem>_labels.tif`` annotation: the name the plugin's own ``sample_data``
gives ground truth. A batch never replaces such a file, even with overwrite.
For outputs that are ours, the recorded settings say what a rerun would
change, so a skip can name it ("model: nuclei -> nuclei-robust").
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..imageio import is_zarr
from ..inference.cells_step import describe_cells_request
from ..inference.object_filter import ObjectFilter
from ..inference.options import RunOptions
from ..inference.provenance import FORMAT, file_sha256, read_provenance
from ..model.modelfile import ModelFileError, ModelInfo
from ..model.registry import DEFAULT_MODEL, resolve_model_path


def output_provenance(path: str | os.PathLike) -> dict[str, Any] | None:
    """The provenance unet-seg recorded in an existing output; None for a file it did not write.

    A file that cannot be read is not shown to be ours, so it counts as the
    user's: keeping a file by mistake costs a rerun, replacing one costs work.
    """
    try:
        record = read_provenance(path)
    except Exception:  # noqa: BLE001 - any reader's error (not a TIFF, a broken store) means "not shown to be ours"
        return None
    return record if isinstance(record, dict) and record.get("format") == FORMAT else None


def same_file(recorded: str, source: Path) -> bool:
    """Whether the recorded path names ``source`` (the same path, or the same file through another path)."""
    if Path(recorded) == source:
        return True
    try:
        return os.path.samefile(recorded, source)
    except OSError:  # the recorded file is gone or unreadable: not shown to be this one
        return False


def counted_output(path: str | os.PathLike, record: dict[str, Any]) -> tuple[int, float] | None:
    """(objects over every plane, their mean area in px) of an output of ours, read back from it.

    For an output whose summary row was lost (a run killed between writing it
    and its row): a rerun that skips it must not report it as 0 objects. The
    same totals a run reports (:func:`~.objects.totals`); class maps count
    none. None when the output cannot be read.
    """
    if (record.get("settings") or {}).get("output", "instances") != "instances":
        return 0, 0.0
    try:
        if is_zarr(Path(path)):
            import zarr

            attrs = dict(zarr.open(str(path), mode="r").attrs)
            return int(attrs["objects"]), float(attrs["mean_area"])
        import tifffile

        labels = np.asarray(tifffile.imread(path))
    except Exception:  # noqa: BLE001 - unreadable or without totals: unknown, said as such by the caller
        return None
    planes = labels.reshape((-1, *labels.shape[-2:]))
    objects = sum(int(np.count_nonzero(np.unique(plane))) for plane in planes)
    return objects, float(np.count_nonzero(planes)) / objects if objects else 0.0


@dataclass(frozen=True)
class RunSettings:
    """What decides a run's labels, as a provenance record names it (the fields of ``files.settings_key``)."""

    model: str
    sha256: str | None
    diameter: float | None
    output: str
    flip_average: bool
    objects: ObjectFilter = field(default_factory=ObjectFilter)
    link_frames: bool = False
    channel: int | None = None
    cells: str = "none"  # how cells are grown beside the labels (describe_cells_request)

    @classmethod
    def of(cls, options: RunOptions) -> RunSettings:
        """The settings of a run with ``options`` (its model file is read once, here)."""
        path = resolve_model_path(options.model or DEFAULT_MODEL)
        try:
            name = ModelInfo.of(path).name
        except ModelFileError:
            name = path.stem
        return cls(name, file_sha256(path), options.diameter, options.output, bool(options.flip_average),
                   ObjectFilter.of(options), bool(options.link_frames), options.channel,
                   describe_cells_request(vars(options)))

    def changes_since(self, record: dict[str, Any]) -> list[str]:
        """``"model: nuclei -> nuclei-robust"``... for each setting the recorded run had otherwise; [] if none."""
        model = record.get("model") or {}
        settings = record.get("settings") or {}
        changes = []
        if model.get("sha256") is None or model.get("sha256") != self.sha256:
            old = str(model.get("name") or "unknown")
            changes.append(f"model: {old} -> {self.model}" if old != self.model else f"model: {old} (another file)")
        old_diameter = settings.get("diameter")
        if (None if old_diameter is None else float(old_diameter)) != self.diameter:
            changes.append(f"diameter: {_diameter(old_diameter)} -> {_diameter(self.diameter)}")
        if settings.get("output", "instances") != self.output:
            changes.append(f"output: {settings.get('output')} -> {self.output}")
        if bool(settings.get("flip_average")) != self.flip_average:
            changes.append(f"flip averaging: {_on(settings.get('flip_average'))} -> {_on(self.flip_average)}")
        recorded = ObjectFilter(int(settings.get("min_area") or 0), int(settings.get("max_area") or 0),
                                bool(settings.get("exclude_border")))
        if recorded != self.objects:
            changes.append(f"object filters: {recorded.describe() or 'none'} -> {self.objects.describe() or 'none'}")
        if bool(settings.get("link_frames")) != self.link_frames:
            changes.append(f"frame links: {_on(settings.get('link_frames'))} -> {_on(self.link_frames)}")
        if settings.get("channel") != self.channel:
            changes.append(f"channel: {_channel(settings.get('channel'))} -> {_channel(self.channel)}")
        if describe_cells_request(settings) != self.cells:
            changes.append(f"cells: {describe_cells_request(settings)} -> {self.cells}")
        return changes


def _diameter(value: Any) -> str:
    return "auto" if value is None else f"{float(value):g} px"


def _channel(value: Any) -> str:
    return "all" if value is None else str(value)


def _on(value: Any) -> str:
    return "on" if value else "off"

