
import dask.array as da
import numpy as np
import pytest
import torch
import zarr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from napari_unet_seg import Cancelled, UNet, predict_tiled
from napari_unet_seg.core.inference import tiling
from napari_unet_seg.core.common.notes import collecting_notes
from napari_unet_seg.core.inference.tiling import (
    auto_window, choose_window, largest_window, minimum_tile_size, on_grid, plan_cost, plan_windows, window_margin,
)

from helpers import randomize_batchnorm


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(1)
    net = UNet(1, 2, depth=2, base_channels=4)
    randomize_batchnorm(net)
    return net.eval()


def whole(net, image):
    return predict_tiled(net, image, tile_size=10**6, precision="fp32", device="cpu")


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    h=st.integers(1, 150),
    w=st.integers(1, 150),
    tile=st.integers(1, 120),
    seed=st.integers(0, 10),
)
def test_tiled_equals_single_window(net, h, w, tile, seed):
    image = np.random.default_rng(seed).random((h, w), dtype=np.float32)
    tiled = predict_tiled(net, image, tile_size=tile, precision="fp32", device="cpu", max_overhead=None)
    assert tiled.shape == (2, h, w) and tiled.dtype == np.float32
    np.testing.assert_allclose(tiled, whole(net, image), atol=1e-3)


def test_margin_matters(net, monkeypatch):
    """The test above can fail: with too small a margin the tiles disagree."""
    image = np.random.default_rng(0).random((160, 160), dtype=np.float32)
    reference = whole(net, image)
    monkeypatch.setattr(tiling, "minimum_tile_size", lambda n: 8)
    original = tiling.plan_windows
    monkeypatch.setattr(tiling, "plan_windows", lambda h, w, win, margin, grid: original(h, w, win, 0, grid))
    tiled = predict_tiled(net, image, tile_size=32, precision="fp32", device="cpu", max_overhead=None)
    assert np.abs(tiled - reference).max() > 1e-3


def test_windows_cover_image_exactly_once():
    for h, w, win, margin, grid in [(1, 1, 32, 8, 16), (100, 37, 48, 8, 16), (515, 300, 64, 16, 16)]:
        ph, pw, windows = plan_windows(h, w, win, margin, grid)
        cover = np.zeros((ph, pw), int)
        for wdw in windows:
            assert wdw.y0 % grid == 0 and wdw.x0 % grid == 0
            assert 0 <= wdw.y0 and wdw.y1 <= ph and 0 <= wdw.x0 and wdw.x1 <= pw
            cover[wdw.keep_y0:wdw.keep_y1, wdw.keep_x0:wdw.keep_x1] += 1
        assert (cover == 1).all()


@pytest.mark.parametrize(
    "dtype", [np.uint8, np.uint16, np.int16, np.int32, np.float16, np.float32, np.float64, bool]
)
def test_every_dtype(net, dtype):
    rng = np.random.default_rng(0)
    image = (rng.random((40, 50)) * (1 if dtype in (bool, np.float16, np.float32, np.float64) else 200)).astype(dtype)
    out = predict_tiled(net, image, tile_size=32, precision="fp32", device="cpu", max_overhead=None)
    np.testing.assert_allclose(out, whole(net, image.astype(np.float32)), atol=1e-3)


def test_lazy_and_non_contiguous_inputs(net):
    base = np.random.default_rng(3).random((90, 140), dtype=np.float32)
    reference = whole(net, base[:, ::2])
    for image in (base[:, ::2], da.from_array(base, chunks=32)[:, ::2]):
        np.testing.assert_allclose(predict_tiled(net, image, tile_size=40, precision="fp32", max_overhead=None), reference, atol=1e-3)
    z = zarr.create_array(store={}, shape=(90, 70), chunks=(32, 32), dtype="f4")
    z[:] = base[:, ::2]
    np.testing.assert_allclose(predict_tiled(net, z, tile_size=40, precision="fp32", max_overhead=None), reference, atol=1e-3)


def test_output_into_preallocated_store(net):
    image = np.random.default_rng(4).random((70, 90), dtype=np.float32)
    out = zarr.create_array(store={}, shape=(2, 70, 90), chunks=(2, 32, 32), dtype="f4")
    predict_tiled(net, image, tile_size=40, out=out, precision="fp32", max_overhead=None)
    np.testing.assert_allclose(out[:], whole(net, image), atol=1e-3)


def test_multichannel_and_channel_mismatch():
    net = UNet(3, 2, depth=1, base_channels=4).eval()
    assert predict_tiled(net, np.zeros((3, 20, 20), np.float32)).shape == (2, 20, 20)
    with pytest.raises(ValueError, match="expects 3 channel"):
        predict_tiled(net, np.zeros((20, 20), np.float32))


