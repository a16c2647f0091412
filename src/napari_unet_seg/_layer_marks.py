"""What a Labels layer's metadata says about it: made by the plugin, and untouched since?

Qt- and napari-free, so the docks, the napari writers and the Measurements
table share one rule. Segment marks its results (``SEGMENT_KEY``) and the
Cells dock its cells (``CELLS_KEY``) with a hash of what they wrote; painting
marks them edited; labels opened from a file of ours keep a hash of what was
read (``OPENED_KEY``). A layer that carries a provenance record but is no longer
exactly what the plugin wrote has been changed by the user: its exports and
tables then say so (``core.inference.provenance.EDITED``), since the record's
command would no longer make these labels.
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Mapping
from typing import Any

import numpy as np

from .core.inference.provenance import marked_edited

SEGMENT_KEY = "napari_unet_seg"
CELLS_KEY = "napari_unet_seg_cells"  # not Segment's key: a cells layer is no Segment result
OPENED_KEY = "napari_unet_seg_opened"  # labels read from a file of ours (the OME-Zarr reader): a hash of them
FEATURES_KEY = "napari_unet_seg_features"  # the labels a features table was measured on (a hash): stale once changed
FINGERPRINT_LIMIT = 256 * 2**20  # bytes; bigger (or lazy) results rely on paint events alone


def fingerprint(data: Any) -> str | None:
    """A hash of in-memory labels, to notice edits made without paint events; None when too costly."""
    if not isinstance(data, np.ndarray) or data.nbytes > FINGERPRINT_LIMIT:
        return None
    return hashlib.blake2b(np.ascontiguousarray(data).view(np.uint8), digest_size=16).hexdigest()


EDIT_TILE = 64  # px: where a result was edited is known to this grain (a hash per tile of each plane)


def tile_fingerprints(plane: np.ndarray, tile: int = EDIT_TILE) -> list[str]:
    """A CRC-32 of each ``tile`` x ``tile`` tile of a 2D plane's bytes, row by row.

    Made on the main thread when a result is shown: 0.04 s for 4096², where a
    cryptographic hash of each tile took 0.3 s (the napari window froze).
    """
    height, width = plane.shape
    sums = []
    for y in range(0, height, tile):
        band = np.ascontiguousarray(plane[y:y + tile])
        sums += [format(zlib.crc32(np.ascontiguousarray(band[:, x:x + tile])), "08x") for x in range(0, width, tile)]
    return sums


def edited_tiles(plane: np.ndarray, stored: list[str], dtype: Any = None, tile: int = EDIT_TILE) -> np.ndarray | None:
    """Where ``plane`` differs from what was hashed in ``dtype`` (the tiles changed since, whole); None if it
    cannot be told."""
    if dtype is not None and plane.dtype != np.dtype(dtype):
        plane = plane.astype(dtype)  # the same ids, in the type they were hashed in
    current = tile_fingerprints(plane, tile)
    if len(current) != len(stored):
        return None
    height, width = plane.shape
    columns = -(-width // tile)
    edited = np.zeros(plane.shape, bool)
    for i, (now, then) in enumerate(zip(current, stored)):
        if now != then:
            y, x = divmod(i, columns)
            edited[y * tile:(y + 1) * tile, x * tile:(x + 1) * tile] = True
    return edited


def untouched(metadata: Mapping[str, Any], data: Any, key: str) -> bool:
    """True while labels hold exactly what the plugin last wrote under ``key`` (Segment's or the Cells dock's)."""
    info = metadata.get(key)
    if not isinstance(info, dict) or info.get("edited") or info.get("painted"):
        return False
    stored = info.get("fingerprint")
    return stored is None or stored == fingerprint(data)


def layer_provenance(metadata: Mapping[str, Any] | None, data: Any) -> dict[str, Any] | None:
    """The layer's provenance record, marked edited once the labels are no longer what the plugin wrote."""
    record = (metadata or {}).get("provenance")
    if not isinstance(record, dict):
        return None
    if any(untouched(metadata, data, key) for key in (SEGMENT_KEY, CELLS_KEY, OPENED_KEY)):
        return record
    return marked_edited(record)


def features_stamp(data: Any) -> dict[str, Any]:
    """The metadata entry that ties a features table to these labels (see :func:`features_describe`)."""
    return {FEATURES_KEY: {"fingerprint": fingerprint(data)}}


def features_describe(metadata: Mapping[str, Any] | None, data: Any) -> bool:
    """Whether a layer's features still describe its labels: False once labels stamped with
    :func:`features_stamp` (read with their measurements, or measured) have changed; True when unstamped or
    too large to hash (paint events then say it)."""
    stamp = (metadata or {}).get(FEATURES_KEY)
    stored = stamp.get("fingerprint") if isinstance(stamp, dict) else None
    return stored is None or stored == fingerprint(data)
