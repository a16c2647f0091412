"""One plane through the network: the automatic object size, and seeds found at the network's size."""

import numpy as np
import pytest

from helpers import blob_logits
from napari_unet_seg.core.inference.postprocess import logits_to_labels
from napari_unet_seg.core.inference.prediction import NetworkPrediction, to_image_coordinates


def test_automatic_object_size_rescales_only_far_off_sizes(monkeypatch, tiny_model):
    from helpers import oracle_logits, synthetic_nuclei

    from napari_unet_seg.core.inference import prediction as pipeline
    from napari_unet_seg.core.inference.preprocess import PreparedImage
    from napari_unet_seg.core.training.data import resize_labels

    big, big_labels = synthetic_nuclei((400, 400), n=12, radius=(28, 34), seed=4)  # ~60 px objects
    shapes = []

    def oracle(net, image, **kwargs):  # a perfect network, at whatever size it is shown the image
        shapes.append(tuple(image.shape))
        return oracle_logits(resize_labels(big_labels, tuple(image.shape[-2:])))

    monkeypatch.setattr(pipeline, "predict_tiled", oracle)
    prepared = PreparedImage(big, in_channels=1, normalization_settings=tiny_model.normalization)
    tiny_model.metadata["object_diameter"] = 20.0
    measured = pipeline.estimate_diameter(tiny_model, prepared)
    assert measured is not None and 50 < measured < 70
    shapes.clear()
    pipeline.predict_network(tiny_model, big)
    assert shapes[0] == (1, 400, 400) and abs(shapes[-1][-1] - 400 * 20 / measured) <= 1  # measured, then rescaled
    tiny_model.metadata["object_diameter"] = 55.0  # within the band: the measuring pass is the result
    assert pipeline.estimate_diameter(tiny_model, prepared) is None
    shapes.clear()
    pipeline.predict_network(tiny_model, big)
    assert shapes == [(1, 400, 400), (1, 200, 200)]  # the measuring pass is the result; a half-size look confirms it
    assert tiny_model.auto_band == (0.75, 1.7)  # the default band
    tiny_model.metadata.update(object_diameter=20.0, auto_band=[0.5, 3.5])  # the band comes from the model file
    assert pipeline.estimate_diameter(tiny_model, prepared) is None
    assert pipeline.measure_diameter(tiny_model, prepared) == pytest.approx(measured)  # measured all the same
    tiny_model.metadata["postprocess"] = {"min_size": 5000}  # the model's own settings would drop every object...
    assert pipeline.measure_diameter(tiny_model, prepared) == pytest.approx(measured)  # ...measuring ignores them
    tiny_model.metadata["auto_band"] = [0.5, 2.5]
    assert pipeline.estimate_diameter(tiny_model, prepared) == pytest.approx(measured)
    tiny_model.metadata["object_diameter"] = None  # models without a known size are never rescaled
    assert pipeline.estimate_diameter(tiny_model, prepared) is None


def test_consistent_diameter_takes_the_finest_scale_that_agrees_with_the_next():
    from napari_unet_seg.core.inference.object_size import consistent_diameter

    def levels(*values):
        return lambda level: values[level] if level < len(values) else None

    assert consistent_diameter(levels(20.0, 21.0, 30.0), 20.0) == 20.0  # typical nuclei: their own size
    # big textured nuclei: split into ~35 px fragments at their own size, seen whole (~150 px) once shrunk 4x
    assert consistent_diameter(levels(35.0, 90.0, 150.0, 148.0), 20.0) == 150.0
    assert consistent_diameter(levels(8.0, 30.0), 20.0) == 8.0  # tiny nuclei: nothing agrees, their own size decides
    assert consistent_diameter(levels(None), 20.0) is None