def test_progress_and_cancel(net):
    image = np.zeros((200, 200), np.float32)
    calls = []
    predict_tiled(net, image, tile_size=48, progress=lambda d, t: calls.append((d, t)), max_overhead=None)
    assert calls[0] == (0, calls[-1][1])  # the network's start, then one report a window
    assert calls[-1][0] == calls[-1][1] and len(calls) == calls[-1][1] + 1
    seen = []

    def cancel():
        seen.append(1)
        return len(seen) > 2

    with pytest.raises(Cancelled):
        predict_tiled(net, image, tile_size=48, progress=lambda d, t: None, cancel=cancel, max_overhead=None)
    assert len(seen) == 3


def test_minimum_tile_covers_receptive_field():
    net = UNet(1, 2, depth=4, base_channels=4)
    assert minimum_tile_size(net) >= 2 * net.receptive_radius
    assert minimum_tile_size(net) % 16 == 0


def test_bf16_close_to_fp32(net):
    image = np.random.default_rng(5).random((64, 64), dtype=np.float32)
    fp32 = whole(net, image)
    bf16 = predict_tiled(net, image, precision="bf16", device="cpu")
    assert np.abs(bf16 - fp32).max() < 0.1 * max(1.0, float(np.abs(fp32).max()))


def test_unknown_device_is_a_clear_error(net):
    from napari_unet_seg.core.model.devices import DeviceError

    with pytest.raises(DeviceError, match="unknown device"):
        predict_tiled(net, np.zeros((8, 8)), device="tpu")
    if not torch.cuda.is_available():
        with pytest.raises(DeviceError, match="not available"):
            predict_tiled(net, np.zeros((8, 8)), device="cuda")


def test_out_of_memory_retries_with_smaller_windows_then_says_so(net, monkeypatch):
    from napari_unet_seg.core.inference.tiling import OutOfMemory

    image = np.random.default_rng(6).random((150, 150), dtype=np.float32)
    reference = whole(net, image)
    forward = type(net).forward
    seen = []

    def limited(self, x, limit=[80 * 80]):
        seen.append(tuple(x.shape))
        if x.shape[0] * x.shape[2] * x.shape[3] > limit[0]:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return forward(self, x)

    monkeypatch.setattr(type(net), "forward", limited)
    out = predict_tiled(net, image, tile_size=96, batch_size=4, precision="fp32", device="cpu", max_overhead=None)
    np.testing.assert_allclose(out, reference, atol=1e-3)
    assert seen[0][0] == 4 and seen[-1][0] == 1 and seen[-1][2] < 96  # shrank the batch, then the windows
    monkeypatch.setattr(type(net), "forward", lambda self, x: (_ for _ in ()).throw(torch.OutOfMemoryError("out of memory")))
    with pytest.raises(OutOfMemory, match="smallest|even with"):
        predict_tiled(net, image, tile_size=256, batch_size=2, device="cpu")


