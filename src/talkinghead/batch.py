"""Batch rendering: many jobs, parallel workers, failures isolated, restartable.

A jobs file is CSV (a header row, then one job per row) or JSON Lines (one object per line),
or either on standard input. Each job names ``photo``, ``audio`` and optionally ``output``
plus any ``render`` option by its long name (``seed``, ``fps``, ``full-frame``,
``watermark``, ...). Relative paths are relative to the jobs file's folder. This module turns
rows into jobs (with a parser the CLI supplies, so that a job's options mean exactly what
``render``'s do) and runs them:

- one failed job never stops the others: its error becomes its result;
- ``workers > 1`` runs jobs in that many processes, each loading its models once;
- ``resume`` skips a job whose output exists and carries the settings hash the job would
  write (see provenance): same inputs' bytes, same settings, same version;
- an interrupt stops every worker; each removes its partial file, as ``render`` does.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import signal
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from talkinghead.config import RenderConfig
from talkinghead.errors import InputError, TalkingHeadError

Row = dict[str, Any]
Status = Literal["ok", "skipped", "failed"]


@dataclass(frozen=True)
class Job:
    number: int  # 1-based: the job's place in the jobs file (blank and comment lines skipped)
    photo: Path
    audio: Path
    output: Path
    config: RenderConfig
    force: bool = False


@dataclass(frozen=True)
class JobResult:
    number: int
    status: Status
    photo: str
    audio: str
    output: str
    error: str | None = None  # one line naming the file and the problem
    exit_code: int = 0  # what `talkinghead render` would have exited with
    seconds: float = 0.0
    frames: int = 0
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class BadRow:
    """A row that could not become a job: it fails alone, the others still run."""

    number: int
    photo: str
    audio: str
    output: str
    error: str


def read_rows(source: Path | str, text: str | None = None) -> Iterator[tuple[int, Row | str]]:
    """(number, row) for each job in a jobs file; the row is a dict, or an error message for a
    line that is not valid JSON. ``text`` is the file's content when it came from stdin."""
    name = str(source)
    if text is None:
        path = Path(source)
        if not path.is_file():
            raise InputError(path, "jobs file not found" if not path.exists() else "not a file")
        try:
            text = path.read_text(encoding="utf-8-sig")
        except UnicodeDecodeError:
            raise InputError(path, "jobs file is not UTF-8 text (CSV or JSON Lines)") from None
        except OSError as exc:
            raise InputError(path, f"cannot read jobs file ({exc.strerror})") from None
    text = text.lstrip("\ufeff")
    if "\x00" in text:
        raise InputError(name, "jobs file is not text (CSV or JSON Lines)")
    if not text.strip():
        raise InputError(name, "jobs file holds no jobs")
    if text.lstrip().startswith("{") or name.endswith((".jsonl", ".ndjson")):
        yield from _json_lines(text)
    else:
        yield from _csv_rows(name, text)


