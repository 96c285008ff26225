"""Where tasks run: in this process, in local worker processes, or on a Dask cluster.

:func:`run_tasks` runs ``fn(payload)`` for every payload and hands each result back in the
calling thread as it arrives (``on_result(index, result)``), with progress events from the
workers (``on_event(event)``) in between. The three places share that contract:

- **inline** (one worker, or one task): the calling process, one task after the other.
- **local processes** (``workers=N``): a ``ProcessPoolExecutor`` started with ``forkserver``
  (``spawn`` where there is none; never ``fork``: MediaPipe and the decode threads do not
  survive it). Workers ignore Ctrl-C; the caller terminates them. When a worker dies (out of
  memory, a crash in native code) the pool is rebuilt and its unfinished tasks run again, the
  ones that were running one at a time; a task that kills :data:`MAX_ATTEMPTS` workers on its
  own is given up (reported as failed), and the others go on.
- **Dask** (``scheduler`` address or ``scheduler_file``): tasks are submitted to an existing
  cluster (the ``[distributed]`` extra). The scheduler itself retries a task whose worker
  died (``distributed.scheduler.allowed-failures``, 3 by default). Events travel as Dask
  worker events (``log_event`` / ``subscribe_topic``); a cancelled run sets a Dask ``Event``
  that running tasks check between frames, so they stop instead of finishing.

Worker-side code reports through :func:`emit` (progress) and checks :func:`cancelled`; both
work the same in all three places.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import queue
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

from .._errors import InputError

MAX_ATTEMPTS = 3  # tries, alone in a pool, of a task whose local worker process died
DASK_CONNECT_TIMEOUT_S = 10
DISTRIBUTED_HINT = 'pip install "fuzzyemo[distributed]"'


@dataclass(frozen=True)
class Where:
    """Where to run: ``workers`` local processes (None: every core), or a Dask cluster."""

    workers: int | None = None
    scheduler: str | None = None
    scheduler_file: str | None = None

    def __post_init__(self) -> None:
        if self.workers is not None and (isinstance(self.workers, bool)
                                         or not isinstance(self.workers, int)
                                         or self.workers < 1):
            raise InputError(f"workers must be a positive integer, got {self.workers!r}")
        if self.scheduler and self.scheduler_file:
            raise InputError("give a Dask scheduler address or a scheduler file, not both")
        if self.scheduler_file is not None and not os.path.isfile(self.scheduler_file):
            raise InputError(f"{self.scheduler_file}: scheduler file not found")

    @property
    def dask(self) -> bool:
        return bool(self.scheduler or self.scheduler_file)

    def local_workers(self) -> int:
        return self.workers if self.workers is not None else (os.cpu_count() or 1)


class TaskFailed(Exception):
    """A task could not be completed (its worker died too often, or the cluster lost it)."""


# ----------------------------------------------------------------------------- worker side
# Where emit() sends events: per thread (a Dask worker may run several tasks at once), with
# the process's default for local worker processes.
_process_sink: Callable[[list], None] | None = None
_local = threading.local()


def emit(event: list) -> None:
    """Send a progress event (a list of str/int/float) to the caller; no-op without one."""
    sink = getattr(_local, "sink", None) or _process_sink
    if sink is not None:
        sink(event)


def cancelled() -> bool:
    """True once the caller has cancelled the run (checked by long tasks now and then)."""
    check = getattr(_local, "cancel_check", None)
    return bool(check is not None and check())


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _init_process(events: Any) -> None:
    """Local worker process start: Ctrl-C is the caller's business (it terminates us)."""
    global _process_sink
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _process_sink = events.put


def _dask_call(fn: Callable[[Any], Any], payload: Any, topic: str, cancel_name: str) -> Any:
    """Runs on a Dask worker: route events to the caller's topic, honour its cancel flag."""
    from distributed import Event, get_worker

    worker = get_worker()
    flag = Event(cancel_name)
    last = [0.0, False]

    def check() -> bool:  # one scheduler round trip per second at most
        now = time.monotonic()
        if not last[1] and now - last[0] >= 1.0:
            last[0] = now
            with contextlib.suppress(Exception):
                last[1] = bool(flag.is_set())
        return bool(last[1])

    _local.sink = lambda event: worker.log_event(topic, event)
    _local.cancel_check = check
    try:
        return fn(payload)
    finally:
        _local.sink = _local.cancel_check = None


