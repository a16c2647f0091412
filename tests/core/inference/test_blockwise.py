"""Block-by-block segmentation into zarr: same objects as segment(), each kept once, never whole in memory."""

import dask.array as da
import numpy as np
import pytest
import torch
import zarr
from helpers import bright_and_dim_nuclei, synthetic_nuclei, threshold_model

from napari_unet_seg import Cancelled, segment
from napari_unet_seg.core.common.labels_zarr import open_labels_zarr
from napari_unet_seg.core.inference import preprocess
from napari_unet_seg.core.inference.blockwise import halo_for
from napari_unet_seg.core.inference.pipeline import segment_to_zarr, slices_on_their_own_note
from napari_unet_seg.core.training.metrics import matching_accuracy


@pytest.fixture(scope="module")
def disks():
    return synthetic_nuclei((300, 280), n=150, radius=(4, 8), seed=3)


def test_threshold_model_is_an_oracle(disks):
    image, truth = disks
    labels = segment(image, threshold_model(), device="cpu", precision="fp32")
    assert matching_accuracy(truth, labels) > 0.85  # disks that touch merge: it only thresholds


def test_blocks_match_whole_image(tmp_path, disks):
    image, _ = disks
    model = threshold_model()
    reference = segment(image, model, device="cpu", precision="fp32")
    out = segment_to_zarr(image, model, tmp_path / "x_labels.zarr", block_size=64, device="cpu", precision="fp32")
    labels = out[:]
    assert labels.shape == image.shape and labels.dtype == np.uint32
    n_ref, n = reference.max(), len(np.unique(labels)) - 1
    assert abs(n - n_ref) <= 0.02 * n_ref
    assert out.attrs["objects"] == n == labels.max()  # ids unique and consecutive over the plane
    assert out.attrs["largest_id"] == labels.max()  # the next free id, known without reading the store
    assert matching_accuracy(reference, labels) >= 0.95


def test_one_block_is_exactly_segment(tmp_path, tiny_model, disks):
    image, _ = disks
    for model in (tiny_model, threshold_model()):
        reference = segment(image, model, device="cpu", precision="fp32")
        out = segment_to_zarr(image, model, tmp_path / "one.zarr", block_size=4096, device="cpu", precision="fp32")
        np.testing.assert_array_equal(out[:], reference)


def test_lazy_inputs_read_by_window(tmp_path, monkeypatch, disks):
    """No read covers the whole image: only the normalisation sample and halo windows."""
    image, _ = disks
    reads = []

    class Recording:
        shape, ndim, dtype = image.shape, image.ndim, image.dtype

        def __getitem__(self, index):
            window = image[index]
            reads.append(window.size)
            return window

    original = preprocess.sample_pixels
    monkeypatch.setattr(preprocess, "sample_pixels", lambda a, max_pixels=0: original(a, 10_000))
    model = threshold_model()
    out = segment_to_zarr(Recording(), model, tmp_path / "l.zarr", block_size=64, halo=32, device="cpu")
    assert max(reads) <= (64 + 2 * 32 + 2) ** 2 < image.size / 4  # block + halo + 1 px that despiking reads
    assert matching_accuracy(segment(image, model, device="cpu"), out[:]) >= 0.95


def test_stacks_dask_and_zarr_sources(tmp_path, disks):
    image, _ = disks
    stack = np.stack([image, image[::-1]])
    store = zarr.open_array(str(tmp_path / "in.zarr"), mode="w", shape=stack.shape, chunks=(1, 64, 64), dtype=stack.dtype)
    store[:] = stack
    model = threshold_model()
    expected = segment(stack, model, device="cpu")
    for source in (store, da.from_array(stack, chunks=(1, 100, 100))):
        out = segment_to_zarr(source, model, tmp_path / "s.zarr", block_size=512, pixel_size=(0.5, 0.25), device="cpu")
        np.testing.assert_array_equal(out[:], expected)
        assert out.attrs["pixel_size"] == [0.5, 0.25]


def test_cancel_leaves_nothing_and_overwrite_is_atomic(tmp_path, disks):
    image, _ = disks
    model = threshold_model()
    path = tmp_path / "c.zarr"
    with pytest.raises(Cancelled):
        segment_to_zarr(image, model, path, block_size=64, device="cpu", cancel=lambda: True)
    assert list(tmp_path.iterdir()) == []
    segment_to_zarr(image, model, path, block_size=64, device="cpu")
    first = open_labels_zarr(path)[:]
    calls = iter(range(1000))
    with pytest.raises(Cancelled):  # cancelled half-way: the previous result stays whole
        segment_to_zarr(np.zeros_like(image), model, path, block_size=64, device="cpu", cancel=lambda: next(calls) > 3)
    np.testing.assert_array_equal(open_labels_zarr(path)[:], first)
    assert [p.name for p in tmp_path.iterdir()] == ["c.zarr"]


