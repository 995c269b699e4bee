"""Command line: ``talkinghead render PHOTO AUDIO``. Thin: each command hands off to one
library function; domain errors become one line on stderr and an exit code.

Exit codes: 0 success, 1 internal failure, 2 bad input or usage, 130 interrupted.
Results (the output path, or one JSON line with --json) go to stdout; progress bars,
warnings and summaries go to stderr. torch and mediapipe are imported only when a command
runs, so ``--help`` is instant.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, ClassVar, Literal, TypeVar, get_args

import typer

from talkinghead import __version__
from talkinghead.config import DEFAULT_WEIGHTS, MotionKind, RenderConfig

app = typer.Typer(
    name="talkinghead",
    help="Turn one portrait photo and one speech recording into a talking-head video.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

T = TypeVar("T")
EXIT_INTERNAL, EXIT_INPUT, EXIT_INTERRUPTED = 1, 2, 130
WATERMARK_TEXT = "AI-generated"

# Options several commands share, declared once.
PhotoArgument = Annotated[Path, typer.Argument(help="Portrait photo (jpg, png, webp, ...).",
                                               show_default=False)]
SizeOption = Annotated[int, typer.Option(help="Side of the face-centred square crop, pixels (even).",
                                         min=64, max=2048)]
FullFrameOption = Annotated[bool, typer.Option(
    "--full-frame", help="Keep the photo's framing instead of a face-centred crop.")]
DeviceOption = Annotated[Literal["auto", "cpu", "cuda"], typer.Option(help="Where to compute.")]
WatermarkOption = Annotated[bool, typer.Option(
    "--watermark", help="Draw a visible label into every frame.")]
WatermarkTextOption = Annotated[str, typer.Option(help="The label's text (with --watermark).")]
FaceOption = Annotated[int | None, typer.Option(
    "--face", help="Which face of the photo when there are several: 0 = largest.", min=0,
    show_default=False)]
ForceOption = Annotated[bool, typer.Option("--force", help="Overwrite an existing output.")]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON result line.")]
DebugOption = Annotated[bool, typer.Option("--debug", help="Show tracebacks.")]


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _silence_native_stderr() -> None:
    """Send native libraries' log lines (mediapipe's C++ core logs from worker threads, at
    any moment) to /dev/null, while Python's own stderr (errors, progress bars) keeps the real
    stream. Done once, at the CLI boundary only; --debug leaves stderr alone."""
    if getattr(_silence_native_stderr, "done", False):
        return
    try:
        python_stderr = os.fdopen(os.dup(2), "w", buffering=1)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        os.close(devnull)
    except OSError:
        return
    sys.stderr = python_stderr
    _silence_native_stderr.done = True  # type: ignore[attr-defined]


def _guard(action: Callable[[], T], *, debug: bool) -> T:
    """Run ``action``; turn failures into one line on stderr and the documented exit code."""
    from talkinghead.errors import InputError, TalkingHeadError

    if not debug:
        _silence_native_stderr()

    try:
        return action()
    except KeyboardInterrupt:
        _stderr("talkinghead: interrupted")
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except InputError as exc:
        if debug:
            raise
        _stderr(f"error: {exc}")
        raise typer.Exit(EXIT_INPUT) from None
    except TalkingHeadError as exc:
        if debug:
            raise
        _stderr(f"error: {exc}")
        raise typer.Exit(EXIT_INTERNAL) from None
    except Exception as exc:  # anything else is our bug: say so briefly unless --debug
        if debug:
            raise
        _stderr(f"internal error: {type(exc).__name__}: {exc} (run with --debug for details)")
        raise typer.Exit(EXIT_INTERNAL) from None


class _RichProgress:
    """The pipeline's Progress protocol drawn as Rich bars on stderr."""

    LABELS: ClassVar[dict[str, str]] = {"face": "Fitting face", "audio": "Analysing audio",
                                        "motion": "Generating motion",
                                        "extract": "Tracking the face",
                                        "render": "Rendering + encoding"}

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self._bars = Progress(TextColumn("{task.description:<22}"), BarColumn(),
                              MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn(),
                              console=Console(stderr=True), transient=False)
        self._task: int | None = None

    def __enter__(self) -> _RichProgress:
        self._bars.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._bars.stop()

    def start(self, stage: str, total: int) -> None:
        self._task = self._bars.add_task(self.LABELS.get(stage, stage), total=total)

    def advance(self, steps: int = 1) -> None:
        if self._task is not None:
            self._bars.advance(self._task, steps)