def test_one_network_is_run_by_one_thread_at_a_time():
    """Two threads predicting with one network (a two-file batch) once crashed the process.

    Inference switches the net's memory format and mode and back, replacing its
    parameters in place; the other thread's forward then read freed memory.
    """
    import threading
    import time

    class Watched(UNet):
        active = 0
        most = 0

        def forward(self, x):
            Watched.active += 1
            Watched.most = max(Watched.most, Watched.active)
            time.sleep(0.05)  # long enough for the other thread to enter if nothing stops it
            try:
                return super().forward(x)
            finally:
                Watched.active -= 1

    torch.manual_seed(0)
    net = Watched(1, 2, depth=2, base_channels=4)
    image = np.random.default_rng(0).random((64, 64), dtype=np.float32)
    expected = predict_tiled(net, image, device="cpu", precision="fp32")
    results = []
    def run(precision: str) -> None:
        results.append(predict_tiled(net, image, device="cpu", precision=precision))

    threads = [threading.Thread(target=run, args=(p,)) for p in ("fp32", "bf16", "bf16")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert Watched.most == 1 and len(results) == 3
    assert sum(np.array_equal(r, expected) for r in results) >= 1  # the fp32 run; bf16 ones differ slightly
    assert all(np.abs(r - expected).max() < 0.05 * np.abs(expected).max() for r in results)


# --- the window: chosen for the image and the free memory, never a cliff (issue 21, item 1) ---------------------


CPU = torch.device("cpu")


def geometry(net):
    return window_margin(net), net.size_multiple


@settings(max_examples=60, deadline=None)
@given(h=st.integers(1, 3000), w=st.integers(1, 3000), wy=st.integers(1, 2000), wx=st.integers(1, 2000),
       depth=st.integers(1, 4))
def test_plan_cost_counts_the_planned_windows(h, w, wy, wx, depth):
    net = UNet(1, 2, depth=depth, base_channels=1)
    margin, grid = geometry(net)
    window = (on_grid(net, wy), on_grid(net, wx))
    ph, pw, windows = plan_windows(h, w, window, margin, grid)
    computed = sum((win.y1 - win.y0) * (win.x1 - win.x0) for win in windows)
    assert plan_cost(h, w, window, margin, grid) == pytest.approx(computed / (ph * pw))


@pytest.mark.parametrize("requested", [64, 128, 256])
def test_a_small_window_asked_for_is_raised_below_twice_one_pass_and_said(requested):
    """A 1000 x 1500 image in 64-256 px windows computed 179 passes (3,666 windows, 16 px kept of each)."""
    net = UNet(1, 2, depth=4, base_channels=32)  # only its geometry counts here: nothing is run
    margin, grid = geometry(net)
    assert plan_cost(1000, 1500, on_grid(net, requested), margin, grid) > 100  # the cliff, as it was
    with collecting_notes() as notes:
        window = choose_window(net, 1000, 1500, requested=requested, device=CPU, batch_size=1, precision="fp32")
    assert plan_cost(1000, 1500, window, margin, grid) <= 1.5  # below twice, with room for slower small windows
    [note] = notes.values()
    assert f"a {requested}-px window" in note and f"{window}-px windows were used" in note
    assert window == choose_window(net, 1000, 1500, requested=window, device=CPU, batch_size=1, precision="fp32")


def test_a_window_that_costs_little_is_kept_as_asked(monkeypatch):
    net = UNet(1, 2, depth=4, base_channels=32)
    with collecting_notes() as notes:
        assert choose_window(net, 1000, 1500, requested=1024, device=CPU, batch_size=1, precision="fp32") == 1024
        assert choose_window(net, 1000, 1500, requested=64, device=CPU, batch_size=1, precision="fp32",
                             max_overhead=None) == 272  # as asked, for tests of tiling itself
    assert not notes


@pytest.mark.parametrize("shape", [(2048, 2048), (2500, 3000), (4096, 4096), (8192, 8192)])
def test_automatic_windows_cost_at_most_1_3_passes_on_large_images(monkeypatch, shape):
    """With the memory of this 2-core machine (19 GB free); fixed 1024 px windows computed 1.6-2.25 passes."""
    net = UNet(1, 2, depth=4, base_channels=32)
    monkeypatch.setattr(tiling, "available_memory", lambda: 19 * 10**9)
    window = choose_window(net, *shape, requested=None, device=CPU, batch_size=1, precision="fp32")
    assert plan_cost(*shape, window, *geometry(net)) <= 1.3
    assert plan_cost(*shape, 1024, *geometry(net)) > 1.5  # the old default


def test_automatic_windows_fit_the_free_memory(monkeypatch):
    net = UNet(1, 2, depth=4, base_channels=32)
    per_pixel = tiling.bytes_per_window_pixel(net, "fp32")
    for free in (2 * 10**9, 8 * 10**9, 100 * 10**9):
        monkeypatch.setattr(tiling, "available_memory", lambda free=free: free)
        wy, wx = choose_window(net, 4096, 4096, requested=None, device=CPU, batch_size=1, precision="fp32")
        assert wy * wx * per_pixel <= 0.25 * free
    assert (wy, wx) == (4096, 4096)  # plenty of memory: one pass
    monkeypatch.setattr(tiling, "available_memory", lambda: 10**6)  # hardly any: the smallest window, still exact
    assert choose_window(net, 4096, 4096, requested=None, device=CPU, batch_size=1, precision="fp32") == (272, 272)


def test_a_pixel_cap_shrinks_automatic_windows_but_not_requested_ones(monkeypatch):
    """Blockwise storage caps its windows so memory stays flat; an explicit window is the user's choice."""
    net = UNet(1, 2, depth=4, base_channels=32)
    monkeypatch.setattr(tiling, "available_memory", lambda: 40 * 10**9)
    free = choose_window(net, 2560, 2560, requested=None, device=CPU, batch_size=1, precision="fp32")
    capped = choose_window(net, 2560, 2560, requested=None, device=CPU, batch_size=1, precision="fp32",
                           max_pixels=2048**2)
    assert free == (2560, 2560) and capped[0] * capped[1] <= 2048**2
    assert plan_cost(2560, 2560, capped, *geometry(net)) <= 1.2  # two windows: little more work
    assert choose_window(net, 2560, 2560, requested=1024, device=CPU, batch_size=1, precision="fp32",
                         max_pixels=512**2) == 1024
    assert choose_window(net, 2560, 2560, requested=None, device=CPU, batch_size=1, precision="fp32",
                         max_pixels=1) == (minimum_tile_size(net),) * 2  # never below the smallest exact window


def test_gpu_windows_follow_free_device_memory_and_the_batch(monkeypatch):
    net = UNet(1, 2, depth=4, base_channels=32)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (8 * 2**30, 16 * 2**30))
    cuda = torch.device("cuda")
    one, four = largest_window(net, cuda, 1, "bf16"), largest_window(net, cuda, 4, "bf16")
    assert one * tiling.bytes_per_window_pixel(net, "bf16") <= 0.5 * 8 * 2**30
    assert four == pytest.approx(one / 4, rel=0.01)