def test_halo_covers_network_and_objects():
    model = threshold_model()
    assert halo_for(model, None) >= model.net.receptive_radius + 64
    assert halo_for(model, 10) % model.net.size_multiple == 0


@pytest.mark.parametrize("diameter", [16.0, 9.0, 5.0])  # shrunk 0.75x; enlarged 1.33x and 2.4x (seeds found enlarged)
def test_resized_blocks_give_exactly_the_in_memory_objects(tmp_path, disks, diameter):
    """Each window is resized on the whole image's grid and mapped back the same way: the same objects, every
    pixel, objects crossing block borders included; also with every weight perturbed, so each output pixel
    depends on the network's whole receptive field."""
    image, _ = disks
    perturbed = threshold_model()
    torch.manual_seed(0)
    with torch.no_grad():
        for p in perturbed.net.parameters():
            p.add_(0.05 * torch.randn_like(p))
    for model in (threshold_model(), perturbed):
        model.metadata["object_diameter"] = 12.0
        reference = segment(image, model, diameter=diameter, device="cpu", precision="fp32")
        assert reference.max() > 5
        for block_size in (64, 100):
            out = segment_to_zarr(image, model, tmp_path / f"r{block_size}.zarr", diameter=diameter,
                                  block_size=block_size, device="cpu", precision="fp32")
            assert _same_objects(reference, out[:]), (model.name, block_size)


@pytest.mark.parametrize("block_size", [512, 64])  # one block (predict_plane) and many blocks
def test_non_finite_pixels_are_said_on_disk_too(tmp_path, disks, block_size):
    """The note about NaN/inf pixels reaches the result (and the store's attrs) as it does in memory."""
    from napari_unet_seg.core.inference.options import RunOptions
    from napari_unet_seg.core.inference.pipeline import segment_image
    from napari_unet_seg.core.inference.prediction import NONFINITE_NOTE

    image = disks[0].astype(np.float32)
    image[3:5, 7:9] = np.nan
    clean = disks[0].astype(np.float32)
    stack = np.stack([clean, image, clean, clean, clean])  # only the second plane has them (5: a stack, not channels)
    model = threshold_model()
    in_memory = segment_image(stack, RunOptions(device="cpu"), model=model)
    on_disk = segment_image(stack, RunOptions(device="cpu", store=str(tmp_path / "n.zarr"), block_size=block_size),
                            model=model)
    said = ["slice 1 of 5 has NaN or infinite pixels: NaN and -inf were read as the darkest value, +inf as the "
            "brightest", slices_on_their_own_note(5)]  # that slice, not "the image", is named
    assert on_disk.notes == in_memory.notes == said
    assert open_labels_zarr(tmp_path / "n.zarr").attrs["notes"] == said
    assert segment_image(np.stack([image] * 5), RunOptions(device="cpu"), model=model).notes == [
        NONFINITE_NOTE, slices_on_their_own_note(5)]
    clean = segment_image(stack[:1], RunOptions(device="cpu", store=str(tmp_path / "c.zarr"), block_size=block_size),
                          model=model)
    assert clean.notes == []


def _same_objects(a: np.ndarray, b: np.ndarray) -> bool:
    """The same objects pixel for pixel, whatever their ids."""
    if not ((a > 0) == (b > 0)).all():
        return False
    pairs = np.unique(np.stack([a[a > 0], b[b > 0]]), axis=1)
    return pairs.shape[1] == len(np.unique(a[a > 0])) == len(np.unique(b[b > 0]))


def test_at_the_models_own_scale_blocks_give_exactly_the_in_memory_objects(tmp_path, disks):
    """Objects crossing block borders included."""
    image, _ = disks
    model = threshold_model()
    reference = segment(image, model, device="cpu", precision="fp32")
    for block_size in (64, 100):
        out = segment_to_zarr(image, model, tmp_path / f"b{block_size}.zarr", block_size=block_size, device="cpu",
                              precision="fp32")
        assert _same_objects(reference, out[:])


@pytest.mark.slow
@pytest.mark.parametrize("diameter", [None, 30.0])  # its own measured size; shrunk to the model's (~0.6x)
def test_the_built_in_model_on_real_nuclei_gives_the_same_labels_in_blocks(tmp_path, diameter):
    """The shipped model on a mosaic of the sample images, resized or not: zarr blocks == in memory."""
    from napari_unet_seg._sample_data import make_mosaic
    from napari_unet_seg.core.model.registry import builtin_model_paths, load_model

    if "nuclei" not in builtin_model_paths():
        pytest.skip("the built-in model is not installed")
    model = load_model("nuclei")
    image, _ = make_mosaic(640)
    reference = segment(image, model, diameter=diameter, device="cpu", precision="fp32")
    assert reference.max() > 50
    out = segment_to_zarr(image, model, tmp_path / "m.zarr", diameter=diameter, block_size=256, device="cpu",
                          precision="fp32")
    assert _same_objects(reference, out[:])


