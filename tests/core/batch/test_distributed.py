"""Batches on a dask cluster: an unreachable scheduler fails fast in one line; results equal a local run."""

import time

import numpy as np
import pytest
import tifffile

from napari_unet_seg.core.batch.distributed import SchedulerError, connect
from napari_unet_seg.core.batch.runner import run_batch

pytestmark = [
    pytest.mark.filterwarnings("ignore::UserWarning:distributed"),
    pytest.mark.filterwarnings("ignore:.*[Pp]ort.*:UserWarning"),
]


def test_unreachable_scheduler_fails_fast():
    start = time.perf_counter()
    with pytest.raises(SchedulerError, match="cannot reach"):
        connect("127.0.0.1:9", timeout=1)
    assert time.perf_counter() - start < 5
    with pytest.raises(SchedulerError):
        connect("nonsense://x")


def test_dask_cluster_gives_identical_results(tmp_path, folder, options):
    from distributed import LocalCluster

    root, _ = folder
    inputs = [root / "a.tif", root / "b c.png", root / "stack.tif", root / "empty.png"]
    local = run_batch(inputs, tmp_path / "local", options)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster:
        remote = run_batch(inputs, tmp_path / "remote", options, scheduler=cluster.scheduler_address)
    assert [r.status for r in remote] == [r.status for r in local] == ["ok", "ok", "ok", "failed"]
    for a, b in zip(local[:3], remote[:3]):
        np.testing.assert_array_equal(tifffile.imread(a.output), tifffile.imread(b.output))
        assert a.objects == b.objects


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # free now, and nothing listens once the socket is closed


@pytest.mark.parametrize("form", ["{}", "tcp://{}", "  tcp://{}  "])
def test_a_closed_port_fails_at_once_in_one_line(form):
    address = form.format(f"127.0.0.1:{_closed_port()}")
    start = time.perf_counter()
    with pytest.raises(SchedulerError) as info:
        connect(address, timeout=3)
    assert time.perf_counter() - start < 2  # refused at once, not after the client's retries
    message = str(info.value)
    assert "\n" not in message and message.startswith("cannot reach the dask scheduler at tcp://127.0.0.1:")
    assert "refused" in message.lower()


@pytest.mark.parametrize("address, match", [
    ("nonsense://x", "invalid scheduler address.*unknown scheme 'nonsense'"),
    ("http://127.0.0.1:8787", "invalid scheduler address.*unknown scheme 'http'"),
    ("tcp://localhost:notaport", "invalid scheduler address"),
])
def test_invalid_addresses_are_refused(address, match):
    start = time.perf_counter()
    with pytest.raises(SchedulerError, match=match) as info:
        connect(address, timeout=3)
    assert "\n" not in str(info.value) and time.perf_counter() - start < 2


def test_an_in_process_cluster_gives_the_local_results(tmp_path, folder, options):
    from distributed import LocalCluster

    root, _ = folder
    inputs = [root / "a.tif", root / "b c.png"]
    local = run_batch(inputs, tmp_path / "local", options)
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, protocol="tcp://",
                      host="127.0.0.1", dashboard_address=None) as cluster:
        remote = run_batch(inputs, tmp_path / "remote", options, scheduler=cluster.scheduler_address)
    assert [r.status for r in remote] == [r.status for r in local] == ["ok", "ok"]
    for a, b in zip(local, remote):
        assert (a.objects, a.mean_area) == (b.objects, b.mean_area) and a.objects > 0
        assert b.output.startswith(str((tmp_path / "remote").resolve()))
        np.testing.assert_array_equal(tifffile.imread(a.output), tifffile.imread(b.output))


def test_paths_typed_relative_to_here_reach_workers_that_run_elsewhere(tmp_path, folder, options, monkeypatch):
    """Workers keep their own working folder; the summary still names the files as they were typed."""
    from distributed import LocalCluster

    root, _ = folder
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # the workers start here
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster:
        monkeypatch.chdir(root.parent)  # the user types paths relative to here
        typed = [root.name + "/a.tif", root.name + "/b c.png"]
        remote = run_batch(typed, tmp_path / "remote", options, scheduler=cluster.scheduler_address)
    local = run_batch(typed, tmp_path / "local", options)
    assert [r.status for r in remote] == [r.status for r in local] == ["ok", "ok"], [r.message for r in remote]
    assert [r.file for r in remote] == [r.file for r in local] == typed
    for a, b in zip(local, remote):
        np.testing.assert_array_equal(tifffile.imread(a.output), tifffile.imread(b.output))


