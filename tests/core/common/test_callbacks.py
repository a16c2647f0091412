"""Progress of parts as progress of the whole, and the one cancel check."""

import pytest

from napari_unet_seg.core.common.callbacks import Cancelled, part_progress, raise_if_cancelled


def test_part_progress_maps_each_part_onto_the_whole():
    calls = []
    for index in range(3):
        report = part_progress(lambda d, t: calls.append((d, t)), index, 3)
        for done in range(11):
            report(done, 10)
    assert calls[0] == (0, 30) and calls[10] == (10, 30) and calls[11] == (10, 30) and calls[-1] == (30, 30)
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)  # never goes backwards across parts
    assert {t for _, t in calls} == {30}


def test_part_progress_arithmetic():
    seen = []
    part_progress(lambda d, t: seen.append((d, t)), 2, 5)(3, 7)
    assert seen == [(2 * 7 + 3, 5 * 7)]


def test_part_progress_without_a_listener_is_none():
    assert part_progress(None, 0, 4) is None


def test_raise_if_cancelled():
    raise_if_cancelled(None)
    raise_if_cancelled(lambda: False)
    with pytest.raises(Cancelled):
        raise_if_cancelled(lambda: True)
    assert issubclass(Cancelled, Exception)