@pytest.mark.parametrize("shape", [(46, 58), (50, 61)])  # enlarged 3.5x: 161 and 175 rows, one past the grid or not
def test_a_window_at_the_image_border_ends_where_the_whole_grid_ends(shape):
    """At the bottom/right border the window's network grid must end where the whole image's does, or its
    padding differs from the whole pass's (seen with enlargements above 3x)."""
    from napari_unet_seg.core.inference.options import RunOptions
    from napari_unet_seg.core.inference.prediction import predict_at_scale, predict_region, prepare

    model = threshold_model()
    torch.manual_seed(1)
    with torch.no_grad():
        for p in model.net.parameters():
            p.add_(0.05 * torch.randn_like(p))
    image = np.random.default_rng(0).random(shape).astype(np.float32)
    prepared = prepare(model, image, rgb=False)
    options = RunOptions(device="cpu", precision="fp32")
    whole = predict_at_scale(model.net, np.asarray(prepared), 3.5, options).image_logits
    h, w = shape
    part = predict_region(model.net, prepared, 3.5, options, rows=(8, h), cols=(8, w)).image_logits
    margin = model.net.receptive_radius // 3 + 2  # image px the window's own top/left edges can reach
    np.testing.assert_array_equal(part[:, margin:, margin:], whole[:, 8 + margin:, 8 + margin:])


def test_blocks_finished_several_at_a_time_give_the_same_labels(tmp_path, disks, monkeypatch):
    """Beside a GPU several blocks are post-processed at once; ids and overlaps must not change."""
    from napari_unet_seg.core.inference import blockwise

    image, _ = disks
    model = threshold_model()
    one = segment_to_zarr(image, model, tmp_path / "one.zarr", block_size=64, device="cpu", precision="fp32")[:]
    monkeypatch.setattr(blockwise, "finishing_workers", lambda device: 3)
    several = segment_to_zarr(image, model, tmp_path / "three.zarr", block_size=64, device="cpu", precision="fp32")
    np.testing.assert_array_equal(several[:], one)
    assert several.attrs["objects"] == one.max()


def test_a_block_that_fails_ends_the_run_without_leaving_the_others_waiting(tmp_path, disks, monkeypatch):
    from napari_unet_seg.core.inference import blockwise, prediction

    image, _ = disks
    monkeypatch.setattr(blockwise, "finishing_workers", lambda device: 3)
    calls = iter(range(1000))
    real = prediction.NetworkPrediction.labels

    def failing_third(self, model):
        if next(calls) == 2:
            raise RuntimeError("post-processing broke")
        return real(self, model)

    monkeypatch.setattr(prediction.NetworkPrediction, "labels", failing_third)
    raised = []

    def run():
        try:
            segment_to_zarr(image, threshold_model(), tmp_path / "f.zarr", block_size=64, device="cpu")
        except RuntimeError as exc:
            raised.append(str(exc))

    import threading

    thread = threading.Thread(target=run, daemon=True)  # a daemon: if the later blocks hang, the suite still ends
    thread.start()
    thread.join(timeout=120)
    assert not thread.is_alive(), "the blocks after the failed one were left waiting"
    assert raised == ["post-processing broke"]
    assert not (tmp_path / "f.zarr").exists()


def test_one_block_is_finished_at_a_time_beside_a_cpu_network():
    from napari_unet_seg.core.inference.blockwise import MAX_FINISHING, finishing_workers

    assert finishing_workers("cpu") == 1  # the network has the cores
    assert 1 <= finishing_workers("cuda:0") <= MAX_FINISHING


