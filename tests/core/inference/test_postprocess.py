import numpy as np
import pytest
from scipy import ndimage as ndi

from helpers import blob_logits, oracle_logits, synthetic_nuclei
from napari_unet_seg.core.training.metrics import matching_accuracy, dice
from napari_unet_seg.core.inference.postprocess import (
    drop_dim_objects,
    instance_labels,
    logits_to_labels,
    object_peaks,
    relabel_by_size,
    seed_points,
    seed_points_tiled,
    semantic_labels,
)


def test_touching_objects_are_separated():
    _, labels = synthetic_nuclei((128, 128), n=20, radius=(6, 10), touching=True, seed=2)
    out = instance_labels(oracle_logits(labels))
    assert matching_accuracy(labels, out) > 0.9
    assert out.max() == len(np.unique(labels)) - 1


def test_small_objects_dropped_and_dtype():
    labels = np.zeros((20, 20), np.int64)
    labels[2:4, 2:4] = 5
    labels[10:18, 10:18] = 9
    out = relabel_by_size(labels, min_size=8)
    assert out.dtype == np.uint16 and set(np.unique(out)) == {0, 1}
    many = np.arange(300 * 300).reshape(300, 300) % 70000
    assert relabel_by_size(many, 1).dtype == np.uint32


def test_minimum_size_is_meant_at_the_networks_scale():
    labels = np.zeros((40, 40), np.int64)
    labels[5:9, 5:9] = 1  # 16 px: a small nucleus in an image of small nuclei
    labels[20:32, 20:32] = 2  # 144 px
    logits = oracle_logits(labels)
    settings = {"min_size": 24}
    assert logits_to_labels(logits, "instances", settings).max() == 1  # as seen: a speck
    # the image was magnified 2x for the network: 16 px here were 64 px there, a nucleus
    assert logits_to_labels(logits, "instances", settings, scale=2.0).max() == 2
    # shrunk 0.25x for the network (huge nuclei): 144 px here were 9 px there, a speck
    assert logits_to_labels(logits, "instances", settings, scale=0.25).max() == 0


def test_objects_without_a_middle_can_be_dropped():
    labels = np.zeros((40, 40), np.int64)
    labels[5:17, 5:17] = 1  # a nucleus: its centre map rises to 1
    labels[25:35, 25:35] = 2
    logits = oracle_logits(labels)
    logits[1, 25:35, 25:35] = -3.0  # foreground whose centre map stays at 0.05: debris
    assert instance_labels(logits).max() == 2  # by default every foreground piece is an object
    kept = instance_labels(logits, min_peak=0.3)
    assert kept.max() == 1 and kept[10, 10] == 1 and kept[30, 30] == 0
    assert logits_to_labels(logits, "instances", {"min_peak": 0.3}).max() == 1  # a stored setting


def test_dim_objects_can_be_dropped():
    labels = np.zeros((40, 40), np.int64)
    labels[5:17, 5:17] = 1
    labels[25:35, 25:35] = 2
    logits = oracle_logits(labels)
    brightness = np.where(labels == 1, 0.8, np.where(labels == 2, 0.2, 0.0)).astype(np.float32)
    assert instance_labels(logits, brightness=brightness).max() == 2  # by default every object is kept
    kept = instance_labels(logits, min_brightness=0.3, brightness=brightness)
    assert kept.max() == 1 and kept[10, 10] == 1 and kept[30, 30] == 0
    assert logits_to_labels(logits, "instances", {"min_brightness": 0.3}, brightness=brightness).max() == 1
    assert logits_to_labels(logits, "instances", {"min_brightness": 0.1}, brightness=brightness).max() == 2
    with pytest.raises(ValueError, match="brightness"):
        instance_labels(logits, min_brightness=0.3)  # a setting that cannot be applied is not silently skipped


def test_an_object_is_as_bright_as_its_mean_not_its_brightest_pixel():
    labels = np.zeros((10, 10), np.int64)
    labels[:, :5] = 3
    brightness = np.zeros((10, 10), np.float32)
    brightness[0, :5] = 1.0  # one bright row in a dim object: mean 0.1
    assert drop_dim_objects(labels, brightness, 0.2).max() == 0
    assert drop_dim_objects(labels, brightness, 0.1).max() == 3  # ids kept, for relabelling later


def test_object_peaks_are_each_objects_highest_value():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 30, (50, 60))
    labels[labels == 7] = 0  # an id with no pixels
    values = rng.random((50, 60), dtype=np.float32)
    peaks = object_peaks(values, labels)
    for i in (1, 12, 29):
        assert peaks[i] == values[labels == i].max()
    assert peaks[7] == -np.inf and peaks.dtype == np.float32 and len(peaks) == 30