def _json_lines(text: str) -> Iterator[tuple[int, Row | str]]:
    lines = (line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#"))
    for number, line in enumerate(lines, start=1):
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            yield number, f"not valid JSON ({exc.msg})"
            continue
        if not isinstance(row, dict):
            yield number, "a job must be a JSON object"
            continue
        yield number, row


def _csv_rows(name: str, text: str) -> Iterator[tuple[int, Row | str]]:
    try:
        yield from _csv_records(name, text)
    except csv.Error as exc:
        raise InputError(name, f"not valid CSV ({exc})") from None


def _csv_records(name: str, text: str) -> Iterator[tuple[int, Row | str]]:
    reader = csv.DictReader(io.StringIO(text, newline=""), skipinitialspace=True)
    header = [h.strip().lower() for h in reader.fieldnames or []]
    if "photo" not in header or "audio" not in header:
        raise InputError(name, "jobs file needs a CSV header with photo and audio columns "
                               "(or JSON Lines: one object per line)")
    reader.fieldnames = header
    number = 0
    for row in reader:
        values = {k: v.strip() for k, v in row.items()
                  if isinstance(v, str) and k is not None and v.strip() != ""}
        if not values and None not in row:
            continue
        number += 1
        yield number, "more values than header columns" if None in row else values


def make_jobs(rows: Iterable[tuple[int, Row | str]], name: str, base: Path, out_dir: Path,
              parse: Callable[[Row, Path, Path], Job]) -> list[Job | BadRow]:
    """Jobs from the rows of jobs file ``name``; a row that ``parse`` refuses (InputError)
    becomes a BadRow. Two jobs writing one output: the later one is refused."""
    jobs: list[Job | BadRow] = []
    outputs: dict[Path, int] = {}
    for number, row in rows:
        names = row if isinstance(row, dict) else {}
        described = {k: str(names.get(k, "")) for k in ("photo", "audio", "output")}
        if isinstance(row, str):
            jobs.append(BadRow(number, error=f"{name}: job {number}: {row}", **described))
            continue
        try:
            job = replace(parse(row, base, out_dir), number=number)
        except InputError as exc:
            jobs.append(BadRow(number, error=f"{name}: job {number}: {exc}", **described))
            continue
        if job.output in outputs:
            jobs.append(BadRow(number, photo=str(job.photo), audio=str(job.audio),
                               output=str(job.output),
                               error=f"{job.output}: same output as job {outputs[job.output]}"))
            continue
        outputs[job.output] = number
        jobs.append(job)
    return jobs


def already_done(job: Job) -> bool:
    """Whether ``job.output`` exists and was made by talkinghead from the same inputs and
    settings (its settings hash matches)."""
    from talkinghead.mux import probe
    from talkinghead.provenance import settings_hash, settings_of

    if not job.output.is_file():
        return False
    try:
        recorded = settings_of(probe(job.output).metadata)
        return recorded is not None and recorded == settings_hash(job.photo, job.audio, job.config)
    except (OSError, TalkingHeadError):
        return False


def _result(job: Job, status: Status, **extra: Any) -> JobResult:
    return JobResult(number=job.number, status=status, photo=str(job.photo), audio=str(job.audio),
                     output=str(job.output), **extra)


def run_job(job: Job) -> JobResult:
    """Render one job; every failure but an interrupt becomes the result."""
    from talkinghead.api import render

    warnings: list[str] = []
    started = time.perf_counter()
    try:
        result = render(job.photo, job.audio, job.output, config=job.config, force=job.force,
                        warn=warnings.append)
    except TalkingHeadError as exc:  # InputError included: its exit code says which
        return _result(job, "failed", error=str(exc), exit_code=exc.exit_code,
                       seconds=time.perf_counter() - started, warnings=warnings)
    except Exception as exc:  # a bug in one job must not stop the others
        return _result(job, "failed", error=f"internal error: {type(exc).__name__}: {exc}",
                       exit_code=1, seconds=time.perf_counter() - started, warnings=warnings)
    return _result(job, "ok", seconds=result.seconds, frames=result.frames, warnings=warnings)


_stopping = False  # in a worker: an interrupt came, so start no further job


def _interrupt(signum: int, frame: object) -> None:
    """In a worker, mid-job: the first SIGINT or SIGTERM interrupts the job (its partial file
    is removed on the way out); later ones are ignored so that the clean-up finishes."""
    global _stopping
    _stopping = True
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise KeyboardInterrupt


def _worker_init(threads: int) -> None:
    """Once per worker process: share the cores, load the models, ignore Ctrl-C while idle."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    import torch

    torch.set_num_threads(threads)
    from talkinghead import face

    face.warm_up()


def _worker_job(job: Job) -> JobResult:
    if _stopping:  # jobs already queued to this worker when the interrupt came
        raise KeyboardInterrupt
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        return run_job(job)
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def run_jobs(jobs: list[Job | BadRow], *, workers: int = 1, resume: bool = False,
             on_result: Callable[[JobResult], None] | None = None) -> list[JobResult]:
    """Run every job; results in job order. ``on_result`` hears each as it finishes.
    KeyboardInterrupt propagates after every worker has stopped and cleaned up."""
    results: dict[int, JobResult] = {}

    def done(result: JobResult) -> None:
        results[result.number] = result
        if on_result:
            on_result(result)

    pending: list[Job] = []
    for job in jobs:
        if isinstance(job, BadRow):
            done(JobResult(number=job.number, status="failed", photo=job.photo, audio=job.audio,
                           output=job.output, error=job.error, exit_code=2))
        elif resume and already_done(job):
            done(_result(job, "skipped"))
        elif resume and job.output.exists() and not job.force:
            done(_result(job, "failed", exit_code=2, error=f"{job.output}: exists, made from other "
                         "inputs or settings (use --force to overwrite)"))
        else:
            pending.append(job)
    if workers <= 1 or len(pending) <= 1:
        for job in pending:
            done(run_job(job))
    else:
        _run_parallel(pending, min(workers, len(pending)), done)
    return [results[n] for n in sorted(results)]


def _run_parallel(jobs: list[Job], workers: int, done: Callable[[JobResult], None]) -> None:
    import multiprocessing

    threads = max(1, (os.cpu_count() or 1) // workers)
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_worker_init, initargs=(threads,))
    futures: dict[Future[JobResult], Job] = {pool.submit(_worker_job, job): job for job in jobs}
    try:
        remaining = set(futures)
        while remaining:
            finished, remaining = wait(remaining, return_when=FIRST_COMPLETED)
            for future in finished:
                job = futures[future]
                try:
                    done(future.result())
                except KeyboardInterrupt:  # the worker was interrupted on its own (terminal ^C)
                    raise
                except Exception as exc:  # the worker died (killed, out of memory, crashed)
                    done(_result(job, "failed", exit_code=1,
                                 error=f"{job.output}: worker process died ({type(exc).__name__})"))
    except BaseException:
        for process in list(getattr(pool, "_processes", {}).values()):
            with contextlib.suppress(OSError):  # busy workers clean up their partial file
                os.kill(process.pid, signal.SIGTERM)
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


def summary_counts(results: list[JobResult]) -> dict[str, int]:
    counts = {"ok": 0, "skipped": 0, "failed": 0}
    for result in results:
        counts[result.status] += 1
    return counts
