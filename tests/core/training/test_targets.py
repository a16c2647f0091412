"""Training targets: scribble values, cut objects, and the contact zone between touching objects."""

from __future__ import annotations

import numpy as np

from napari_unet_seg.core.training.targets import IGNORE, contact_zone, instance_targets, semantic_targets


def test_scribble_values_map_to_classes():
    target = semantic_targets(np.array([[0, 1, 2, 3]]), scribbles=True)
    assert target.tolist() == [[IGNORE, 0, 1, 2]]


def test_cut_objects_teach_foreground_but_not_their_centre():
    labels = np.zeros((20, 20), np.uint16)
    labels[5:15, 5:15] = 1
    valid = np.zeros_like(labels, bool)
    valid[:, :10] = True
    fg, centre, weight, centre_weight = instance_targets(labels, valid)
    assert fg[5:15, 5:10].all() and not fg[:, 10:].any()
    assert centre_weight[5:15, 5:10].sum() == 0 and weight[5:15, 5:10].all()


def test_contact_zone_marks_only_where_two_objects_touch():
    labels = np.zeros((12, 16), np.uint16)
    labels[2:8, 2:7] = 1
    labels[2:8, 7:12] = 2  # touches 1 along x = 6|7
    labels[9:11, 13:15] = 3  # alone
    zone = contact_zone(labels, radius=0)
    assert zone[2:8, 6:8].all()
    assert zone.sum() == 12
    assert contact_zone(labels, radius=1).sum() > 12


def test_contact_weight_raises_the_centre_weight_between_touching_objects():
    labels = np.zeros((12, 16), np.uint16)
    labels[2:8, 2:7] = 1
    labels[2:8, 7:12] = 2
    plain = instance_targets(labels)
    weighted = instance_targets(labels, contact_weight=4.0)
    np.testing.assert_array_equal(plain[:3], weighted[:3])
    assert weighted[3, 4, 6] == 5.0 and weighted[3, 4, 3] == 1.0


def test_centre_map_does_not_depend_on_how_objects_are_numbered():
    """1 in each object's middle, 0 at its edge; the same for compact, huge, negative-background or bool ids."""
    from helpers import synthetic_nuclei
    from napari_unet_seg.core.training.targets import centre_map

    _, labels = synthetic_nuclei((96, 96), n=12, radius=(4, 9), touching=True, seed=4)
    compact = centre_map(labels)
    for i in np.unique(labels)[1:]:
        inside = compact[labels == i]
        assert inside.max() == 1.0 and inside.min() < 0.5
    assert (compact[labels == 0] == 0).all()
    huge = np.where(labels > 0, labels.astype(np.int64) * 1_000_003 + 7, 0)
    np.testing.assert_array_equal(centre_map(huge), compact)
    np.testing.assert_array_equal(centre_map(np.where(labels > 0, labels.astype(np.int32), -5)), compact)
    one = labels == labels.max()
    np.testing.assert_array_equal(centre_map(one), centre_map(one.astype(np.uint8)))
    np.testing.assert_array_equal(centre_map(labels.astype(np.float32)), compact)