def test_semantic_argmax_and_threshold():
    logits = np.zeros((3, 4, 4), np.float32)
    logits[2, 0, 0] = 5
    logits[1, 1, 1] = 5
    out = semantic_labels(logits)
    assert out[0, 0] == 2 and out[1, 1] == 1 and out[3, 3] == 0
    single = np.full((1, 2, 2), -3.0, np.float32)
    single[0, 0, 0] = 3
    assert semantic_labels(single).tolist() == [[1, 0], [0, 0]]


def test_seeds_found_elsewhere_replace_the_seed_search():
    _, labels = synthetic_nuclei((128, 128), n=20, radius=(6, 10), touching=True, seed=2)
    logits = oracle_logits(labels)
    points = seed_points(logits)
    assert len(points) == len(np.unique(labels)) - 1  # one seed per nucleus
    assert matching_accuracy(instance_labels(logits), instance_labels(logits, seeds_at=points)) == 1.0
    background = np.argwhere(labels == 0)[0]
    merged = instance_labels(logits, seeds_at=np.vstack([points[:1], points[:1], background]))
    # both copies of the first seed make one object and the seed on background none; the other nuclei
    # still come out (as unseeded foreground), just no longer split where they touch
    assert 0 < merged.max() < labels.max() and merged[tuple(np.rint(points[0]).astype(int))] > 0
    assert dice(labels, merged) > 0.99


def test_seed_search_in_windows_finds_the_same_seeds():
    rng = np.random.default_rng(0)
    centres = [tuple(c) for c in rng.uniform(5, 295, (60, 2))]
    logits = blob_logits((300, 300), centres, 7.0)
    settings = {"foreground_threshold": 0.7, "seed_prominence": 0.2, "smoothing": 1.0}
    whole = seed_points(logits, **settings)
    windows = seed_points_tiled(logits, settings, tile=64, margin=32)  # 25 windows
    assert len(whole) > 40
    assert sorted(map(tuple, np.round(windows, 6))) == sorted(map(tuple, np.round(whole, 6)))


def test_seeds_grown_piece_by_piece_give_the_watershed_of_the_whole_image():
    """Pieces of foreground with one seed are taken whole and the others flooded in their own boxes: the same
    labels as one watershed over the image."""
    from skimage.segmentation import watershed

    from napari_unet_seg.core.inference.postprocess import grow_seeds

    centre, seeds, n, foreground = _pieces_and_seeds(np.random.default_rng(3))
    pieces, _ = ndi.label(foreground)
    per_piece = np.bincount(pieces[seeds > 0], minlength=pieces.max() + 1)
    assert (per_piece[1:] == 0).any() and (per_piece[1:] == 1).any() and (per_piece[1:] >= 2).any()  # all kinds
    np.testing.assert_array_equal(grow_seeds(centre, seeds, n, foreground), watershed(-centre, seeds, mask=foreground))
    assert not grow_seeds(centre, np.zeros_like(seeds), 0, foreground).any()


def test_a_pieces_objects_do_not_depend_on_the_rest_of_the_image_even_on_flat_plateaus():
    """A watershed breaks ties between equal values by its queue, which holds the whole image: two images that
    share a piece of foreground could split it differently (tiles, blocks). Grown piece by piece, they do not."""
    from napari_unet_seg.core.inference.postprocess import grow_seeds

    first = _pieces_and_seeds(np.random.default_rng(3), levels=40)
    second = _pieces_and_seeds(np.random.default_rng(4), levels=40)
    first[3][:, -1] = False  # the two images' pieces apart once side by side
    alone = grow_seeds(*first)
    centre, foreground = (np.concatenate([first[k], second[k]], axis=1) for k in (0, 3))
    seeds = np.concatenate([first[1], np.where(second[1] > 0, second[1] + first[2], 0)], axis=1)
    side_by_side = grow_seeds(centre, seeds, first[2] + second[2], foreground)
    np.testing.assert_array_equal(side_by_side[:, :200], alone)


def _pieces_and_seeds(rng, levels=None):
    centre = ndi.gaussian_filter(rng.random((160, 200)), 3).astype(np.float32)
    if levels:
        centre = np.round(centre * levels) / levels  # wide flat plateaus between seeds
    foreground = ndi.gaussian_filter(rng.random((160, 200)), 4) > 0.5
    seeds, n = ndi.label(foreground & (rng.random((160, 200)) > 0.995))
    return centre, seeds, n, foreground