def test_big_nuclei_split_into_fragments_at_their_own_size_are_measured_whole(monkeypatch, tiny_model):
    """The measuring pass must not believe a network that splits big nuclei: it looks again, shrunk."""
    from helpers import oracle_logits, synthetic_nuclei

    from napari_unet_seg.core.inference import prediction as pipeline
    from napari_unet_seg.core.inference.preprocess import PreparedImage
    from napari_unet_seg.core.training.data import resize_labels

    image, labels = synthetic_nuclei((512, 512), n=6, radius=(60, 70), seed=1)  # ~130 px nuclei
    quarters = labels * 4 + (np.arange(512)[:, None] % 64 >= 32) * 2 + (np.arange(512)[None, :] % 64 >= 32)
    fragments = np.where(labels > 0, quarters, 0)  # every nucleus cut into ~32 px pieces

    def network(net, window, **kwargs):  # splits objects it sees larger than ~2.5x the model's size
        shape = tuple(window.shape[-2:])
        seen = resize_labels(labels, shape)
        return oracle_logits(resize_labels(fragments, shape) if shape[0] > 256 else seen)

    monkeypatch.setattr(pipeline, "predict_tiled", network)
    tiny_model.metadata["object_diameter"] = 25.0
    prepared = PreparedImage(image, in_channels=1, normalization_settings=tiny_model.normalization)
    truth = 2 * np.sqrt(np.median(np.bincount(labels.ravel())[1:]) / np.pi)
    measured = pipeline.measure_diameter(tiny_model, prepared)
    assert measured == pytest.approx(truth, rel=0.15)


def _touching_pair_logits(shape=(60, 80), half_gap=7, reach=20.0):
    """Two touching nuclei as a network sees them: centre maps falling 1/reach per px, a shallow valley between."""
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]].astype(float)
    distance = np.minimum(np.hypot(yy - 30, xx - (40 - half_gap)), np.hypot(yy - 30, xx - (40 + half_gap)))
    centre = np.clip(1 - distance / reach, 1e-3, 1 - 1e-3)
    return np.stack([np.where(distance <= half_gap + 2, 8.0, -8.0), np.log(centre / (1 - centre))]).astype(np.float32)


def test_enlarged_images_keep_touching_small_nuclei_apart(tiny_model):
    """Seeds come from the network's size: shrinking the logits first would merge the pair."""
    tiny_model.metadata["postprocess"] = {"foreground_threshold": 0.7, "seed_prominence": 0.2, "smoothing": 1.0,
                                          "min_size": 16, "min_peak": 0.3}
    prediction = NetworkPrediction(_touching_pair_logits(), 2.5, (24, 32))  # nuclei ~7 px across in the image
    shrunk_first = logits_to_labels(prediction.image_logits, "instances", tiny_model.postprocess, 2.5)
    labels = prediction.labels(tiny_model)
    assert shrunk_first.max() == 1 and labels.max() == 2
    assert labels.shape == (24, 32)
    np.testing.assert_array_equal(labels > 0, shrunk_first > 0)  # outlines are still drawn at the image's size


def test_seeds_map_pixel_centre_to_pixel_centre():
    """An uneven, rounded size ratio (a 25x33 image seen as 63x83): pixel centres land on pixel centres."""
    image_pixels = np.array([[0, 0], [24, 32], [10, 7]], np.float64)
    factors = (63 / 25, 83 / 33)
    network_points = (image_pixels + 0.5) * np.array(factors) - 0.5
    np.testing.assert_allclose(to_image_coordinates(network_points, factors), image_pixels, atol=1e-9)


def test_seeds_found_at_the_networks_size_land_on_their_nuclei(tiny_model):
    centres = [(12.0, 12.0), (40.0, 60.0), (50.0, 15.0)]  # network pixels, each nucleus ~6 image px across
    labels = NetworkPrediction(blob_logits((63, 83), centres, 8.0), 2.5, (25, 33)).labels(tiny_model)
    assert labels.max() == 3
    for cy, cx in to_image_coordinates(np.array(centres), (63 / 25, 83 / 33)):
        assert labels[round(cy), round(cx)] > 0
