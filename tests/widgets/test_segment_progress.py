"""The Segment dock's status line: the stage a run is at, the network's share and its time left."""

from __future__ import annotations

import pytest

from napari_unet_seg._widgets.segment_progress import FINISHING, NETWORK, PREPARING, SegmentProgress


def test_each_stage_is_named_with_the_time_spent():
    run = SegmentProgress("cells", started=100.0)
    assert run.stage == PREPARING and run.percent() is None
    assert run.text(133.0) == "Preparing 'cells' (reading the image, measuring its objects)… · 33 s so far"
    run.report(0, 4000, now=135.0)  # the network starts: named at once, even for a one-window image
    assert run.stage == NETWORK and run.text(136.0) == "Network: 0 % of 'cells' · 36 s so far"
    run.report(1000, 4000, now=140.0)
    assert run.stage == NETWORK and run.percent() == 25
    assert run.text(140.0).startswith("Network: 25 % of 'cells', ~2 min 0 s left for it · 40 s so far")
    run.report(4000, 4000, now=170.0)
    assert run.stage == FINISHING and run.percent() is None
    assert run.text(180.0) == "Post-processing 'cells' (making the labels)… · 1 min 20 s so far"
    to_disk = SegmentProgress("big", started=0.0, measuring=False, to_disk=True)
    assert "(reading the image)" in to_disk.text(1.0)
    to_disk.report(5, 5, now=2.0)
    assert "writing the store" in to_disk.text(3.0)


def test_time_left_leaves_the_preparation_out_and_counts_down_between_reports():
    run = SegmentProgress("cells", started=0.0)
    run.report(1000, 4000, now=30.0)  # 30 s: preparation and the first quarter
    assert run.seconds_left(30.0) == pytest.approx(90.0)  # one report: an upper bound
    run.report(2000, 4000, now=40.0)  # the network's own pace: 10 s a quarter
    assert run.seconds_left(40.0) == pytest.approx(20.0)
    assert run.seconds_left(45.0) == pytest.approx(15.0)  # counted down, not stuck until the next report
    assert run.seconds_left(60.5) is None  # late: no made-up figure
    assert "left" not in run.text(60.5)


def test_a_stack_says_which_slice_the_network_is_on():
    run = SegmentProgress("movie", started=0.0, planes=6)
    run.report(0, 600, now=1.0)
    assert run.text(1.0).startswith("Network: 0 % of 'movie' (slice 1 of 6)")
    run.report(250, 600, now=5.0)  # slice 3 half done
    assert "(slice 3 of 6)" in run.text(5.0)
    run.report(599, 600, now=9.0)
    assert "(slice 6 of 6)" in run.text(9.0)
    assert "slice" not in SegmentProgress("one", started=0.0).text(1.0)
