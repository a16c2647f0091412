"""How an export carries the provenance record it is given: ``{"napari_unet_seg": {"provenance": record}}``.

The same shape as our zarr outputs' attributes, so one reader serves both.
The record arrives as a plain dict (the caller reads it, e.g. with
``core.inference.provenance.read_provenance``: exports sit below inference).
GeoJSON keeps it as a foreign member of the FeatureCollection, OME-Zarr in
the labels group's attributes, an ImageJ ROI zip in the archive comment.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

NAMESPACE = "napari_unet_seg"
PROVENANCE = "provenance"
ZIP_COMMENT_LIMIT = 65535  # bytes: the zip format's 16-bit comment length
LINEAGE_LEFT_OUT = "left out: too long for a zip comment (the model file, by its sha256, holds it)"


def provenance_member(record: Mapping[str, Any]) -> dict[str, Any]:
    """``{"napari_unet_seg": {"provenance": ...}}`` holding a plain-JSON copy of ``record``."""
    return {NAMESPACE: {PROVENANCE: json.loads(json.dumps(dict(record), default=str))}}


def zip_comment(record: Mapping[str, Any]) -> bytes:
    """The provenance member as a zip archive comment: ASCII JSON, within the format's 64 KiB.

    A model fine-tuned on many images has a long lineage; when the record
    would not fit, the lineage is left out (the model's SHA-256 names the
    file that holds it) and the rest is kept.
    """
    text = _compact(provenance_member(record))
    if len(text) > ZIP_COMMENT_LIMIT and isinstance(record.get("model"), Mapping):
        record = {**record, "model": {**record["model"], "lineage": LINEAGE_LEFT_OUT}}
        text = _compact(provenance_member(record))
    if len(text) > ZIP_COMMENT_LIMIT:
        raise ValueError(f"the provenance record ({len(text)} bytes) does not fit in a zip comment")
    return text.encode("ascii")


def read_zip_comment(comment: bytes) -> dict[str, Any] | None:
    """The record :func:`zip_comment` wrote, or None for any other comment."""
    try:
        member = json.loads(comment.decode("ascii"))
    except ValueError:  # UnicodeDecodeError is a ValueError too
        return None
    return record_in(member)


def record_in(holder: Any) -> dict[str, Any] | None:
    """The record in a mapping that holds :func:`provenance_member` (GeoJSON, zarr attributes), else None."""
    ours = holder.get(NAMESPACE) if isinstance(holder, Mapping) else None
    record = ours.get(PROVENANCE) if isinstance(ours, Mapping) else None
    return dict(record) if isinstance(record, Mapping) else None


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=True)