# ----------------------------------------------------------------------------- caller side
def run_tasks(fn: Callable[[Any], Any], payloads: Sequence[Any], where: Where,
              on_result: Callable[[int, Any], None],
              on_event: Callable[[list], None] | None = None,
              label: str = "fuzzyemo", preload: Sequence[str] = ()) -> None:
    """Run ``fn(payload)`` for each payload where ``where`` says; results come back through
    ``on_result(index, result)`` in the calling thread, in completion order. An exception
    raised by ``fn`` propagates (after the other tasks are cancelled); a task lost with its
    worker too often comes back as a :class:`TaskFailed` result instead. Ctrl-C cancels
    every task and terminates local workers before re-raising.

    ``fn`` must be importable by name (a module-level function) for the worker processes.
    ``preload``: modules the local forkserver imports once before forking the workers (a
    worker then starts in ~0.1 s of CPU instead of ~1 s of imports each; on 2 cores that is
    the difference between 1.5x and 1.8x on a short batch).
    """
    handle = on_event or (lambda event: None)
    if not payloads:
        return
    if where.dask:
        _run_dask(fn, payloads, where, on_result, handle, label)
    elif min(where.local_workers(), len(payloads)) <= 1:
        _run_inline(fn, payloads, on_result, handle)
    else:
        _run_processes(fn, payloads, min(where.local_workers(), len(payloads)), on_result,
                       handle, preload)


def _run_inline(fn: Callable[[Any], Any], payloads: Sequence[Any],
                on_result: Callable[[int, Any], None], on_event: Callable[[list], None]) -> None:
    previous = getattr(_local, "sink", None)
    _local.sink = on_event
    try:
        for i, payload in enumerate(payloads):
            on_result(i, fn(payload))
    finally:
        _local.sink = previous


def _mp_context(preload: Sequence[str] = ()) -> multiprocessing.context.BaseContext:
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    ctx = multiprocessing.get_context("forkserver")
    if preload:  # only takes effect when this process starts its forkserver
        ctx.set_forkserver_preload(list(preload))
    return ctx


def _drain(q: Any, on_event: Callable[[list], None]) -> None:
    while True:
        try:
            event = q.get_nowait()
        except (queue.Empty, OSError, EOFError, ValueError):
            return
        on_event(event)


def _terminate(pool: ProcessPoolExecutor) -> None:
    """Stop a pool's workers now (running tasks included); Python 3.14 has this built in."""
    kill = getattr(pool, "terminate_workers", None)
    if kill is not None:
        with contextlib.suppress(Exception):
            kill()
            return
    for proc in list((getattr(pool, "_processes", None) or {}).values()):
        with contextlib.suppress(Exception):
            proc.terminate()
    for proc in list((getattr(pool, "_processes", None) or {}).values()):
        with contextlib.suppress(Exception):
            proc.join(5)
    pool.shutdown(wait=False, cancel_futures=True)


def _run_processes(fn: Callable[[Any], Any], payloads: Sequence[Any], n_workers: int,
                   on_result: Callable[[int, Any], None],
                   on_event: Callable[[list], None], preload: Sequence[str] = ()) -> None:
    """Tasks in a local process pool. When a worker dies the pool breaks and every task in
    flight fails with it, the culprit and the bystanders alike; so those that had started
    then run again one at a time ("suspects"), where a death is the task's own: a task is
    given up after MAX_ATTEMPTS deaths of its own."""
    ctx = _mp_context(preload)
    attempts = [0] * len(payloads)
    started: set[int] = set()
    todo = list(range(len(payloads)))
    suspects: list[int] = []

    def track(event: list) -> None:
        if event and event[0] == "start":
            started.add(int(event[1]))
        on_event(event)

    while todo or suspects:
        alone = bool(suspects)
        batch = [suspects.pop(0)] if alone else todo
        todo = [] if not alone else todo
        # A fresh queue for every pool: a worker killed while writing to one may leave its
        # lock held.
        events = ctx.Queue()
        pool = ProcessPoolExecutor(1 if alone else min(n_workers, len(batch)), mp_context=ctx,
                                   initializer=_init_process, initargs=(events,))
        running: dict[Future, int] = {}
        finished: set[int] = set()
        broken = False
        started.clear()
        try:
            try:
                for i in batch:
                    running[pool.submit(fn, payloads[i])] = i
            except BrokenProcessPool:
                broken = True
            while running and not broken:
                done, _ = wait(running, timeout=0.1, return_when=FIRST_COMPLETED)
                _drain(events, track)
                for fut in done:
                    i = running.pop(fut)
                    try:
                        result = fut.result()
                    except BrokenProcessPool:
                        broken = True
                        continue
                    finished.add(i)
                    on_result(i, result)
        except BaseException:
            _terminate(pool)
            raise
        if not broken:
            pool.shutdown(wait=True)
            continue
        _terminate(pool)
        _drain(events, track)
        unfinished = [i for i in batch if i not in finished]
        crashed = [i for i in unfinished if i in started]
        if not crashed:
            # No task had begun: the workers themselves cannot start (or import fn).
            raise RuntimeError("the worker processes died before running any task "
                               "(see the messages above); try --workers 1")
        todo += [i for i in unfinished if i not in started]
        if not alone:
            suspects += crashed
            continue
        (i,) = crashed
        attempts[i] += 1
        if attempts[i] >= MAX_ATTEMPTS:
            on_result(i, TaskFailed(f"a worker process died while running it ({attempts[i]} "
                                    "tries on its own: out of memory, or a crash in native "
                                    "code)"))
        else:
            suspects.insert(0, i)


