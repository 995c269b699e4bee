"""Batch rendering: many jobs, parallel workers, failures isolated, restartable.

A jobs file is CSV (a header row, then one job per row) or JSON Lines (one object per line),
or either on standard input. Each job names ``photo``, ``audio`` and optionally ``output``
plus any ``render`` option by its long name (``seed``, ``fps``, ``full-frame``,
``watermark``, ...). Relative paths are relative to the jobs file's folder. This module turns
rows into jobs (with a parser the CLI supplies, so that a job's options mean exactly what
``render``'s do) and runs them:

- one failed job never stops the others: its error becomes its result, once;
- ``workers > 1`` runs jobs in that many processes, and ``--ray`` on Ray actors (``workers``
  and ``rayworkers``): each worker loads its models once and keeps the ``Avatar`` of its
  last photos, so jobs sharing a photo (and the settings that shape its setup) reuse its
  face and encode work; a worker that dies is replaced and its job retried;
- ``resume`` skips a job whose output exists and carries the settings hash the job would
  write (see provenance): same inputs' bytes, same settings, same version;
- an interrupt stops every worker; no partial file is left (``render`` writes atomically,
  and the partial file of a job whose worker died is removed).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import socket
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from talkinghead.config import RenderConfig
from talkinghead.errors import InputError, TalkingHeadError

if TYPE_CHECKING:
    from talkinghead.api import Avatar
    from talkinghead.workers import Engine

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
    attempts: int = 1  # workers that took the job: more than 1 after a worker died under it
    worker: str = ""  # host:pid of the process that ran the last attempt

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


def result_of(job: Job, status: Status, **extra: Any) -> JobResult:
    return JobResult(number=job.number, status=status, photo=str(job.photo), audio=str(job.audio),
                     output=str(job.output), **extra)


def setup_key(job: Job) -> str:
    """What the photo's setup (load, face, encode, decoder) depends on: the photo's bytes
    (SHA-256) and the settings that shape it. Jobs with one key can share an Avatar."""
    digest = hashlib.sha256()
    try:
        with open(job.photo, "rb") as file:
            for block in iter(lambda: file.read(1 << 20), b""):
                digest.update(block)
    except OSError:
        return f"unreadable:{job.photo}"  # the job fails on its own, with render's message
    c = job.config
    return (f"{digest.hexdigest()}:{c.size}:{c.full_frame}:{c.max_side}:{c.face_index}:"
            f"{c.min_face_px}:{c.device}:{c.mouth}")


AVATARS_KEPT = 4  # photo setups a worker keeps (each holds its canvas and decoder tensors)
_avatars: OrderedDict[str, tuple[Avatar, list[str]]] = OrderedDict()  # per process, newest last


def _avatar(job: Job, warnings: list[str]) -> Avatar:
    """The Avatar of the job's photo and setup settings: made once, kept for the next jobs
    (least recently used dropped first). Warnings of its setup are repeated for every job."""
    from talkinghead.api import Avatar

    key = setup_key(job)
    if key in _avatars:
        _avatars.move_to_end(key)
        avatar, setup_warnings = _avatars[key]
        warnings.extend(setup_warnings)
        return avatar
    setup_warnings: list[str] = []
    avatar = Avatar.from_photo(job.photo, config=job.config, warn=setup_warnings.append)
    warnings.extend(setup_warnings)
    _avatars[key] = avatar, setup_warnings
    while len(_avatars) > AVATARS_KEPT:
        _avatars.popitem(last=False)
    return avatar


def run_job(job: Job, reuse: bool = True) -> JobResult:
    """Render one job; every failure but an interrupt becomes the result. ``reuse``: through
    this process's Avatar of the job's photo (the same frames as a fresh render)."""
    from talkinghead.api import render

    warnings: list[str] = []
    started = time.perf_counter()
    worker = f"{socket.gethostname()}:{os.getpid()}"
    try:
        if reuse:
            result = _avatar(job, warnings).render(job.audio, job.output, force=job.force,
                                                   config=job.config)
        else:
            result = render(job.photo, job.audio, job.output, config=job.config, force=job.force,
                            warn=warnings.append)
    except TalkingHeadError as exc:  # InputError included: its exit code says which
        return result_of(job, "failed", error=str(exc), exit_code=exc.exit_code,
                         seconds=time.perf_counter() - started, warnings=warnings, worker=worker)
    except Exception as exc:  # a bug in one job must not stop the others
        return result_of(job, "failed", error=f"internal error: {type(exc).__name__}: {exc}",
                         exit_code=1, seconds=time.perf_counter() - started, warnings=warnings,
                         worker=worker)
    return result_of(job, "ok", seconds=time.perf_counter() - started, frames=result.frames,
                     warnings=warnings, worker=worker)


def remove_partial(output: Path) -> None:
    """Delete the partial files a render of ``output`` left when its process was killed
    (``.<stem>.XXXXXXXX.part.mp4`` beside it; see mux). Call it only while no process renders
    ``output``: a live render's partial file has the same form."""
    pattern = re.compile(rf"\.{re.escape(output.stem)}\.[A-Za-z0-9_]{{8}}\.part\.mp4")
    try:
        for path in output.parent.iterdir():
            if pattern.fullmatch(path.name):
                path.unlink(missing_ok=True)
    except OSError:
        pass  # the folder is gone or unreadable: nothing of ours to remove


def run_jobs(jobs: list[Job | BadRow], *, workers: int = 1, resume: bool = False,
             retries: int = 2, reuse: bool = True, engine: Engine | None = None,
             on_result: Callable[[JobResult], None] | None = None) -> list[JobResult]:
    """Run every job; results in job order. ``on_result`` hears each as it finishes.

    ``engine`` runs the jobs that need rendering (default: this process for one worker,
    else a pool of ``workers`` processes; ``rayworkers.RayEngine`` for Ray); a job whose
    worker dies is retried up to ``retries`` times. ``reuse``: jobs sharing a photo share
    its setup within a worker. KeyboardInterrupt propagates after every worker has stopped
    and no partial file is left."""
    from talkinghead.workers import InProcess, LocalPool

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
            done(result_of(job, "skipped"))
        elif resume and job.output.exists() and not job.force:
            done(result_of(job, "failed", exit_code=2, error=f"{job.output}: exists, made from "
                           "other inputs or settings (use --force to overwrite)"))
        else:
            pending.append(job)
    if pending:
        if engine is None:
            engine = InProcess() if workers <= 1 or len(pending) <= 1 else LocalPool(workers)
        engine.run(pending, done, retries=retries, reuse=reuse)
    return [results[n] for n in sorted(results)]


def summary_counts(results: list[JobResult]) -> dict[str, int]:
    counts = {"ok": 0, "skipped": 0, "failed": 0}
    for result in results:
        counts[result.status] += 1
    return counts
