"""``talkinghead batch``: many renders from a jobs file, each row parsed as ``render``'s
command line (same names, types and defaults; the config checks the ranges)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Literal

import typer

from talkinghead.cli.common import EXIT_INTERNAL, DebugOption, app, guard

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
    workers: Annotated[int, typer.Option(help="Parallel worker processes.", min=1, max=64)] = 1,
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
    jobs file. A failed job never stops the others.

    Exit code: 0 all jobs succeeded or were skipped, 1 some job failed, 2 the jobs file
    cannot be used, 130 interrupted.
    """
    from talkinghead.batch import make_jobs, read_rows, run_jobs, summary_counts

    def prepare():
        if jobs == "-":
            rows, base = list(read_rows("<stdin>", sys.stdin.read())), Path.cwd()
        else:
            path = Path(jobs).expanduser().absolute()
            rows, base = list(read_rows(path)), path.parent
        folder = (out_dir.expanduser().absolute() if out_dir else base)
        return make_jobs(rows, jobs, base, folder, job_parser(force, device))

    job_list = guard(prepare, debug=debug)

    def report(result) -> None:
        if as_json:
            print(json.dumps(result.as_dict()), flush=True)
        mark = {"ok": "done", "skipped": "skipped", "failed": "FAILED"}[result.status]
        detail = result.error if result.error else result.output
        progress.finished(f"job {result.number} {mark}: {detail}", result.status == "failed")

    with JobsProgress(len(job_list), quiet) as progress:
        results = guard(lambda: run_jobs(job_list, workers=workers, resume=resume,
                                          on_result=report), debug=debug)
    counts = summary_counts(results)
    if not quiet:
        from rich.table import Table

        table = Table(title=f"{len(results)} jobs: {counts['ok']} rendered, "
                            f"{counts['skipped']} skipped, {counts['failed']} failed")
        for column in ("job", "status", "output", "seconds", "problem"):
            table.add_column(column)
        for r in results:
            table.add_row(str(r.number), r.status, r.output, f"{r.seconds:.1f}", r.error or "")
        progress.console.print(table)
    if counts["failed"]:
        raise typer.Exit(EXIT_INTERNAL)


