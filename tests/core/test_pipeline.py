import numpy as np
import pytest

from napari_unet_seg import ModelFileError, segment


def test_2d_stack_rgb_shapes(tiny_model):
    assert segment(np.random.rand(40, 50), tiny_model).shape == (40, 50)
    assert segment(np.random.rand(3, 40, 50), tiny_model).shape == (3, 40, 50)
    assert segment(np.random.rand(2, 3, 40, 50), tiny_model).shape == (2, 3, 40, 50)
    rgb = (np.random.rand(40, 50, 3) * 255).astype(np.uint8)
    assert segment(rgb, tiny_model).shape == (40, 50)


def test_stack_slices_equal_single_plane_results(tiny_model):
    rng = np.random.default_rng(0)
    stack = (rng.random((3, 48, 40)) * 1000).astype(np.uint16)
    together = segment(stack, tiny_model)
    for z in range(3):
        np.testing.assert_array_equal(together[z], segment(stack[z], tiny_model))


def test_diameter_rescales_and_returns_input_size(tiny_model):
    tiny_model.metadata["object_diameter"] = 20.0
    out = segment(np.random.rand(50, 70), tiny_model, diameter=40)
    assert out.shape == (50, 70)
    with pytest.raises(ValueError, match="positive"):
        segment(np.random.rand(50, 70), tiny_model, diameter=-3)


def test_progress_spans_all_slices(tiny_model):
    calls = []
    segment(np.random.rand(2, 40, 40), tiny_model, progress=lambda d, t: calls.append((d, t)))
    assert calls[-1][0] == calls[-1][1] and calls[0][1] == calls[-1][1]


def test_default_model_missing_or_present():
    from napari_unet_seg.core.modelfile import builtin_model_paths

    if "nuclei" in builtin_model_paths():
        assert segment(np.zeros((20, 20), np.uint8)).shape == (20, 20)
    else:
        with pytest.raises(ModelFileError, match="nuclei"):
            segment(np.zeros((20, 20), np.uint8))
