"""``talkinghead batch``: many renders from a jobs file, each row parsed as ``render``'s
command line (same names, types and defaults; the config checks the ranges), on local worker
processes or on Ray (``--ray``)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
from pathlib import Path
from typing import Annotated, Literal

import typer

from talkinghead.cli.common import EXIT_INTERNAL, EXIT_INTERRUPTED, DebugOption, app, guard, stderr

TRUE, FALSE = {"1", "true", "yes", "on", "y"}, {"0", "false", "no", "off", "n"}
NOT_JOB_OPTIONS = {"quiet", "json", "debug", "help", "output"}


def job_parser(force_all: bool, device: str | None):
    """A function turning one jobs-file row into a Job by parsing it exactly as ``render``'s
    command line would be parsed (same names, types and defaults; the config's ranges)."""
    from typer.main import get_command

    from talkinghead.batch import Job
    from talkinghead.cli.video import api_options
    from talkinghead.config import RenderConfig
    from talkinghead.errors import InputError

    command = get_command(app).commands["render"]  # type: ignore[attr-defined]
    options = {opt[2:]: param for param in command.params for opt in param.opts
               if opt.startswith("--")}

    def parse(row: dict, base: Path, out_dir: Path) -> Job:
        row = {str(k).strip().lower().replace("_", "-"): v for k, v in row.items()}
        for needed in ("photo", "audio"):
            if not str(row.get(needed, "")).strip():
                raise InputError(None, f"no {needed} given")
        photo, audio = (base / Path(str(row.pop(k))).expanduser() for k in ("photo", "audio"))
        output = row.pop("output", None) or row.pop("o", None)
        args = [str(photo), str(audio)]
        if device and "device" not in row:
            args += ["--device", device]
        for name, value in row.items():
            if name in NOT_JOB_OPTIONS or name not in options:
                raise InputError(None, f"'{name}' is not a render option")
            if getattr(options[name], "is_flag", False):
                text = str(value).strip().lower()
                if text not in TRUE | FALSE:
                    raise InputError(None, f"{name}: expected true or false, got {value!r}")
                args += [f"--{name}"] if text in TRUE else []
            elif value is not None:
                args += [f"--{name}", str(value)]
        try:
            with command.make_context("render", args) as ctx:
                params = dict(ctx.params)
        except Exception as exc:  # click's usage errors: a bad value for its type
            message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
            raise InputError(None, message) from None
        config = RenderConfig().with_options(**api_options(params))
        out = (base / Path(str(output)).expanduser() if output
               else out_dir / f"{photo.stem}_{audio.stem}.mp4")
        return Job(number=0, photo=photo, audio=audio, output=out.absolute(), config=config,
                   force=params["force"] or force_all)

    return parse


def ray_address_optional(argv: list[str]) -> list[str]:
    """``--ray`` takes an optional ADDRESS, which Typer cannot express: a bare ``--ray`` (last,
    or before an option or a word that is no address) becomes ``--ray local``."""
    if "batch" not in argv:
        return argv
    out: list[str] = []
    for i, arg in enumerate(argv):
        out.append(arg)
        if arg == "--":
            return out + argv[i + 1:]
        if arg == "--ray":
            following = argv[i + 1] if i + 1 < len(argv) else ""
            address = following in ("auto", "local") or following.startswith("ray://") or bool(
                re.fullmatch(r"(\[[^\]]+\]|[\w.-]+):\d+", following))
            if not address:
                out.append("local")
    return out


class JobsProgress:
    """One Rich bar over the jobs and one line per finished job, on stderr."""

    def __init__(self, total: int, quiet: bool) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.console = Console(stderr=True, highlight=False)
        self._bars = None if quiet else Progress(
            TextColumn("{task.description:<22}"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), console=self.console, transient=False)
        self._task = self._bars.add_task("Rendering jobs", total=total) if self._bars else None

    def __enter__(self) -> JobsProgress:
        if self._bars:
            self._bars.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bars:
            self._bars.stop()

    def finished(self, line: str, failed: bool) -> None:
        """Count a finished job and print its line (always for a failure, even with --quiet)."""
        if self._bars is not None and self._task is not None:
            self._bars.advance(self._task)
        if self._bars is not None or failed:
            self.console.print(line, markup=False, soft_wrap=True)


@app.command()
def batch(
    jobs: Annotated[str, typer.Argument(
        metavar="JOBS",
        help="Jobs file: CSV with a header (photo,audio,output,...) or JSON Lines, or - for stdin.",
        show_default=False)],
    workers: Annotated[int | None, typer.Option(
        help="Parallel workers (default: 1; with --ray, as many as the cluster has room for).",
        min=1, max=4096, show_default=False)] = None,
    ray: Annotated[str | None, typer.Option(
        "--ray", metavar="[ADDRESS]", show_default=False,
        help="Run on Ray: no ADDRESS starts a local Ray, 'auto' joins this machine's cluster, "
             "or host:port / ray://host:port. Needs: pip install 'talkinghead[ray]'.")] = None,
    cpus_per_worker: Annotated[float, typer.Option(
        min=0.01, max=1024, help="CPUs each Ray worker reserves (and its torch threads).")] = 1.0,
    gpus_per_worker: Annotated[float, typer.Option(
        min=0, max=64, help="GPUs each Ray worker reserves; fractions share a GPU.")] = 0.0,
    retries: Annotated[int, typer.Option(
        min=0, max=100, help="Times a job is retried when its worker dies under it.")] = 2,
    resume: Annotated[bool, typer.Option(
        "--resume", help="Skip jobs whose output exists with the same inputs and settings.")] = False,
    out_dir: Annotated[Path | None, typer.Option(
        metavar="DIR", help="Folder for jobs without an output (default: the jobs file's folder).",
        show_default=False)] = None,
    device: Annotated[Literal["auto", "cpu", "cuda"] | None, typer.Option(
        help="Where to compute, for jobs that do not say.", show_default=False)] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite existing outputs.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress or summary.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON line per job.")] = False,
    debug: DebugOption = False,
) -> None:
    """Render many jobs from a CSV or JSON Lines file.

    Each job is a row with photo, audio, optional output and any render option by its long
    name (seed, fps, full-frame, face, watermark, ...). Relative paths are relative to the
    jobs file. A failed job never stops the others; a job whose worker dies (killed, out of
    memory) is retried on a fresh worker. With --ray, every node must see the same paths.

    Exit code: 0 all jobs succeeded or were skipped, 1 some job failed, 2 the jobs file
    cannot be used, 130 interrupted (after a summary of what finished).
    """
    from talkinghead.batch import make_jobs, read_rows, run_jobs

    if ray is None and (cpus_per_worker != 1.0 or gpus_per_worker != 0.0):
        stderr("error: --cpus-per-worker and --gpus-per-worker need --ray")
        raise typer.Exit(2)

    def prepare():
        if jobs == "-":
            rows, base = list(read_rows("<stdin>", sys.stdin.read())), Path.cwd()
        else:
            path = Path(jobs).expanduser().absolute()
            rows, base = list(read_rows(path)), path.parent
        folder = (out_dir.expanduser().absolute() if out_dir else base)
        return make_jobs(rows, jobs, base, folder, job_parser(force, device))

    job_list = guard(prepare, debug=debug)
    engine = None
    if ray is not None:
        from talkinghead.rayworkers import RayEngine

        engine = RayEngine(ray, cpus=cpus_per_worker, gpus=gpus_per_worker, workers=workers)
        if not quiet:
            stderr(f"Starting Ray ({ray})" if ray == "local" else f"Joining Ray at {ray}")
        guard(engine.start, debug=debug)
    results: list = []
    stdout = sys.stdout  # results only: Ray prints its own notices to sys.stdout

    def report(result) -> None:
        results.append(result)
        if as_json:
            print(json.dumps(result.as_dict()), file=stdout, flush=True)
        mark = {"ok": "done", "skipped": "skipped", "failed": "FAILED"}[result.status]
        detail = result.error if result.error else result.output
        if result.attempts > 1 and result.status == "ok":
            detail += f" (after {result.attempts - 1} worker death{'s' * (result.attempts > 2)})"
        progress.finished(f"job {result.number} {mark}: {detail}", result.status == "failed")

    def work() -> bool:
        """Run the jobs; False when interrupted (the workers have stopped by then)."""
        from talkinghead import interrupts

        try:
            run_jobs(job_list, workers=workers or 1, resume=resume, retries=retries,
                     engine=engine, on_result=report)
            interrupts.check()  # one whose exception Python dropped (interrupts.py)
        except KeyboardInterrupt:
            interrupts.reset()  # handled here: the summary follows
            return False
        finally:
            if engine is not None:
                engine.close()
        return True

    # Ray's driver prints notices (a worker died, ...) to stdout; each job's line says it.
    with (JobsProgress(len(job_list), quiet) as progress, open(os.devnull, "w") as devnull,
          contextlib.redirect_stdout(sys.stderr if debug else devnull)):
        finished = guard(work, debug=debug)
    if not quiet:
        summary(progress.console, sorted(results, key=lambda r: r.number), len(job_list))
    if not finished:
        stderr("talkinghead: interrupted")
        raise typer.Exit(EXIT_INTERRUPTED)
    if any(r.status == "failed" for r in results):
        raise typer.Exit(EXIT_INTERNAL)


def summary(console, results: list, total: int) -> None:
    """The table of finished jobs on stderr; its title counts the jobs never finished."""
    from rich.table import Table

    from talkinghead.batch import summary_counts

    counts = summary_counts(results)
    unfinished = total - len(results)
    title = (f"{total} jobs: {counts['ok']} rendered, {counts['skipped']} skipped, "
             f"{counts['failed']} failed" + (f", {unfinished} not finished" if unfinished else ""))
    table = Table()
    for column in ("job", "status", "output", "seconds", "problem"):
        table.add_column(column)
    for r in results:
        table.add_row(str(r.number), r.status, r.output, f"{r.seconds:.1f}", r.error or "")
    if results:
        console.print(table)
    console.print(title, markup=False, soft_wrap=True)
