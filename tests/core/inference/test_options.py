"""RunOptions: one frozen description of a run; labels too big for memory go to disk."""

import dataclasses

import pytest

from napari_unet_seg.core.inference import options as options_module
from napari_unet_seg.core.inference.options import LAZY_PLANE_PIXELS, RunOptions, available_memory, needs_disk


def test_defaults_and_the_two_outputs():
    default = RunOptions()
    assert (default.model, default.diameter, default.output, default.store) == (None, None, "instances", None)
    assert (default.device, default.precision) == ("auto", "auto")
    assert RunOptions(output="semantic").output == "semantic"


@pytest.mark.parametrize("output", ["labels", "Instances", "", "probabilities", None])
def test_unknown_outputs_are_refused(output):
    with pytest.raises(ValueError, match="output must be one of"):
        RunOptions(output=output)


def test_options_are_frozen_and_replaced_not_changed():
    run = RunOptions(model="nuclei", diameter=12.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        run.diameter = 30.0
    stored = dataclasses.replace(run, store="/tmp/x.zarr")
    assert stored.store == "/tmp/x.zarr" and run.store is None and stored.diameter == 12.0
    with pytest.raises(ValueError, match="output must be one of"):
        dataclasses.replace(run, output="masks")
    assert RunOptions(model="a") == RunOptions(model="a") and hash(RunOptions(model="a")) == hash(RunOptions(model="a"))


def test_needs_disk_when_labels_exceed_a_quarter_of_free_memory():
    shape = (1000, 1000)  # 4 MB of uint32 labels
    assert not needs_disk(shape, False, 10**6, available_bytes=16_000_000)  # exactly a quarter still fits
    assert needs_disk(shape, False, 10**6, available_bytes=15_999_996)
    assert needs_disk((10, 1000, 1000), False, 10**6, available_bytes=100_000_000)  # a stack counts every plane
    assert not needs_disk((10, 1000, 1000), False, 10**6, available_bytes=200_000_000)


def test_huge_lazy_planes_go_to_disk_whatever_the_memory():
    plenty = 10**15
    assert needs_disk((100, 100), True, LAZY_PLANE_PIXELS + 1, available_bytes=plenty)
    assert not needs_disk((100, 100), True, LAZY_PLANE_PIXELS, available_bytes=plenty)
    assert not needs_disk((100, 100), False, LAZY_PLANE_PIXELS + 1, available_bytes=plenty)  # in memory already


def test_needs_disk_asks_for_free_memory_when_not_told(monkeypatch):
    assert available_memory() > 0
    monkeypatch.setattr(options_module, "available_memory", lambda: 1_000_000)
    assert needs_disk((1000, 1000), False, 10**6)
    monkeypatch.setattr(options_module, "available_memory", lambda: 10**12)
    assert not needs_disk((1000, 1000), False, 10**6)


def test_free_memory_without_psutil_is_read_from_proc_meminfo(monkeypatch):
    """MemAvailable counts the page cache the kernel gives back on demand; sysconf's free pages do not."""
    import builtins
    import os

    if not os.path.exists("/proc/meminfo"):
        pytest.skip("no /proc/meminfo here")
    real_import = builtins.__import__

    def no_psutil(name, *args, **kwargs):
        if name == "psutil":
            raise ImportError("no psutil")
        return real_import(name, *args, **kwargs)

    with open("/proc/meminfo") as f:
        expected = next(int(line.split()[1]) * 1024 for line in f if line.startswith("MemAvailable:"))
    monkeypatch.setattr(builtins, "__import__", no_psutil)
    assert available_memory() == pytest.approx(expected, rel=0.2)


def test_a_misspelt_device_is_refused_when_the_options_are_made():
    # "gpu" was accepted here and refused only when a run started, unlike every other setting
    with pytest.raises(ValueError, match="unknown device 'gpu'; choose one of auto, cpu, cuda, mps"):
        RunOptions(device="gpu")
    assert RunOptions(device="cuda:1").device == "cuda:1"  # may not exist here: checked when the run starts
