"""Running a batch on an existing dask.distributed cluster.

Files are distributed to the workers as one task each; every worker reads,
segments and writes its files itself (inputs and the output folder must be on
a filesystem the workers share, as on any HPC cluster). The model file's bytes
travel once to each worker in a :class:`ModelPlugin`, so a worker loads the
network once, whatever the number of files and even without access to the
user's model folder. The code path per file is the local one
(:func:`~.files.segment_file`), so results are identical to a local run.
"""

from __future__ import annotations

import hashlib
import os
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from distributed.diagnostics.plugin import WorkerPlugin

from ..common.errors import first_line
from ..inference.options import RunOptions
from ..model.modelfile import Model, load_model_file
from ..model.registry import resolve_model_path
from .errors import SchedulerError, stopped_by_shutdown
from .files import FileResult, failed_result, segment_file
from .jobs import Job

CONNECT_TIMEOUT = 5.0  # seconds; an unreachable scheduler must fail fast
POLL = 0.25
WORKER_CHECK = 2.0  # seconds between asking the scheduler how many workers it has
FIRST_WORKER_WAIT = 30.0  # seconds a run waits for a cluster that has no worker yet (one just being started)
NO_WORKERS_GRACE = 60.0  # seconds without a single worker (all killed, walltime reached) before the run gives up
STOP_GRACE = 15.0  # seconds a stopped run waits for the files on workers to stop (or finish) and be recorded
SCHEMES = ("tcp", "tls", "ws", "wss", "ucx", "inproc")


def connect(address: str, timeout: float = CONNECT_TIMEOUT) -> Any:
    """A client of the scheduler at ``address`` (``tcp://host:8786``), or a one-line :class:`SchedulerError`."""
    from distributed import Client

    address = address.strip()
    if "://" not in address:
        address = f"tcp://{address}"
    try:
        _probe(address, timeout)
        return Client(address, timeout=f"{timeout}s", set_as_default=False)
    except (OSError, TimeoutError) as exc:
        reason = getattr(exc, "strerror", None) or f"no answer within {timeout:g} s"
        raise SchedulerError(
            f"cannot reach the dask scheduler at {address} ({reason}); is it running, and is the address "
            "host:port of the scheduler?"
        ) from exc
    except ValueError as exc:
        raise SchedulerError(f"invalid scheduler address {address!r}: {exc}") from exc
    except Exception as exc:  # noqa: BLE001 - something answered, but not a dask scheduler
        raise SchedulerError(f"{address} did not answer like a dask scheduler ({type(exc).__name__}); "
                             "check the address and port") from exc


def _probe(address: str, timeout: float) -> None:
    """Fail in milliseconds, not after the client's retries, when nothing listens at a tcp address."""
    from distributed.comm.addressing import parse_address, parse_host_port

    scheme, location = parse_address(address)
    if scheme not in SCHEMES:
        raise ValueError(f"unknown scheme {scheme!r} (use tcp://host:port)")
    if scheme == "tcp":
        host, port = parse_host_port(location)
        socket.create_connection((host, port), timeout=timeout).close()


class ModelPlugin(WorkerPlugin):
    """A worker plugin that holds the model, loaded once per worker from the file's bytes.

    ``lock`` serialises inference when a worker runs several tasks at once
    (one network per worker), while their reading and writing overlap.
    """

    def __init__(self, data: bytes, name: str) -> None:
        self.data = data
        self.name = name
        self.model: Model | None = None
        self.lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        return {"data": self.data, "name": self.name}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["data"], state["name"])

    def setup(self, worker: Any = None) -> None:
        with tempfile.TemporaryDirectory(prefix="unet-seg-") as folder:
            path = Path(folder) / "model.safetensors"
            path.write_bytes(self.data)
            self.model = load_model_file(path)
        self.model.path = None

    def teardown(self, worker: Any = None) -> None:
        self.model = None


def model_plugin(options: RunOptions) -> ModelPlugin:
    """The plugin carrying the batch's model; its name changes when the file changes."""
    path = resolve_model_path(options.model or "nuclei")
    data = path.read_bytes()
    digest = hashlib.sha1(data).hexdigest()[:12]
    return ModelPlugin(data, f"napari-unet-seg:{path.stem}-{digest}")


def segment_on_worker(job: Job, options: RunOptions, plugin_name: str, stop: str | None = None) -> FileResult | None:
    """The task run on a worker for one file; it stops between network windows once the run's ``stop`` event
    is set (dask cannot interrupt a running task, so a file would otherwise still be written after Ctrl+C)."""
    import dask
    from distributed import Event, get_worker

    plugin = get_worker().plugins[plugin_name]
    event = Event(stop) if stop else None
    if event is not None and event.is_set():
        return None  # the run stopped before this file began: it is not read
    with dask.config.set(scheduler="synchronous"):  # zarr inputs are read inside this task
        return segment_file(job, plugin.model, options, lock=plugin.lock,
                            cancel=None if event is None else event.is_set)


def _absolute(job: Job) -> Job:
    """``job`` with absolute paths (the cluster's workers share the files, not this process's working folder)."""
    return replace(job, source=job.source.absolute(), target=job.target.absolute())


def _as_given(result: FileResult, job: Job) -> FileResult:
    """A worker's row naming the files as they were given, as a local run's row does (summaries compare)."""
    output = str(job.target) if result.output == str(_absolute(job).target) else result.output
    return replace(result, file=str(job.source), output=output)