def test_a_stopped_run_stops_the_files_running_on_workers(tmp_path, folder, options, monkeypatch):
    """Dask cannot interrupt a running task: the run's stop event reaches it between windows, a file not begun is
    not read, and the run waits for them, so nothing is written after it returned (Ctrl+C, Cancel); a file that
    finished meanwhile still gets its summary row."""
    import threading

    from distributed import LocalCluster

    from napari_unet_seg.core.batch import distributed as cluster_run
    from napari_unet_seg.core.batch.files import FileResult
    from napari_unet_seg.core.batch.jobs import find_jobs

    started, read = threading.Event(), []

    def slow_file(job, model, options, **kwargs):  # a long file: it asks whether to stop, as windows do
        read.append(job.source.name)
        started.set()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not kwargs["cancel"]():
            time.sleep(0.05)
        time.sleep(0.5)  # past its network when told: it writes its outputs whole, then returns
        return FileResult(str(job.source), "ok", 3, 10.0, 1.0, "", str(job.target))

    monkeypatch.setattr(cluster_run, "segment_file", slow_file)
    root, _ = folder
    jobs = find_jobs([root / "a.tif", root / "b c.png"], tmp_path / "out", kind="labels")
    late = []
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, protocol="tcp://",
                      host="127.0.0.1", dashboard_address=None) as cluster:
        results = list(cluster_run.iter_distributed(jobs, options, cluster.scheduler_address, cancel=started.is_set,
                                                    finished_late=lambda job, row: late.append((job, row))))
        assert read == ["a.tif"]  # the file not begun was never read
    assert results == [] and [(job.source.name, row.status) for job, row in late] == [("a.tif", "ok")]


def test_a_cluster_left_without_workers_ends_the_run_in_one_line():
    from napari_unet_seg.core.batch.distributed import _WorkerWatch

    class Cluster:
        workers = {"tcp://w1": 1}

        def nthreads(self):
            return self.workers

    cluster = Cluster()
    watch = _WorkerWatch(cluster, grace=0.2)
    time.sleep(0.15)
    assert watch.gone_for() is None  # workers there
    cluster.workers = {}  # all killed (or their walltime reached)
    time.sleep(0.15)
    assert watch.gone_for() is None  # not long gone: adaptive clusters come back
    deadline = time.monotonic() + 5
    while (gone := watch.gone_for()) is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert gone is not None and gone >= 0.2
    cluster.workers = {"tcp://w2": 1}  # back
    time.sleep(0.15)
    assert watch.gone_for() is None


def test_a_scheduler_lost_mid_run_ends_it_in_one_line():
    from napari_unet_seg.core.batch.distributed import _WorkerWatch

    class Gone:
        def nthreads(self):
            raise OSError("Stream is closed")

    watch = _WorkerWatch(Gone(), grace=0.1)
    time.sleep(0.06)
    with pytest.raises(SchedulerError, match="lost the dask scheduler") as info:
        watch.gone_for()
    assert "\n" not in str(info.value)


def test_a_cluster_with_no_worker_yet_is_waited_for_and_cancel_is_heard_meanwhile(tmp_path):
    """A scheduler started before its workers: the run waits for one, says so in one line when none comes, and
    stops at once when cancelled meanwhile (before, ``wait_for_workers`` held the run 30 s, deaf to Cancel)."""
    from distributed import LocalCluster

    from napari_unet_seg.core.batch.distributed import iter_distributed
    from napari_unet_seg.core.batch.jobs import Job
    from napari_unet_seg.core.inference.options import RunOptions

    jobs = [Job(tmp_path / "a.tif", tmp_path / "out" / "a_labels.tif")]
    with LocalCluster(n_workers=0, processes=False, protocol="tcp://", dashboard_address=None) as cluster:
        address = cluster.scheduler_address
        start = time.monotonic()
        with pytest.raises(SchedulerError, match=r"has no workers \(waited 1 s\): start some") as info:
            list(iter_distributed(jobs, RunOptions(), address, first_worker_wait=1.0))
        assert "\n" not in str(info.value) and time.monotonic() - start < 10
        asked = []
        start = time.monotonic()
        cancelled = list(iter_distributed(jobs, RunOptions(), address, first_worker_wait=60.0,
                                          cancel=lambda: asked.append(1) or len(asked) > 2))
        assert cancelled == [] and time.monotonic() - start < 10
        assert not (tmp_path / "out").exists()