def connect(where: Where) -> Any:
    """A ``distributed.Client`` for ``where``; one-line errors for the usual failures."""
    try:
        from distributed import Client
    except ImportError:
        raise InputError("running on a Dask cluster needs the [distributed] extra: "
                         + DISTRIBUTED_HINT) from None
    target = where.scheduler or where.scheduler_file
    try:
        if where.scheduler_file:
            return Client(scheduler_file=where.scheduler_file,
                          timeout=DASK_CONNECT_TIMEOUT_S, set_as_default=False)
        return Client(where.scheduler, timeout=DASK_CONNECT_TIMEOUT_S, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"cannot reach the Dask scheduler {target}: {first}") from None


def _run_dask(fn: Callable[[Any], Any], payloads: Sequence[Any], where: Where,
              on_result: Callable[[int, Any], None], on_event: Callable[[list], None],
              label: str) -> None:
    from distributed import Event, as_completed
    from distributed.client import FutureCancelledError

    client = connect(where)
    run = uuid.uuid4().hex[:12]
    topic, cancel_name = f"{label}-events-{run}", f"{label}-cancel-{run}"
    inbox: queue.SimpleQueue = queue.SimpleQueue()
    client.subscribe_topic(topic, lambda item: inbox.put(item[1]))
    flag = Event(cancel_name, client=client)
    futures = {}
    try:
        for i, payload in enumerate(payloads):
            fut = client.submit(_dask_call, fn, payload, topic, cancel_name,
                                key=f"{label}-{i}-{run}", pure=False)
            futures[fut.key] = (i, fut)
        pending = as_completed([f for _, f in futures.values()], loop=client.loop)
        while not pending.is_empty():
            batch = pending.next_batch(block=False) if pending.has_ready() else []
            if not batch:
                time.sleep(0.1)
            while True:
                try:
                    on_event(inbox.get_nowait())
                except queue.Empty:
                    break
            for fut in batch:
                i = futures[fut.key][0]
                try:
                    result = fut.result()
                except Exception as exc:
                    if _is_killed_worker(exc):
                        result = TaskFailed(
                            f"its Dask worker died while running it ({_allowed_failures()} "
                            "times: out of memory, or a crash in native code)")
                    elif isinstance(exc, FutureCancelledError):
                        result = TaskFailed("the Dask cluster cancelled it")
                    else:
                        raise
                on_result(i, result)
                fut.release()
        while True:  # the last events (the final frame counts)
            try:
                on_event(inbox.get_nowait())
            except queue.Empty:
                break
    except BaseException:
        with contextlib.suppress(Exception):
            flag.set()
        with contextlib.suppress(Exception):
            client.cancel([f for _, f in futures.values()], force=True)
        raise
    finally:
        with contextlib.suppress(Exception):
            client.unsubscribe_topic(topic)
        with contextlib.suppress(Exception):
            client.close(timeout=5)


def _is_killed_worker(exc: BaseException) -> bool:
    return type(exc).__name__ == "KilledWorker"


def _allowed_failures() -> int:
    try:
        import dask

        return int(dask.config.get("distributed.scheduler.allowed-failures"))
    except Exception:  # noqa: BLE001 - only for the message
        return 3