def _version(value: bool) -> None:
    if value:
        print(f"talkinghead {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """Turn one portrait photo and one speech recording into a talking-head video."""


@app.command()
def render(
    photo: PhotoArgument,
    audio: Annotated[Path, typer.Argument(help="Speech (wav, flac, mp3, ogg, m4a, ...).",
                                          show_default=False)],
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="Output .mp4 (default: <photo>_<audio>.mp4 here).",
        show_default=False)] = None,
    fps: Annotated[float, typer.Option(help="Frames per second.", min=1, max=120)] = 25.0,
    size: SizeOption = 512,
    full_frame: FullFrameOption = False,
    seed: Annotated[int, typer.Option(help="Random seed: same inputs and seed, same video.")] = 0,
    device: DeviceOption = "auto",
    motion: Annotated[str, typer.Option(
        help="Where motion comes from: a generator ('diffusion': the transformer, with "
             "--weights; 'baseline': rules), or a motion file (.json or .csv, e.g. from "
             "`talkinghead extract`), applied relative to the photo and fitted to the audio.",
    )] = "diffusion",
    weights: Annotated[Path | None, typer.Option(
        help="Folder with the diffusion weights (default: the shipped weights/).",
        show_default=False)] = None,
    gaze: Annotated[str | None, typer.Option(
        help="Eye gaze: 'yaw,pitch' in degrees (in the head), or 'camera'.", show_default=False)] = None,
    head_distance: Annotated[float, typer.Option(
        help="Head size: 1 = as in the photo, < 1 = farther away.", min=0.3, max=3.0)] = 1.0,
    emotion: Annotated[str, typer.Option(
        help="neutral, happy, sad, angry or surprised, optionally :INTENSITY (0-1).")] = "neutral",
    cfg_audio: Annotated[float, typer.Option(help="Guidance scale of the audio (diffusion).",
                                             min=0.0, max=5.0)] = 1.5,
    cfg_controls: Annotated[float, typer.Option(help="Guidance scale of gaze, distance, emotion.",
                                                min=0.0, max=5.0)] = 1.0,
    steps: Annotated[int, typer.Option(help="Sampler steps per window (diffusion).", min=1, max=50)] = 8,
    head_motion: Annotated[float, typer.Option(help="Scale of head movement.", min=0.0, max=3.0)] = 1.0,
    expression: Annotated[float, typer.Option(
        help="Scale of expression movement (brows, smiles; not lips or blinks).", min=0.0, max=3.0)] = 1.0,
    still: Annotated[bool, typer.Option("--still", help="Lips and blinks only: head and eyes held.")] = False,
    face: FaceOption = None,
    watermark: WatermarkOption = False,
    watermark_text: WatermarkTextOption = WATERMARK_TEXT,
    force: ForceOption = False,
    quiet: QuietOption = False,
    as_json: JsonOption = False,
    debug: DebugOption = False,
) -> None:
    """Render PHOTO speaking AUDIO into an mp4 (H.264 + AAC)."""
    if size % 2:
        raise typer.BadParameter("must be even (H.264 needs even frame sides)", param_hint="--size")
    params = dict(locals())

    def run():
        from talkinghead.pipeline import render as render_video

        photo, audio, out, config, force = _render_config(params)
        if quiet:
            return render_video(photo, audio, out, config, force=force, warn=_stderr)
        with _RichProgress() as bars:
            return render_video(photo, audio, out, config, force=force, progress=bars,
                                warn=_stderr)

    _report(_guard(run, debug=debug), as_json=as_json, quiet=quiet)


def _render_config(params: dict) -> tuple[Path, Path, Path, RenderConfig, bool]:
    """(photo, audio, output, RenderConfig, force) from ``render``'s parsed options: the one
    translation, shared by ``render`` and ``batch`` so that a job's options mean the same.
    ``--motion`` names a generator or a motion file (.json or .csv)."""
    from talkinghead.errors import InputError
    from talkinghead.motionfile import SUFFIXES
    from talkinghead.pipeline import default_output

    motion, motion_file = params["motion"], None
    if motion not in get_args(MotionKind):
        if Path(motion).suffix.lower() not in SUFFIXES:
            raise InputError(None, f"--motion {motion!r} is neither a generator "
                                   f"({', '.join(get_args(MotionKind))}) nor a .json or .csv motion file")
        motion, motion_file = "baseline", str(Path(motion).expanduser().absolute())
    from talkinghead.controls import parse_emotion, parse_gaze

    try:
        gaze = parse_gaze(params["gaze"]) if params["gaze"] is not None else None
    except ValueError as exc:
        raise InputError(None, f"--gaze: {exc}") from None
    try:
        emotion, intensity = parse_emotion(params["emotion"])
    except ValueError as exc:
        raise InputError(None, f"--emotion: {exc}") from None
    watermark = params["watermark_text"] if params["watermark"] else None
    weights = params["weights"].expanduser().absolute() if params["weights"] else DEFAULT_WEIGHTS
    config = RenderConfig(fps=params["fps"], size=params["size"], full_frame=params["full_frame"],
                          seed=params["seed"], device=params["device"], motion=motion,
                          motion_file=motion_file, face_index=params["face"], watermark=watermark,
                          weights=weights, steps=params["steps"], cfg_audio=params["cfg_audio"],
                          cfg_controls=params["cfg_controls"], gaze=gaze,
                          head_distance=params["head_distance"], emotion=emotion,
                          emotion_intensity=intensity, head_motion=params["head_motion"],
                          expression=params["expression"], still=params["still"])
    photo, audio = params["photo"], params["audio"]
    output = params["output"] or default_output(photo, audio)
    return photo, audio, output.expanduser().absolute(), config, params["force"]


def _report(result, *, as_json: bool, quiet: bool) -> None:
    """A finished video: its path (or one JSON line) on stdout, a summary on stderr."""
    if as_json:
        print(json.dumps({
            "output": str(result.output), "frames": result.frames, "fps": result.fps,
            "width": result.width, "height": result.height,
            "audio_seconds": round(result.audio_seconds, 3),
            "seconds": round(result.seconds, 3), "render_fps": round(result.render_fps, 2),
            "first_frame_seconds": round(result.first_frame_seconds, 3),
            "stage_seconds": {k: round(v, 3) for k, v in result.stage_seconds.items()},
            "settings": result.settings,
        }))
    else:
        print(result.output)
        if not quiet:
            _stderr(f"{result.frames} frames ({result.audio_seconds:.1f} s) in "
                    f"{result.seconds:.1f} s: {result.render_fps:.1f} frames/s")


@app.command()
def reenact(
    photo: PhotoArgument,
    driving: Annotated[Path, typer.Argument(help="Video of a face whose motion and sound drive "
                                                 "the photo (mp4, mov, webm, ...).",
                                            show_default=False)],
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="Output .mp4 (default: <photo>_<driving>.mp4 here).",
        show_default=False)] = None,
    fps: Annotated[float | None, typer.Option(
        help="Frames per second (default: the driving video's).", min=1, max=120,
        show_default=False)] = None,
    size: SizeOption = 512,
    full_frame: FullFrameOption = False,
    device: DeviceOption = "auto",
    face: FaceOption = None,
    watermark: WatermarkOption = False,
    watermark_text: WatermarkTextOption = WATERMARK_TEXT,
    force: ForceOption = False,
    quiet: QuietOption = False,
    as_json: JsonOption = False,
    debug: DebugOption = False,
) -> None:
    """Animate PHOTO with the head motion, expressions and sound of the face in DRIVING.

    The driving face's change from its first frame moves the photo's face from its own pose
    and expression. A driving video without sound gives a silent audio track.
    """
    if size % 2:
        raise typer.BadParameter("must be even (H.264 needs even frame sides)", param_hint="--size")

    def run():
        from talkinghead.errors import InputError
        from talkinghead.mux import probe
        from talkinghead.pipeline import default_output
        from talkinghead.pipeline import reenact as reenact_video

        if not driving.is_file():
            raise InputError(driving, "file not found")
        rate = fps or min(max(probe(driving).fps, 1.0), 120.0)
        config = RenderConfig(fps=rate, size=size, full_frame=full_frame, device=device,
                              face_index=face, watermark=watermark_text if watermark else None)
        out = (output or default_output(photo, driving)).expanduser().absolute()
        if quiet:
            return reenact_video(photo, driving, out, config, force=force, warn=_stderr)
        with _RichProgress() as bars:
            return reenact_video(photo, driving, out, config, force=force, progress=bars,
                                 warn=_stderr)

    _report(_guard(run, debug=debug), as_json=as_json, quiet=quiet)


@app.command()
def extract(
    video: Annotated[Path, typer.Argument(help="Video of a face (mp4, mov, webm, ...).",
                                          show_default=False)],
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="Motion file: .json (talkinghead's full motion) or .csv (Live Link "
                               "Face's ARKit layout); default: <video>_motion.json here.",
        show_default=False)] = None,
    max_frames: Annotated[int | None, typer.Option(
        help="Read at most this many frames (default: all).", min=1, show_default=False)] = None,
    force: ForceOption = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    as_json: JsonOption = False,
    debug: DebugOption = False,
) -> None:
    """Write the motion of the face in VIDEO, per frame: head pose, ARKit coefficients, gaze.

    `talkinghead render PHOTO AUDIO --motion FILE` plays it back on a photo.
    """

    def run():
        from talkinghead.errors import InputError
        from talkinghead.extract import extract_motion
        from talkinghead.motionfile import SUFFIXES, write_motion
        from talkinghead.mux import probe

        out = (output or Path.cwd() / f"{video.stem}_motion.json").expanduser().absolute()
        if out.suffix.lower() not in SUFFIXES:
            raise InputError(out, "motion file must end in .json or .csv")
        if out.is_dir():
            raise InputError(out, "output is a folder; give a file name ending in .json or .csv")
        if out.exists() and not force:
            raise InputError(out, "output already exists (use --force to overwrite)")
        if not out.parent.is_dir():
            raise InputError(out, f"output folder {out.parent} does not exist")
        if not video.is_file():
            raise InputError(video, "file not found")
        info = probe(video)
        total = round(info.duration * info.fps)
        if max_frames is not None:
            total = min(total, max_frames)
        if quiet:
            extracted = extract_motion(video, max_frames=max_frames)
        else:
            with _RichProgress() as bars:
                bars.start("extract", max(total, 1))
                extracted = extract_motion(video, max_frames=max_frames, on_frames=bars.advance)
        try:
            write_motion(out, extracted.motion,
                         extra={"source": video.name,
                                "face_found": extracted.face_found.astype(int).tolist()})
        except OSError as exc:
            raise InputError(out, f"cannot write output ({exc.strerror})") from None
        return out, extracted

    out, extracted = _guard(run, debug=debug)
    motion = extracted.motion
    if as_json:
        print(json.dumps({"output": str(out), "frames": motion.n_frames, "fps": motion.fps,
                          "face_frames": round(float(extracted.face_found.mean()), 4)}))
    else:
        print(out)
        if not quiet:
            _stderr(f"{motion.n_frames} frames at {motion.fps:g} fps, face found in "
                    f"{extracted.face_found.mean():.0%}")


_TRUE, _FALSE = {"1", "true", "yes", "on", "y"}, {"0", "false", "no", "off", "n"}
_NOT_JOB_OPTIONS = {"quiet", "json", "debug", "help", "output"}


def _job_parser(force_all: bool, device: str | None):
    """A function turning one jobs-file row into a Job by parsing it exactly as ``render``'s
    command line would be parsed (same names, types, ranges and defaults)."""
    from typer.main import get_command

    from talkinghead.batch import Job
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
            if name in _NOT_JOB_OPTIONS or name not in options:
                raise InputError(None, f"'{name}' is not a render option")
            if getattr(options[name], "is_flag", False):
                text = str(value).strip().lower()
                if text not in _TRUE | _FALSE:
                    raise InputError(None, f"{name}: expected true or false, got {value!r}")
                args += [f"--{name}"] if text in _TRUE else []
            elif value is not None:
                args += [f"--{name}", str(value)]
        try:
            with command.make_context("render", args) as ctx:
                params = dict(ctx.params)
        except Exception as exc:  # click's usage errors: bad value, out of range
            message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
            raise InputError(None, message) from None
        if params["size"] % 2:
            raise InputError(None, "size must be even (H.264 needs even frame sides)")
        params["output"] = (base / Path(str(output)).expanduser() if output
                            else out_dir / f"{photo.stem}_{audio.stem}.mp4")
        photo, audio, out, config, force = _render_config(params)
        return Job(number=0, photo=photo, audio=audio, output=out, config=config,
                   force=force or force_all)

    return parse


class _JobsProgress:
    """One Rich bar over the jobs and one line per finished job, on stderr."""

    def __init__(self, total: int, quiet: bool) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.console = Console(stderr=True, highlight=False)
        self._bars = None if quiet else Progress(
            TextColumn("{task.description:<22}"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), console=self.console, transient=False)
        self._task = self._bars.add_task("Rendering jobs", total=total) if self._bars else None

    def __enter__(self) -> _JobsProgress:
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
        help="Jobs file: CSV with a header (photo,audio,output,...) or JSON Lines, or - for stdin.",
        show_default=False)],
    workers: Annotated[int, typer.Option(help="Parallel worker processes.", min=1, max=64)] = 1,
    resume: Annotated[bool, typer.Option(
        "--resume", help="Skip jobs whose output exists with the same inputs and settings.")] = False,
    out_dir: Annotated[Path | None, typer.Option(
        help="Folder for jobs without an output (default: the jobs file's folder).",
        show_default=False)] = None,
    device: Annotated[Literal["auto", "cpu", "cuda"] | None, typer.Option(
        help="Where to compute, for jobs that do not say.", show_default=False)] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite existing outputs.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress or summary.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON line per job.")] = False,
    debug: DebugOption = False,
) -> None:
    """Render many jobs from a CSV or JSON Lines file. Each job is a row with photo, audio,
    optional output and any render option by its long name (seed, fps, full-frame, face,
    watermark, ...). Relative paths are relative to the jobs file. A failed job never stops
    the others. Exit code: 0 all jobs succeeded or were skipped, 1 some job failed,
    2 the jobs file cannot be used, 130 interrupted."""
    from talkinghead.batch import make_jobs, read_rows, run_jobs, summary_counts

    def prepare():
        if jobs == "-":
            rows, base = list(read_rows("<stdin>", sys.stdin.read())), Path.cwd()
        else:
            path = Path(jobs).expanduser().absolute()
            rows, base = list(read_rows(path)), path.parent
        folder = (out_dir.expanduser().absolute() if out_dir else base)
        return make_jobs(rows, jobs, base, folder, _job_parser(force, device))

    job_list = _guard(prepare, debug=debug)

    def report(result) -> None:
        if as_json:
            print(json.dumps(result.as_dict()), flush=True)
        mark = {"ok": "done", "skipped": "skipped", "failed": "FAILED"}[result.status]
        detail = result.error if result.error else result.output
        progress.finished(f"job {result.number} {mark}: {detail}", result.status == "failed")

    with _JobsProgress(len(job_list), quiet) as progress:
        results = _guard(lambda: run_jobs(job_list, workers=workers, resume=resume,
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


# Registers `talkinghead eval`, `corpus` and `train` on app.
from talkinghead import cli_tools  # noqa: E402, F401


def main() -> None:
    app()
