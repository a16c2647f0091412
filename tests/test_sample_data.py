import numpy as np

from napari_unet_seg._sample_data import make_mosaic, nuclei_sample


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
