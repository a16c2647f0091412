"""One image corrected over several rounds: this round's edits, and the earlier rounds' corrections everywhere else.

Each round of the loop segments the image again with the newer model and the
user corrects part of that result. The project keeps one annotation per
image, so saving this round's labels as they are would throw away what an
earlier round corrected where the user changed nothing this time (there the
labels are the new model's own output). The merge keeps this round's labels
where the user edited and the earlier annotation elsewhere, object by object:
an object cut by the seam is left out of the annotation (not taught as two
halves).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class MergedRounds:
    labels: np.ndarray
    valid: np.ndarray | None  # None: every pixel annotated
    kept: int  # objects of the earlier annotation kept where nothing was edited this round


def _ids_in(labels: np.ndarray, where: np.ndarray) -> np.ndarray:
    ids = np.unique(labels[where])
    return ids[ids > 0]


def merge_rounds(earlier: np.ndarray, earlier_valid: np.ndarray | None, latest: np.ndarray,
                 latest_valid: np.ndarray | None, edited: np.ndarray) -> MergedRounds:
    """The annotation of an image: ``latest`` where ``edited`` (and over the objects it touches), ``earlier`` elsewhere.

    ``edited`` marks where the user changed this round's Segment result.
    The region taken from ``latest`` grows to whole objects of both rounds
    that touch the edits; an object still cut by that region's edge (one of
    either round that lies partly inside and partly outside) is marked not
    annotated, so neither half is learnt as an object of its own.
    """
    earlier, latest = np.asarray(earlier, np.int64), np.asarray(latest, np.int64)
    edited = np.asarray(edited, bool)
    if earlier.shape != latest.shape or edited.shape != latest.shape or not edited.any():
        return MergedRounds(latest, latest_valid, 0)
    region = edited | np.isin(latest, _ids_in(latest, edited)) | np.isin(earlier, _ids_in(earlier, edited))
    offset = int(earlier.max(initial=0))
    labels = np.where(region, np.where(latest > 0, latest + offset, 0), earlier)
    cut_earlier = np.intersect1d(_ids_in(earlier, region), _ids_in(earlier, ~region))
    cut_latest = np.intersect1d(_ids_in(latest, region), _ids_in(latest, ~region))
    cut = (~region & np.isin(earlier, cut_earlier)) | (region & np.isin(latest, cut_latest))
    valid = np.where(region, True if latest_valid is None else np.asarray(latest_valid, bool),
                     True if earlier_valid is None else np.asarray(earlier_valid, bool)) & ~cut
    kept = np.setdiff1d(_ids_in(earlier, ~region & valid), cut_earlier).size
    return MergedRounds(labels, None if valid.all() else valid, int(kept))
