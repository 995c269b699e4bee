"""Where batch jobs run: in this process, in a pool of local worker processes, or on Ray actors
(``rayworkers``). One scheduler serves every pool:

- each worker takes one job at a time, and the next job with the photo it already set up
  (photo reuse needs that affinity: jobs handed out in file order would scatter a photo's
  jobs over every worker);
- a worker that dies under a job (SIGKILL, out of memory, a crash, a lost node) is replaced
  by a fresh one, the job's partial file is removed and the job goes back to the queue, up
  to ``retries`` times; a job that fails by its own input returns its failure and is never
  retried;
- an interrupt stops every worker and removes the partial files of the jobs in flight.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
from collections import OrderedDict, deque
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import Protocol

from talkinghead import interrupts
from talkinghead.batch import Job, JobResult, remove_partial, result_of, run_job, setup_key

Done = Callable[[JobResult], None]


class Worker(Protocol):
    """One process that renders jobs, one at a time."""

    def submit(self, job: Job, reuse: bool) -> Future[JobResult]: ...

    def died(self, error: BaseException) -> bool:
        """Whether ``error`` (raised by a submitted job's future) says the process died."""
        ...

    def replace(self) -> None:
        """A fresh process in place of the dead one (started lazily or at once)."""
        ...

    def stop(self) -> None:
        """Stop now, mid-job if need be (an interrupt)."""
        ...

    def close(self) -> None:
        """Stop after the last job (the batch is over)."""
        ...


class Engine(Protocol):
    def run(self, jobs: list[Job], done: Done, *, retries: int, reuse: bool) -> None:
        """Run ``jobs``, calling ``done`` with each result as it comes."""
        ...


class InProcess:
    """Jobs one after the other in this process (``--workers 1``)."""

    def run(self, jobs: list[Job], done: Done, *, retries: int, reuse: bool) -> None:
        for job in jobs:
            done(run_job(job, reuse))


class JobQueue:
    """Jobs grouped by photo setup (``batch.setup_key``), groups in the order of their first
    job. ``take`` prefers the worker's own group, then a group no busy worker holds."""

    def __init__(self, jobs: list[Job]) -> None:
        self.groups: OrderedDict[str, deque[Job]] = OrderedDict()
        self.keys: dict[int, str] = {}
        for job in jobs:
            key = self.keys[job.number] = setup_key(job)
            self.groups.setdefault(key, deque()).append(job)

    def __bool__(self) -> bool:
        return bool(self.groups)

    def take(self, own: str | None, held: set[str]) -> Job:
        key = own if own in self.groups else next(
            (k for k in self.groups if k not in held), next(iter(self.groups)))
        group = self.groups[key]
        job = group.popleft()
        if not group:
            del self.groups[key]
        return job

    def put_back(self, job: Job) -> None:
        """A job to retry: first of its group."""
        key = self.keys[job.number]
        self.groups.setdefault(key, deque()).appendleft(job)


def schedule(workers: list[Worker], jobs: list[Job], done: Done, *, retries: int,
             reuse: bool) -> None:
    """Run ``jobs`` on ``workers`` (see the module's docstring)."""
    queue = JobQueue(jobs)
    attempts: dict[int, int] = {}
    holds: dict[int, str] = {}  # worker index -> the setup key of its last job
    busy: dict[Future[JobResult], tuple[int, Job]] = {}
    free = list(range(len(workers)))
    try:
        while queue or busy:
            while free and queue:
                index = free.pop(0)
                held = {holds[i] for i, _ in busy.values() if i in holds}
                job = queue.take(holds.get(index), held)
                holds[index] = queue.keys[job.number]
                attempts[job.number] = attempts.get(job.number, 0) + 1
                busy[workers[index].submit(job, reuse)] = index, job
            finished, _ = wait(list(busy), return_when=FIRST_COMPLETED)
            for future in finished:
                index, job = busy.pop(future)
                free.append(index)
                tries = attempts[job.number]
                try:
                    result = future.result()
                except KeyboardInterrupt:  # the worker was interrupted on its own (terminal ^C)
                    raise
                except BaseException as exc:
                    if not workers[index].died(exc):
                        done(result_of(job, "failed", exit_code=1, attempts=tries,
                                       error=f"internal error: {type(exc).__name__}: {exc}"))
                        continue
                    remove_partial(job.output)
                    workers[index].replace()
                    holds.pop(index, None)
                    if tries <= retries:
                        queue.put_back(job)
                    else:
                        done(result_of(job, "failed", exit_code=1, attempts=tries,
                                       error=f"{job.output}: the worker died under this job "
                                             f"{tries} times (killed, out of memory or crashed)"))
                    continue
                done(dataclasses.replace(result, attempts=tries))
    except BaseException:
        for worker in workers:
            with contextlib.suppress(Exception):
                worker.stop()
        for _, job in busy.values():
            remove_partial(job.output)
        raise
    for worker in workers:
        worker.close()


_stopping = False  # in a local worker: an interrupt came, so start no further job


def _interrupt(signum: int, frame: object) -> None:
    """In a worker, mid-job: the first SIGINT or SIGTERM interrupts the job (its partial file
    is removed on the way out); later ones are ignored so that the clean-up finishes."""
    global _stopping
    _stopping = True
    interrupts.note()  # kept, should Python drop the exception below (interrupts.py)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise KeyboardInterrupt


def _worker_init(threads: int) -> None:
    """Once per worker process: share the cores, load the models, ignore Ctrl-C while idle."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    interrupts.remember_dropped()
    import torch

    torch.set_num_threads(threads)
    from talkinghead import face

    face.warm_up()


def _worker_job(job: Job, reuse: bool) -> JobResult:
    if _stopping:  # a job sent to this worker after the interrupt came
        raise KeyboardInterrupt
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        return run_job(job, reuse)
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


class LocalWorker:
    """One spawned process (a one-process ProcessPoolExecutor, so that a death breaks this
    worker alone and the scheduler chooses which worker takes which job)."""

    def __init__(self, threads: int) -> None:
        self.threads = threads
        self._pool = self._new_pool()

    def _new_pool(self) -> ProcessPoolExecutor:
        import multiprocessing

        return ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_worker_init, initargs=(self.threads,))

    def submit(self, job: Job, reuse: bool) -> Future[JobResult]:
        return self._pool.submit(_worker_job, job, reuse)

    def died(self, error: BaseException) -> bool:
        from concurrent.futures.process import BrokenProcessPool

        return isinstance(error, BrokenProcessPool)

    def replace(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._pool = self._new_pool()

    def pids(self) -> list[int]:
        processes = getattr(self._pool, "_processes", None) or {}
        return [p.pid for p in list(processes.values()) if p.pid is not None]

    def stop(self) -> None:
        for pid in self.pids():
            with contextlib.suppress(OSError):  # a busy worker cleans up its partial file
                os.kill(pid, signal.SIGTERM)
        self._pool.shutdown(wait=True, cancel_futures=True)

    def close(self) -> None:
        self._pool.shutdown(wait=True)


class LocalPool:
    """``workers`` local processes, each with its share of the CPU cores."""

    def __init__(self, workers: int) -> None:
        self.workers = workers

    def run(self, jobs: list[Job], done: Done, *, retries: int, reuse: bool) -> None:
        count = min(self.workers, len(jobs))
        threads = max(1, (os.cpu_count() or 1) // count)
        schedule([LocalWorker(threads) for _ in range(count)], jobs, done, retries=retries,
                 reuse=reuse)
