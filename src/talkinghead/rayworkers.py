"""Batch jobs on a Ray cluster (``talkinghead batch JOBS --ray [ADDRESS]``), an optional extra.

Plain actors, one per worker: each loads the models once and takes jobs one at a time from
``workers.schedule``, the scheduler of the local pool, so both engines hand out jobs, keep
a photo's jobs on the worker that set it up, retry a job whose worker died and report the
same results. Actors are made with ``max_restarts=0``: the scheduler, not Ray, replaces a
dead one, so that it can count the job's attempts (``--retries``), remove the dead attempt's
partial file first, and never retry a job that failed by its own input (that job returns
its failure; only a dead process raises). Inputs and outputs must be paths that every node
sees (a shared filesystem).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import re
import socket
from concurrent.futures import Future
from typing import Any

from talkinghead.batch import Job, JobResult, run_job
from talkinghead.errors import InputError
from talkinghead.workers import Done, schedule

INSTALL = "pip install 'talkinghead[ray]'"


def import_ray() -> Any:
    """The ray module, or one line saying how to install it."""
    try:
        import ray
    except ImportError:
        raise InputError(None, f"--ray needs Ray, an optional extra: {INSTALL}") from None
    return ray


class BatchWorker:
    """The actor: the models loaded once, then jobs one at a time. Its Avatars (photo reuse)
    live in the process, as in a local worker."""

    def __init__(self, threads: int) -> None:
        import torch

        torch.set_num_threads(threads)
        from talkinghead import face

        face.warm_up()

    def run(self, job: Job, reuse: bool) -> JobResult:
        return run_job(job, reuse)


class RayWorker:
    """One actor behind the scheduler's Worker interface."""

    def __init__(self, actor_class: Any, threads: int) -> None:
        self._class, self._threads = actor_class, threads
        self._actor = actor_class.remote(threads)

    def submit(self, job: Job, reuse: bool) -> Future[JobResult]:
        return self._actor.run.remote(job, reuse).future()

    def died(self, error: BaseException) -> bool:
        from ray.exceptions import RayActorError

        return isinstance(error, RayActorError)  # ActorDiedError, ActorUnavailableError

    def replace(self) -> None:
        self.stop()
        self._actor = self._class.remote(self._threads)

    def stop(self) -> None:
        import ray

        with contextlib.suppress(Exception):  # already dead
            ray.kill(self._actor, no_restart=True)

    def close(self) -> None:
        self.stop()  # its resources go back to the cluster now, not when the driver leaves


def _check_reachable(address: str) -> None:
    """A quick one-line refusal for a host:port where nothing listens (Ray itself retries
    for minutes)."""
    match = re.fullmatch(r"(?:ray://)?(\[[^\]]+\]|[^:/]+):(\d+)", address)
    if not match:
        return
    host, port = match.group(1).strip("[]"), int(match.group(2))
    try:
        socket.create_connection((host, port), timeout=10).close()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise InputError(None, f"--ray {address}: no Ray cluster answers there ({reason})") from None


class RayEngine:
    """Jobs on Ray actors. ``address``: None or ``local`` starts a Ray on this machine,
    ``auto`` joins the one this machine belongs to, ``host:port`` or ``ray://host:port`` a
    remote head. ``workers``: how many actors (default: as many as the cluster has room for
    now, at ``cpus``/``gpus`` each; give it for an autoscaling cluster)."""

    def __init__(self, address: str | None = None, *, cpus: float = 1.0, gpus: float = 0.0,
                 workers: int | None = None) -> None:
        self.address = None if address in (None, "local") else address
        self.cpus, self.gpus, self.workers = cpus, gpus, workers
        self._ray: Any = None

    def start(self) -> None:
        """Start or join Ray and check there is room for a worker: every problem one line."""
        ray = import_ray()
        if self.address is None:
            os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # offline: no reports home
        else:
            _check_reachable(self.address)
        try:
            ray.init(address=self.address, include_dashboard=False if self.address is None else None,
                     log_to_driver=False, logging_level=logging.ERROR)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise InputError(None, f"--ray {self.address or 'local'}: cannot start or join Ray "
                                   f"({reason})") from None
        self._ray = ray
        if self.workers is None:
            self.workers = self._room()

    def _room(self) -> int:
        """Actors that fit on the cluster's live nodes now."""
        nodes = [n.get("Resources", {}) for n in self._ray.nodes() if n.get("Alive")]
        fits = 0
        for resources in nodes:
            by_cpu = math.floor(resources.get("CPU", 0) / self.cpus + 1e-9) if self.cpus else 1 << 20
            by_gpu = math.floor(resources.get("GPU", 0) / self.gpus + 1e-9) if self.gpus else 1 << 20
            fits += min(by_cpu, by_gpu)
        if fits == 0:
            cpus = sum(r.get("CPU", 0) for r in nodes)
            gpus = sum(r.get("GPU", 0) for r in nodes)
            raise InputError(None, f"--ray: no node has room for a worker of {self.cpus:g} CPUs and "
                                   f"{self.gpus:g} GPUs (the cluster has {cpus:g} CPUs, {gpus:g} GPUs "
                                   "now; for an autoscaling cluster give --workers)")
        return fits

    def run(self, jobs: list[Job], done: Done, *, retries: int, reuse: bool) -> None:
        if self._ray is None:
            self.start()
        ray = self._ray
        actor = ray.remote(BatchWorker).options(num_cpus=self.cpus, num_gpus=self.gpus,
                                                max_restarts=0, max_task_retries=0)
        threads = max(1, math.floor(self.cpus))
        count = min(self.workers or 1, len(jobs))
        schedule([RayWorker(actor, threads) for _ in range(count)], jobs, done, retries=retries,
                 reuse=reuse)

    def close(self) -> None:
        """Leave Ray (a Ray this engine started stops)."""
        if self._ray is not None:
            self._ray.shutdown()
            self._ray = None