def test_a_cpu_networks_windows_hold_no_more_than_one_block(tmp_path, disks, monkeypatch):
    """A block's window carries halos; the network runs it in windows of at most a block's pixels (flat memory),
    giving the same objects as in memory."""
    from napari_unet_seg.core.inference import tiling
    from napari_unet_seg.core.inference.blockwise import network_window_cap

    image, _ = disks
    model = threshold_model()
    block_size = 128
    cap = network_window_cap(model, block_size, 1.0, "cpu")
    grid = model.net.size_multiple
    assert cap == block_size**2 and network_window_cap(model, 100, 0.5, "cpu") == (-(-50 // grid) * grid) ** 2
    windows = []
    original = tiling.plan_windows

    def recording(height, width, window, margin, grid):
        windows.append((height * width, tiling.sides(window)))
        return original(height, width, window, margin, grid)

    monkeypatch.setattr(tiling, "plan_windows", recording)
    out = segment_to_zarr(image, model, tmp_path / "w.zarr", block_size=block_size, halo=64, device="cpu",
                          precision="fp32")
    assert max(area for area, _ in windows) > cap  # block windows with their halos are larger than a block...
    assert all(h * w <= cap for _, (h, w) in windows)  # ...and run in windows that are not
    assert _same_objects(segment(image, model, device="cpu", precision="fp32"), out[:])


@pytest.mark.parametrize("diameter", [None, 16.0, 9.0])  # its own scale; shrunk 0.75x; enlarged 1.33x
def test_dim_objects_are_left_out_alike_in_memory_and_in_blocks(tmp_path, diameter):
    """A model that drops dim objects measures each object's brightness on the same pixels in every path."""
    image, everything, bright = bright_and_dim_nuclei()
    model = threshold_model()
    model.metadata["object_diameter"] = 12.0
    assert matching_accuracy(everything, segment(image, model, diameter=diameter)) > 0.85  # dim ones found
    model.metadata["postprocess"] = {**model.postprocess, "min_brightness": 0.6}
    reference = segment(image, model, diameter=diameter, device="cpu", precision="fp32")
    assert matching_accuracy(bright, reference) > 0.85  # ... and left out
    for block_size in (64, 100):
        out = segment_to_zarr(image, model, tmp_path / f"d{block_size}.zarr", diameter=diameter,
                              block_size=block_size, device="cpu", precision="fp32")
        assert _same_objects(reference, out[:]), block_size


@pytest.mark.parametrize("block_size", [512, 64])
@pytest.mark.parametrize("value", [0, 255])
def test_a_blank_image_is_said_to_be_blank_on_every_path(tmp_path, disks, block_size, value):
    """An all-zero or constant image gets a note that says so, not a hint that the model is wrong."""
    from napari_unet_seg.core.inference.options import RunOptions
    from napari_unet_seg.core.inference.pipeline import segment_image
    from napari_unet_seg.core.inference.prediction import BLANK_NOTE

    blank = np.full((5, *disks[0].shape), value, np.uint8)  # a stack (2-4 planes would be said to be channels)
    model = threshold_model()
    in_memory = segment_image(blank, RunOptions(device="cpu"), model=model)
    on_disk = segment_image(blank, RunOptions(device="cpu", store=str(tmp_path / "b.zarr"), block_size=block_size),
                            model=model)
    assert in_memory.notes == on_disk.notes == [BLANK_NOTE, slices_on_their_own_note(5)] and in_memory.objects == 0
    almost = blank.copy()
    almost[1, 40:60, 40:60] = 128  # one plane with something on it: the other is still blank
    assert segment_image(almost, RunOptions(device="cpu"), model=model).notes == [
        "slices 0, 2, 3, 4 of 5 are blank (all their pixels read as one value): nothing to segment there",
        slices_on_their_own_note(5)]
    assert segment_image(almost[1], RunOptions(device="cpu"), model=model).notes == []


def test_a_large_image_with_a_few_nuclei_between_the_sampled_pixels_is_not_called_blank():
    """The normalisation samples every n-th pixel of a large image; blank is checked on every pixel before it is said."""
    from napari_unet_seg.core.inference.preprocess import MAX_SAMPLE_PIXELS, fit_normalization

    side = int((4 * MAX_SAMPLE_PIXELS) ** 0.5)  # sampled with a stride of 2
    image = np.zeros((1, side, side), np.uint8)
    image[0, 1, 1] = 200  # one bright pixel the strided sample steps over
    assert not fit_normalization(image, {}).blank
    assert fit_normalization(np.zeros((1, side, side), np.uint8), {}).blank


def test_cancel_is_heard_while_a_blocks_post_processing_runs(disks, monkeypatch):
    """On a CPU one block's seeds and watershed take seconds; the run waited for them, deaf to Cancel (7-10 s on
    a 3000² image). Labels in memory are thrown away with the run, so it stops without waiting."""
    import threading
    import time

    from napari_unet_seg.core.inference.options import RunOptions
    from napari_unet_seg.core.inference.pipeline import segment_image
    from napari_unet_seg.core.inference.prediction import NetworkPrediction

    image, _ = disks
    real, started = NetworkPrediction.labels, threading.Event()

    def slow_labels(self, model):
        started.set()
        time.sleep(3.0)
        return real(self, model)

    monkeypatch.setattr(NetworkPrediction, "labels", slow_labels)
    cancel = threading.Event()
    threading.Thread(target=lambda: started.wait(30) and cancel.set(), daemon=True).start()
    start = time.monotonic()
    with pytest.raises(Cancelled):
        segment_image(image, RunOptions(block_size=64, device="cpu", precision="fp32"), model=threshold_model(),
                      cancel=cancel.is_set)
    assert time.monotonic() - start < 2.5  # not the 3 s of the block in the making
