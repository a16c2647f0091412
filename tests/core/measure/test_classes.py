"""A class per object: the majority of its classified pixels, the same whole or block by block, lazily too."""

import dask.array as da
import numpy as np
import pytest

from napari_unet_seg.core.measure.classes import majority_classes
from napari_unet_seg.core.measure.measurements import measure_objects


def random_objects_and_classes(seed):
    """Touching objects (some wider than a block) over a class map of random patches and unclassified gaps."""
    rng = np.random.default_rng(seed)
    labels = np.zeros((60, 70), np.int32)
    for k in range(1, 25):
        y, x = rng.integers(0, 55), rng.integers(0, 60)
        labels[y:y + rng.integers(2, 20), x:x + rng.integers(2, 30)] = k * 7
    classes = np.repeat(np.repeat(rng.integers(0, 4, (12, 14)), 5, axis=0), 5, axis=1).astype(np.uint8)
    return labels, classes


def brute_force_classes(labels, classes):
    """Label -> (class, share), object by object, the obvious way."""
    out = {}
    for k in np.unique(labels[labels > 0]):
        votes = classes[labels == k]
        counts = np.bincount(votes, minlength=int(classes.max()) + 1)
        counts[0] = 0
        best = int(np.argmax(counts)) if counts.any() else 0
        out[int(k)] = (best, float(counts[best] / votes.size) if best else 1.0)
    return out


def test_each_object_takes_the_class_most_of_its_classified_pixels_have():
    labels = np.zeros((40, 40), np.uint16)
    labels[2:10, 2:10] = 1      # 64 px: 16 of class 2, the rest unclassified
    labels[20:30, 5:35] = 2     # 300 px: 150 of class 1, 150 of class 3 (a tie)
    labels[32:38, 32:38] = 3    # no classified pixel
    labels[12:16, 20:30] = 4    # 40 px: 32 of class 3, 8 of class 1
    classes = np.zeros((40, 40), np.uint8)
    classes[2:6, 2:6] = 2
    classes[20:30, 5:20] = 1
    classes[20:30, 20:35] = 3
    classes[12:16, 20:30] = 3
    classes[12:16, 20:22] = 1
    table = measure_objects(labels, classes=classes, class_names=["background", "tumour", "stroma", "immune"])
    assert table["label"].tolist() == [1, 2, 3, 4]
    assert table["class"].tolist() == [2, 1, 0, 3]  # unclassified pixels do not vote; a tie goes to the lower class
    assert table["class_name"].tolist() == ["stroma", "tumour", "unclassified", "immune"]
    assert table["class_fraction"].tolist() == pytest.approx([16 / 64, 0.5, 1.0, 32 / 40])
    assert list(table)[:4] == ["label", "class", "class_name", "class_fraction"]  # in view in the table


@pytest.mark.parametrize("block_size", [2048, 16, 7])
def test_blocks_give_the_whole_image_classes_in_memory_and_lazily(block_size):
    labels, classes = random_objects_and_classes(seed=1)
    expected = brute_force_classes(labels, classes)
    for cls in (classes, da.from_array(classes, chunks=13)):
        table = measure_objects(da.from_array(labels, chunks=11), classes=cls, block_size=block_size)
        got = {int(k): (int(c), round(float(f), 9)) for k, c, f in
               zip(table["label"], table["class"], table["class_fraction"])}
        assert got == {k: (c, round(f, 9)) for k, (c, f) in expected.items()}


def test_stacks_are_classified_per_slice_and_unnamed_classes_get_a_name():
    labels = np.zeros((2, 10, 10), np.uint8)
    labels[:, 2:6, 2:6] = 1
    classes = np.zeros((2, 10, 10), np.uint16)
    classes[0, 2:6, 2:6] = 5
    classes[1, 2:6, 2:6] = 1
    table = measure_objects(labels, classes=classes, class_names=["background", "a"])
    assert table["slice"].tolist() == [0, 1] and table["class"].tolist() == [5, 1]
    assert table["class_name"].tolist() == ["class 5", "a"]


def test_an_empty_table_still_has_the_class_columns():
    table = measure_objects(np.zeros((8, 8), np.uint8), classes=np.ones((8, 8), np.uint8))
    assert {"class", "class_name", "class_fraction"} <= set(table) and len(table["class_name"]) == 0


def test_huge_class_values_and_a_boolean_map():
    labels = np.zeros((6, 6), np.uint8)
    labels[:3] = 1
    labels[3:] = 2
    classes = np.zeros((6, 6), np.uint32)
    classes[:2] = 4_000_000_000
    found, share = majority_classes(labels.astype(np.int32), 2, classes)
    assert found.tolist() == [4_000_000_000, 0] and share.tolist() == pytest.approx([2 / 3, 1.0])
    table = measure_objects(labels, classes=labels == 2)
    assert table["class"].tolist() == [0, 1]


@pytest.mark.parametrize("classes, message", [
    (np.zeros((5, 6), np.uint8), "must match"),
    (np.zeros((5, 5), np.float32), "integer classes"),
    (np.full((5, 5), -2, np.int16), "non-negative"),
])
def test_bad_class_maps_raise_one_line(classes, message):
    labels = np.ones((5, 5), np.uint8)
    with pytest.raises(ValueError, match=message) as info:
        measure_objects(labels, classes=classes)
    assert "\n" not in str(info.value)


def test_a_class_per_object_looks_like_objects_a_few_classes_do_not():
    from napari_unet_seg.core.measure.classes import looks_like_objects

    assert looks_like_objects(np.arange(1, 9))  # eight objects, eight classes
    assert looks_like_objects(np.arange(1, 60) % 40)  # more classes than any class model has
    assert not looks_like_objects(np.array([1, 2, 1, 2, 2, 1, 1, 0]))
    assert not looks_like_objects(np.array([1, 2, 3]))  # too few objects to tell
