"""The live training preview shows what Segment will give: same normalisation, same scale."""

from __future__ import annotations

import numpy as np

from helpers import bright_and_dim_nuclei, synthetic_nuclei, threshold_model
from napari_unet_seg.core.inference.object_size import rescale_factor
from napari_unet_seg.core.inference.pipeline import segment
from napari_unet_seg.core.inference.preview import RegionPredictor


def test_the_preview_of_the_whole_image_is_segments_result_at_any_scale():
    image, _ = synthetic_nuclei((120, 160), n=6, radius=(17, 21), seed=5)
    model = threshold_model()
    model.metadata["object_diameter"] = 20.0
    for diameter in (40.0, 20.0):
        predictor = RegionPredictor(image, model, scale=rescale_factor(model, diameter))
        np.testing.assert_array_equal(predictor(model, (0, 120, 0, 160)), segment(image, model, diameter=diameter))


def test_the_preview_leaves_out_dim_objects_as_segment_does():
    image, _, bright = bright_and_dim_nuclei((160, 200), n=40)
    model = threshold_model()
    model.metadata["postprocess"] = {**model.postprocess, "min_brightness": 0.6}
    expected = segment(image, model)
    assert expected.max() == len(np.unique(bright)) - 1
    np.testing.assert_array_equal(RegionPredictor(image, model)(model, (0, 160, 0, 200)), expected)
