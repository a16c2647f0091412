import numpy as np

from napari_unet_seg._sample_data import make_mosaic, mosaic_tiles, nuclei_sample


def test_nuclei_sample_is_image_plus_matching_labels():
    (image, image_meta, image_type), (labels, labels_meta, labels_type) = nuclei_sample()
    assert image_type == "image" and labels_type == "labels"
    assert image.shape == labels.shape and labels.max() > 100
    assert image_meta["name"] == "nuclei" and "ground truth" in labels_meta["name"]
    assert labels_meta["visible"] is False  # opens hidden, so it does not mix with the Segment result on top
    # labels sit on bright pixels: they overlay the image exactly
    assert image[labels > 0].mean() > 2 * image[labels == 0].mean()


def test_mosaic_is_large_and_labels_overlay():
    image, labels = make_mosaic(1024)
    assert image.shape == labels.shape == (1024, 1024)
    assert image[labels > 0].mean() > 2 * image[labels == 0].mean()
    ids = np.unique(labels)
    assert len(ids) > 200  # ids stay unique across pieces


def test_mosaic_tiles_are_where_the_mosaic_holds_them():
    image, labels = make_mosaic(1024)
    covered = np.zeros(image.shape, bool)
    for tile in mosaic_tiles(1024):
        (h, w), y, x = tile.image.shape, tile.top, tile.left
        assert np.array_equal(image[y:y + h, x:x + w], tile.image)
        assert np.array_equal(labels[y:y + h, x:x + w] > 0, tile.labels > 0)
        assert not covered[y:y + h, x:x + w].any()  # tiles never overlap
        covered[y:y + h, x:x + w] = True
    assert not image[~covered].any()  # what no tile covers is the black gaps between rows
    assert covered.mean() > 0.8