def test_automatic_windows_need_not_be_square_and_stay_exact(net, monkeypatch):
    """Little memory: rectangular windows, many of them; the result is still the whole-image pass."""
    image = np.random.default_rng(7).random((150, 230), dtype=np.float32)
    budget = 100 * 130  # pixels
    monkeypatch.setattr(tiling, "available_memory",
                        lambda: int(budget * tiling.bytes_per_window_pixel(net, "fp32") / 0.25))
    window = choose_window(net, 150, 230, requested=None, device=CPU, batch_size=1, precision="fp32")
    assert window[0] != window[1] and window[0] * window[1] <= budget
    assert len(plan_windows(150, 230, window, *geometry(net))[2]) > 2
    tiled = predict_tiled(net, image, precision="fp32", device="cpu")
    np.testing.assert_allclose(tiled, whole(net, image), atol=1e-3)


def test_auto_window_is_the_least_work_within_the_budget():
    net = UNet(1, 2, depth=4, base_channels=32)
    margin, grid = geometry(net)
    for shape, budget in [((1000, 1500), 1024**2), ((2048, 2048), 1536**2), ((777, 5000), 900**2)]:
        chosen = auto_window(net, *shape, budget)
        cost = plan_cost(*shape, chosen, margin, grid)
        squares = [s for s in range(272, 4097, 16) if s * s <= budget]
        assert cost <= min(plan_cost(*shape, s, margin, grid) for s in squares) * 1.02  # no square does better


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(h=st.integers(1, 120), w=st.integers(1, 120), tile=st.integers(1, 100), seed=st.integers(0, 10))
def test_flip_averaged_tiles_equal_one_flip_averaged_window(net, h, w, tile, seed):
    image = np.random.default_rng(seed).random((h, w), dtype=np.float32)
    tiled = predict_tiled(net, image, tile_size=tile, precision="fp32", device="cpu", max_overhead=None,
                          flip_average=True)
    one = predict_tiled(net, image, tile_size=10**6, precision="fp32", device="cpu", flip_average=True)
    np.testing.assert_allclose(tiled, one, rtol=1e-4, atol=1e-4)


def test_flip_averaging_is_the_mean_over_the_four_mirror_images(net):
    image = np.random.default_rng(3).random((64, 64), dtype=np.float32)  # one window, on the grid
    averaged = predict_tiled(net, image, tile_size=64, precision="fp32", device="cpu", flip_average=True)
    plain = whole(net, image)
    by_hand = np.mean([whole(net, image[::-1]).copy()[:, ::-1], whole(net, image[:, ::-1])[:, :, ::-1],
                       whole(net, image[::-1, ::-1])[:, ::-1, ::-1], plain], axis=0)
    np.testing.assert_allclose(averaged, by_hand, rtol=1e-4, atol=1e-4)
    assert not np.allclose(averaged, plain, atol=1e-3)  # the option does change the result


def test_a_one_window_run_reports_its_layers_so_the_bar_moves(net):
    # a one-window image (~8 s a megapixel on a 2-core CPU) sat at "Network: 0 %" with no time left until the end
    calls = []
    predict_tiled(net, np.zeros((64, 64), np.float32), progress=lambda d, t: calls.append((d, t)))
    totals = {t for _, t in calls}
    assert len(totals) == 1 and len(calls) > 3
    assert [d for d, _ in calls] == sorted(d for d, _ in calls) and calls[0][0] == 0 and calls[-1][0] == calls[-1][1]
