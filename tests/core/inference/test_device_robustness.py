"""GPU by construction, checked on the CPU: copies in flight, out-of-memory back-off, one network per device.

No GPU runs here: the CUDA-only steps (pinned memory, asynchronous copies)
sit behind one switch (:func:`~napari_unet_seg.core.model.transfer.overlaps`),
and out-of-memory errors are raised by a network that refuses large batches
the way a full GPU would (``torch.cuda.OutOfMemoryError`` exists on CPU builds).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import numpy as np
import pytest
import torch
from helpers import randomize_batchnorm
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from napari_unet_seg import UNet, predict_tiled
from napari_unet_seg.core.common.notes import collecting_notes
from napari_unet_seg.core.inference import window_run
from napari_unet_seg.core.inference.tiling import OutOfMemory, minimum_tile_size, on_grid, window_margin
from napari_unet_seg.core.inference.window_plan import plan_windows, split_window
from napari_unet_seg.core.model import transfer
from napari_unet_seg.core.model.devices import is_out_of_memory
from napari_unet_seg.core.model.fold import copy_key, inference_net

CPU = torch.device("cpu")
META = torch.device("meta")  # a second device that a CPU-only build has


class FullGPU(UNet):
    """A U-Net on a device that holds at most ``limit`` input pixels at once, and says so as CUDA does."""

    limit: ClassVar[int] = 10**9
    error: ClassVar[Callable[[str], Exception]] = torch.cuda.OutOfMemoryError
    calls: ClassVar[list[tuple[int, ...]]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] * x.shape[2] * x.shape[3] > FullGPU.limit:
            raise FullGPU.error("CUDA out of memory. Tried to allocate 2.00 GiB")
        FullGPU.calls.append(tuple(x.shape))
        return super().forward(x)


@pytest.fixture
def net():
    torch.manual_seed(1)
    net = FullGPU(1, 2, depth=2, base_channels=4)
    randomize_batchnorm(net)
    FullGPU.limit, FullGPU.error, FullGPU.calls = 10**9, torch.cuda.OutOfMemoryError, []
    return net.eval()


def assert_same(actual, expected):
    """Equal to fp32 rounding: oneDNN may sum in another order for another batch or window size."""
    np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-5 * max(1.0, float(np.abs(expected).max())))


def run(net, image, **options):
    options = {"precision": "fp32", "device": "cpu", "max_overhead": None, **options}
    return predict_tiled(net, image, **options)


# --- one batch in flight (CUDA): the same numbers, written later ------------------------------------------------


def test_keeping_a_batch_in_flight_changes_no_bit_and_reports_every_batch(net, monkeypatch):
    image = np.random.default_rng(0).random((150, 230), dtype=np.float32)
    plain_calls, flight_calls = [], []
    plain = run(net, image, tile_size=48, batch_size=3, progress=lambda d, t: plain_calls.append((d, t)))
    monkeypatch.setattr(window_run, "overlaps", lambda device: True)  # the CUDA schedule, with CPU copies
    in_flight = run(net, image, tile_size=48, batch_size=3, progress=lambda d, t: flight_calls.append((d, t)))
    assert np.array_equal(in_flight, plain)
    assert flight_calls == plain_calls and plain_calls[-1][0] == plain_calls[-1][1]


def test_on_the_cpu_nothing_is_pinned_and_no_stream_is_made(net, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a CUDA-only step ran on the CPU")

    monkeypatch.setattr(torch.Tensor, "pin_memory", refuse)
    monkeypatch.setattr(torch.cuda, "Stream", refuse)
    monkeypatch.setattr(torch.cuda, "Event", refuse)
    assert not transfer.overlaps(CPU)
    image = np.random.default_rng(1).random((90, 70), dtype=np.float32)
    assert run(net, image, tile_size=48, batch_size=2).shape == (2, 90, 70)
    arrays = [np.full((1, 8, 8), i, np.float32) for i in range(3)]
    batch = transfer.to_device(arrays, CPU, torch.channels_last)
    assert torch.equal(batch, torch.from_numpy(np.stack(arrays)))
    assert np.array_equal(transfer.HostCopy(batch.to(torch.bfloat16)).numpy(), np.stack(arrays))


# --- out of memory: half the batch, then smaller windows; the same result, and a note -------------------------------


def test_out_of_memory_halves_the_batch_and_gives_the_same_result_with_a_note(net, monkeypatch):
    image = np.random.default_rng(2).random((200, 200), dtype=np.float32)
    reference = run(net, image, tile_size=64, batch_size=8)
    freed = []
    monkeypatch.setattr(window_run, "free_cached_memory", lambda device: freed.append(device))
    FullGPU.limit, FullGPU.calls = 2 * 64 * 64, []  # two windows at a time fit
    with collecting_notes() as notes:
        out = run(net, image, tile_size=64, batch_size=8)
    assert_same(out, reference)
    assert freed and max(shape[0] for shape in FullGPU.calls) == 2
    [note] = notes.values()
    assert "ran out of memory" in note and "2 at a time instead of 8" in note and "the result is the same" in note


def test_out_of_memory_then_smaller_windows_on_the_grid_give_the_same_result(net):
    image = np.random.default_rng(3).random((150, 170), dtype=np.float32)
    reference = run(net, image, tile_size=112, batch_size=4)
    side = max(minimum_tile_size(net), 56)  # half of 112, unless that keeps too little
    FullGPU.limit, FullGPU.calls = side * side, []  # one such window at a time
    with collecting_notes() as notes:
        out = run(net, image, tile_size=112, batch_size=4)
    assert_same(out, reference)
    grid, smallest = net.size_multiple, minimum_tile_size(net)
    assert all(h % grid == 0 and w % grid == 0 and min(h, w) >= min(smallest, 112) for _, _, h, w in FullGPU.calls)
    [note] = notes.values()
    assert "1 at a time instead of 4" in note and f"cut to at most {side} x {side} px" in note


def test_out_of_memory_retries_the_same_windows_and_keeps_what_was_done(net, monkeypatch):
    """A transient failure at the third batch redoes that batch only, not the image."""
    image = np.random.default_rng(4).random((200, 200), dtype=np.float32)
    reference = run(net, image, tile_size=64, batch_size=2)
    planned = sum(shape[0] for shape in FullGPU.calls)  # windows
    FullGPU.calls = []
    forward, failures = FullGPU.forward, iter([False, False, True])

    def fails_once(self, x):
        if next(failures, False):
            raise torch.cuda.OutOfMemoryError("CUDA out of memory.")
        return forward(self, x)

    monkeypatch.setattr(FullGPU, "forward", fails_once)
    progress = []
    out = run(net, image, tile_size=64, batch_size=2, progress=lambda d, t: progress.append(d))
    assert_same(out, reference)
    assert sum(shape[0] for shape in FullGPU.calls) == planned  # each window run once: nothing done is redone
    assert [shape[0] for shape in FullGPU.calls[:3]] == [2, 2, 1]  # the failed batch again, in halves
    assert progress == sorted(progress) and progress[-1] == planned  # never backwards


@pytest.mark.parametrize("error", [
    RuntimeError("MPS backend out of memory (MPS allocated: 17.00 GB, other allocations: 1.2 GB)"),
    RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory"),
])
def test_other_backends_out_of_memory_errors_back_off_too(net, error):
    image = np.random.default_rng(5).random((120, 120), dtype=np.float32)
    reference = run(net, image, tile_size=64, batch_size=4)
    FullGPU.limit, FullGPU.error = 64 * 64, lambda text: error
    assert is_out_of_memory(error)
    assert_same(run(net, image, tile_size=64, batch_size=4), reference)


def test_other_runtime_errors_are_not_taken_for_out_of_memory(net):
    FullGPU.limit, FullGPU.error = 0, lambda text: RuntimeError("cuDNN error: CUDNN_STATUS_EXECUTION_FAILED")
    with pytest.raises(RuntimeError, match="CUDNN_STATUS"):
        run(net, np.zeros((64, 64), np.float32), tile_size=64)


def test_when_one_smallest_window_does_not_fit_it_says_so_in_one_sentence(net):
    FullGPU.limit = 0
    with pytest.raises(OutOfMemory) as caught:
        run(net, np.zeros((300, 300), np.float32), tile_size=256, batch_size=4)
    message = str(caught.value)
    smallest = minimum_tile_size(net)
    assert f"one {smallest} x {smallest} px window, the smallest this network can use" in message
    assert message.count(". ") == 0 and "choose a smaller model" in message  # the CPU's advice; a GPU's names the CPU


@settings(max_examples=40, deadline=None)
@given(h=st.integers(1, 400), w=st.integers(1, 400), big=st.integers(1, 300), small=st.integers(1, 200),
       depth=st.integers(1, 4))
def test_split_windows_tile_the_kept_part_with_the_same_margins_and_grid(h, w, big, small, depth):
    net = UNet(1, 2, depth=depth, base_channels=1)
    grid, margin = net.size_multiple, window_margin(net)
    ph, pw, windows = plan_windows(h, w, on_grid(net, big), margin, grid)
    side = on_grid(net, small)
    for win in windows:
        cover = np.zeros((win.y1 - win.y0, win.x1 - win.x0), int)  # in the window's coordinates
        for part in split_window(win, side, margin, grid):
            assert part.y0 % grid == 0 and part.x0 % grid == 0
            assert (part.y1 - part.y0) % grid == 0 and (part.x1 - part.x0) % grid == 0
            assert win.y0 <= part.y0 and part.y1 <= win.y1 and win.x0 <= part.x0 and part.x1 <= win.x1
            assert part.y1 - part.y0 <= side and part.x1 - part.x0 <= side  # a side below it: the whole context
            assert part.keep_y0 - part.y0 >= margin or part.y0 == 0  # the margin, except at the image border
            assert part.y1 - part.keep_y1 >= margin or part.y1 == ph
            assert part.keep_x0 - part.x0 >= margin or part.x0 == 0
            assert part.x1 - part.keep_x1 >= margin or part.x1 == pw
            cover[part.keep_y0 - win.y0:part.keep_y1 - win.y0, part.keep_x0 - win.x0:part.keep_x1 - win.x0] += 1
        kept = np.zeros_like(cover)
        kept[win.keep_y0 - win.y0:win.keep_y1 - win.y0, win.keep_x0 - win.x0:win.keep_x1 - win.x0] = 1
        assert np.array_equal(cover, kept)


# --- one network per device and precision ----------------------------------------------------------------------


def test_cache_keys_tell_devices_and_precisions_apart(monkeypatch):
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    cuda = copy_key(torch.device("cuda"), "bf16", torch.channels_last)
    assert cuda == copy_key(torch.device("cuda:0"), "bf16", torch.channels_last)  # one GPU, one key
    assert cuda != copy_key(torch.device("cuda:1"), "bf16", torch.channels_last)
    assert cuda != copy_key(torch.device("cuda:0"), "fp16", torch.channels_last)
    assert copy_key(CPU, "fp32", torch.channels_last) != copy_key(CPU, "bf16", torch.channels_last)


def test_each_device_keeps_its_own_copy_and_none_is_moved(net):
    on_cpu = inference_net(net, CPU, torch.channels_last, "fp32")
    on_meta = inference_net(net, META, torch.channels_last, "fp32")
    in_bf16 = inference_net(net, CPU, torch.channels_last, "bf16")
    assert len({id(on_cpu), id(on_meta), id(in_bf16), id(net)}) == 4
    assert inference_net(net, CPU, torch.channels_last, "fp32") is on_cpu  # after the other device: not refolded
    assert inference_net(net, META, torch.channels_last, "fp32") is on_meta
    assert all(p.device == CPU for p in (*on_cpu.parameters(), *in_bf16.parameters(), *net.parameters()))
    assert all(p.device.type == "meta" for p in on_meta.parameters())
    with torch.no_grad():
        next(net.parameters()).add_(1.0)  # new weights: every device's copy is made again
    assert inference_net(net, CPU, torch.channels_last, "fp32") is not on_cpu
    assert inference_net(net, META, torch.channels_last, "fp32") is not on_meta


def test_a_network_with_nothing_to_fold_gets_a_copy_on_another_device_not_a_move():
    net = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU())
    assert inference_net(net, CPU, torch.contiguous_format) is net  # already there: itself, as before
    elsewhere = inference_net(net, META, torch.contiguous_format)
    assert elsewhere is not net and next(elsewhere.parameters()).device.type == "meta"
    assert next(net.parameters()).device == CPU
    assert inference_net(net, META, torch.contiguous_format) is elsewhere
