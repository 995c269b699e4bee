"""What every command shares: the Typer app, the options several commands take, the guard
that turns failures into one line and an exit code, and progress bars on stderr."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, ClassVar, Literal, TypeVar

import typer

from talkinghead import __version__

if TYPE_CHECKING:
    from talkinghead.pipeline import RenderResult

app = typer.Typer(
    name="talkinghead",
    help="Turn one portrait photo and one speech recording into a talking-head video.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help: wraps cleanly in any terminal width
)

T = TypeVar("T")
EXIT_INTERNAL, EXIT_INPUT, EXIT_INTERRUPTED = 1, 2, 130

# Options several commands share, declared once.
PhotoArgument = Annotated[Path, typer.Argument(metavar="PHOTO", show_default=False,
                                               help="Portrait photo (jpg, png, webp, ...).")]
OutputOption = Annotated[Path | None, typer.Option(
    "--output", "-o", metavar="FILE.mp4", show_default=False,
    help="Output .mp4 (default: <photo>_<audio>.mp4 in the working folder).")]
FullFrameOption = Annotated[bool, typer.Option(
    "--full-frame", help="Keep the photo's framing instead of a face-centred crop.")]
DeviceOption = Annotated[Literal["auto", "cpu", "cuda"], typer.Option(help="Where to compute.")]
MouthOption = Annotated[str, typer.Option(
    metavar="KIND|DIR",
    help="Mouth interior: 'procedural' (drawn by rules: teeth, cavity, tongue), 'learned' "
         "(repainted by the shipped network trained on real mouths: closer to real frames, "
         "softer) or a folder of mouth weights from `talkinghead train-mouth`.")]
WatermarkOption = Annotated[bool, typer.Option(
    "--watermark", help="Draw a visible label into every frame.")]
WatermarkTextOption = Annotated[str, typer.Option(metavar="TEXT",
                                                  help="The label's text (with --watermark).")]
FaceOption = Annotated[int | None, typer.Option(
    "--face", metavar="N", show_default=False,
    help="Which face of the photo when there are several: 0 = largest.")]
ForceOption = Annotated[bool, typer.Option("--force", help="Overwrite an existing output.")]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON result line.")]
DebugOption = Annotated[bool, typer.Option("--debug", help="Show tracebacks.")]


def stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def silence_native_stderr() -> None:
    """Send native libraries' log lines (mediapipe's C++ core logs from worker threads, at
    any moment) to /dev/null, while Python's own stderr (errors, progress bars) keeps the real
    stream. Done once, at the CLI boundary only; --debug leaves stderr alone."""
    if getattr(silence_native_stderr, "done", False):
        return
    try:
        python_stderr = os.fdopen(os.dup(2), "w", buffering=1)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        os.close(devnull)
    except OSError:
        return
    sys.stderr = python_stderr
    silence_native_stderr.done = True  # type: ignore[attr-defined]


def guard(action: Callable[[], T], *, debug: bool) -> T:
    """Run ``action``; turn failures into one line on stderr and the documented exit code."""
    from talkinghead import interrupts
    from talkinghead.errors import InputError, TalkingHeadError

    if not debug:
        silence_native_stderr()
    interrupts.install()
    try:
        result = action()
        interrupts.check()  # an interrupt whose exception Python dropped (see interrupts.py)
        return result
    except KeyboardInterrupt:
        stderr("talkinghead: interrupted")
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except InputError as exc:
        if debug:
            raise
        stderr(f"error: {exc}")
        raise typer.Exit(EXIT_INPUT) from None
    except TalkingHeadError as exc:
        if debug:
            raise
        stderr(f"error: {exc}")
        raise typer.Exit(EXIT_INTERNAL) from None
    except Exception as exc:  # anything else is our bug: say so briefly unless --debug
        if debug:
            raise
        stderr(f"internal error: {type(exc).__name__}: {exc} (run with --debug for details)")
        raise typer.Exit(EXIT_INTERNAL) from None


class RichProgress:
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

    def __enter__(self) -> RichProgress:
        self._bars.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._bars.stop()

    def start(self, stage: str, total: int) -> None:
        self._task = self._bars.add_task(self.LABELS.get(stage, stage), total=total)

    def advance(self, steps: int = 1) -> None:
        if self._task is not None:
            self._bars.advance(self._task, steps)


def with_bars(quiet: bool, action: Callable[[RichProgress | None], T]) -> T:
    """``action(progress)``: with Rich bars on stderr, or with None when ``quiet``."""
    if quiet:
        return action(None)
    with RichProgress() as bars:
        return action(bars)


def report(result: RenderResult, *, as_json: bool, quiet: bool, stream=None) -> None:
    """A finished video: its path (or one JSON line) on ``stream`` (stdout), a summary on
    stderr."""
    stream = stream or sys.stdout
    if as_json:
        print(json.dumps({
            "output": str(result.output), "frames": result.frames, "fps": result.fps,
            "width": result.width, "height": result.height,
            "audio_seconds": round(result.audio_seconds, 3),
            "seconds": round(result.seconds, 3), "render_fps": round(result.render_fps, 2),
            "first_frame_seconds": round(result.first_frame_seconds, 3),
            "stage_seconds": {k: round(v, 3) for k, v in result.stage_seconds.items()},
            "settings": result.settings,
        }), file=stream)
    else:
        print(result.output, file=stream)
        if not quiet:
            stderr(f"{result.frames} frames ({result.audio_seconds:.1f} s) in "
                   f"{result.seconds:.1f} s: {result.render_fps:.1f} frames/s")


def _version(value: bool) -> None:
    if value:
        print(f"talkinghead {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """Turn one portrait photo and one speech recording into a talking-head video.

    Every command has its own --help. The same work is a Python API: talkinghead.render and
    talkinghead.Avatar (see the README).
    """