class _WorkerWatch:
    """Notices a cluster left without workers (all killed, their walltime reached) for longer than ``grace``:
    tasks then wait forever, so the run says so and stops instead."""

    def __init__(self, client: Any, grace: float) -> None:
        self.client, self.grace = client, grace
        self.checked = self.seen = time.monotonic()

    def gone_for(self) -> float | None:
        """Seconds without a worker once over the grace; None while workers are there (or not long gone)."""
        now = time.monotonic()
        if now - self.checked < min(WORKER_CHECK, self.grace / 2):
            return None
        self.checked = now
        try:
            workers = self.client.nthreads()
        except Exception as exc:  # noqa: BLE001 - the scheduler itself is gone (closed, its node lost)
            raise SchedulerError(f"lost the dask scheduler ({type(exc).__name__}): files not finished were not run; "
                                 "start the cluster again and run the same command to finish them") from exc
        if workers:
            self.seen = now
        return now - self.seen if now - self.seen >= self.grace else None


def _row(future: Any, job: Job) -> FileResult | None:
    """The summary row of a finished task (None: stopped before it wrote anything)."""
    try:
        result = future.result()
    except Exception as exc:  # noqa: BLE001 - e.g. a worker died on this file
        return None if stopped_by_shutdown(exc) else failed_result(job, exc, 0.0)
    return None if result is None else _as_given(result, job)


def _first_worker(client: Any, address: str, wait: float, cancel: Callable[[], bool] | None) -> bool:
    """Wait up to ``wait`` seconds for the cluster's first worker; False when cancelled meanwhile.

    Polled rather than ``client.wait_for_workers``, which Cancel cannot interrupt.
    """
    deadline = time.monotonic() + wait
    while not client.nthreads():
        if cancel is not None and cancel():
            return False
        if time.monotonic() >= deadline:
            raise SchedulerError(f"the dask cluster at {address} has no workers (waited {wait:.0f} s): start "
                                 f"some (e.g. `dask worker {address}`) and run again")
        time.sleep(POLL)
    return True


def iter_distributed(
    jobs: list[Job], options: RunOptions, address: str, *, cancel: Callable[[], bool] | None = None,
    timeout: float = CONNECT_TIMEOUT, no_workers_grace: float = NO_WORKERS_GRACE, stop_grace: float = STOP_GRACE,
    first_worker_wait: float = FIRST_WORKER_WAIT, finished_late: Callable[[Job, FileResult], None] | None = None,
) -> Iterator[tuple[Job, FileResult]]:
    """Segment ``jobs`` on the cluster at ``address``; yields results as workers finish them.

    However the run ends (cancelled, Ctrl+C, an error), the files on workers
    are told to stop: those not begun return at once, those being segmented
    between their network's layers, and the run waits up to ``stop_grace`` seconds for
    them, so nothing is written after it has returned; a file that finished
    meanwhile goes to ``finished_late`` (its summary row), as in a local run.
    A cluster without workers for ``no_workers_grace`` seconds ends the run
    with a :class:`SchedulerError`, and so does one that has none at the start
    ``first_worker_wait`` seconds later (Cancel is heard while it waits).
    """
    from distributed import Event

    plugin = model_plugin(options)
    client = connect(address, timeout)
    futures: dict[Any, Job] = {}
    pending: list[Any] = []
    stop, grace = None, stop_grace
    try:
        if not _first_worker(client, address, first_worker_wait, cancel):
            return
        client.register_plugin(plugin, name=plugin.name)
        stop = Event(f"unet-seg-stop-{os.getpid()}-{id(jobs)}-{time.time_ns()}", client=client)
        # workers run in their own working folder: a path typed relative to this one would name nothing there
        futures = {
            client.submit(segment_on_worker, _absolute(job), options, plugin.name, stop.name,
                          key=f"unet-seg-{i}-{os.getpid()}-{id(job)}", pure=False, retries=1): job
            for i, job in enumerate(jobs)
        }
        pending = list(futures)  # polled, not waited on: this client is deliberately not the default one
        watch = _WorkerWatch(client, no_workers_grace)
        while pending:
            if cancel is not None and cancel():
                return
            future = next((f for f in pending if f.done()), None)
            if future is None:
                if (gone := watch.gone_for()) is not None:
                    grace = 0.0  # no worker is left to stop
                    left = [futures[f] for f in pending if not futures[f].target.exists()]
                    raise SchedulerError(
                        f"the dask cluster at {address} has had no workers for {gone:.0f} s, so {len(left)} "
                        "file(s) were not run; start workers and run the same command again to finish them "
                        "(finished files are kept)")
                time.sleep(POLL)
                continue
            pending.remove(future)  # one at a time: a run stopped at a yield leaves the rest to the wind-down
            if (result := _row(future, futures[future])) is not None:
                yield futures[future], result
    except TimeoutError as exc:  # the scheduler stopped answering (a network call timed out)
        raise SchedulerError(f"the dask scheduler at {address} did not answer in time ({first_line(exc)}); "
                             "finished files are kept: run the same command again to finish the others") from None
    finally:
        _wind_down(client, stop, pending, futures, grace, finished_late)
        client.close()


def _wind_down(client: Any, stop: Any, pending: list[Any], futures: dict[Any, Job], grace: float,
               finished_late: Callable[[Job, FileResult], None] | None) -> None:
    """Tell the files still on workers to stop, wait up to ``grace`` seconds for them, record those that finished
    meanwhile, and cancel the rest."""
    if not pending:
        return
    try:
        if stop is not None:
            stop.set()
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and not all(f.done() for f in pending):
            time.sleep(POLL)
        for future in pending:
            if future.done() and finished_late is not None and (result := _row(future, futures[future])) is not None:
                finished_late(futures[future], result)
        client.cancel([f for f in pending if not f.done()])
    except Exception:  # noqa: BLE001 - a scheduler gone already: there is nothing left to stop
        pass


__all__ = ["ModelPlugin", "SchedulerError", "connect", "iter_distributed", "segment_on_worker"]
