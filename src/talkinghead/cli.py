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
from typing import Annotated, ClassVar, Literal, TypeVar

import typer

from talkinghead import __version__

app = typer.Typer(
    name="talkinghead",
    help="Turn one portrait photo and one speech recording into a talking-head video.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

T = TypeVar("T")
EXIT_INTERNAL, EXIT_INPUT, EXIT_INTERRUPTED = 1, 2, 130


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
    photo: Annotated[Path, typer.Argument(help="Portrait photo (jpg, png, webp, ...).",
                                          show_default=False)],
    audio: Annotated[Path, typer.Argument(help="Speech (wav, flac, mp3, ogg, m4a, ...).",
                                          show_default=False)],
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="Output .mp4 [default: <photo>_<audio>.mp4 here].",
        show_default=False)] = None,
    fps: Annotated[float, typer.Option(help="Frames per second.", min=1, max=120)] = 25.0,
    size: Annotated[int, typer.Option(help="Side of the face-centred square crop, pixels.",
                                      min=64, max=2048)] = 512,
    full_frame: Annotated[bool, typer.Option(
        "--full-frame", help="Keep the photo's framing instead of a face-centred crop.")] = False,
    seed: Annotated[int, typer.Option(help="Random seed: same inputs and seed, same video.")] = 0,
    device: Annotated[Literal["auto", "cpu", "cuda"], typer.Option(
        help="Where to compute.")] = "auto",
    motion: Annotated[Literal["baseline", "diffusion"], typer.Option(
        help="Motion generator: 'baseline' (rules) or 'diffusion' (transformer, needs --weights).",
    )] = "baseline",
    weights: Annotated[Path, typer.Option(help="Folder with the diffusion weights.")] = Path("weights"),
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
    face: Annotated[int | None, typer.Option(
        "--face", help="Which face when there are several: 0 = largest.", min=0,
        show_default=False)] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing output.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON result line.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks.")] = False,
) -> None:
    """Render PHOTO speaking AUDIO into an mp4 (H.264 + AAC)."""
    if size % 2:
        raise typer.BadParameter("must be even (H.264 needs even frame sides)", param_hint="--size")
    from talkinghead.controls import parse_emotion, parse_gaze

    try:
        gaze_value = parse_gaze(gaze) if gaze is not None else None
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--gaze") from None
    try:
        emotion_name, intensity = parse_emotion(emotion)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--emotion") from None

    def run():
        from talkinghead.config import RenderConfig
        from talkinghead.pipeline import default_output
        from talkinghead.pipeline import render as render_video

        config = RenderConfig(fps=fps, size=size, full_frame=full_frame, seed=seed,
                              device=device, motion=motion, face_index=face, weights=weights,
                              steps=steps, cfg_audio=cfg_audio, cfg_controls=cfg_controls,
                              gaze=gaze_value, head_distance=head_distance, emotion=emotion_name,
                              emotion_intensity=intensity, head_motion=head_motion,
                              expression=expression, still=still)
        out = (output or default_output(photo, audio)).expanduser().absolute()
        if quiet:
            return render_video(photo, audio, out, config, force=force, warn=_stderr)
        with _RichProgress() as bars:
            return render_video(photo, audio, out, config, force=force, progress=bars,
                                warn=_stderr)

    result = _guard(run, debug=debug)
    if as_json:
        print(json.dumps({
            "output": str(result.output), "frames": result.frames, "fps": result.fps,
            "width": result.width, "height": result.height,
            "audio_seconds": round(result.audio_seconds, 3),
            "seconds": round(result.seconds, 3), "render_fps": round(result.render_fps, 2),
            "first_frame_seconds": round(result.first_frame_seconds, 3),
            "stage_seconds": {k: round(v, 3) for k, v in result.stage_seconds.items()},
        }))
    else:
        print(result.output)
        if not quiet:
            _stderr(f"{result.frames} frames ({result.audio_seconds:.1f} s) in "
                    f"{result.seconds:.1f} s: {result.render_fps:.1f} frames/s")


_EVAL_ROWS = (
    ("lip sync", [("corr_lag0", "mouth vs loudness, correlation at lag 0"),
                  ("corr_best", "... at the best lag"),
                  ("corr_best_lag_ms", "best lag, ms (< 0: mouth first)"),
                  ("auc_lag0", "open vowels vs /p b m/, AUC at lag 0"),
                  ("auc_best", "... at the best lag"), ("auc_best_lag_ms", "best lag, ms"),
                  ("bilabial_closure", "/p b m/ with closed lips, share"),
                  ("silence_ratio", "mouth opening in silence / in speech")]),
    ("eyes", [("blinks_per_min", "blinks per minute"), ("blink_ms", "mean blink, ms"),
              ("blinks_left", "blinks, left eye"), ("blinks_right", "blinks, right eye"),
              ("gaze_yaw_mean", "gaze yaw, mean deg"), ("gaze_yaw_std", "gaze yaw, std deg"),
              ("gaze_pitch_mean", "gaze pitch, mean deg"), ("gaze_pitch_std", "gaze pitch, std deg")]),
    ("head", [("yaw_std", "yaw std, deg"), ("pitch_std", "pitch std, deg"), ("roll_std", "roll std, deg"),
              ("delta_pose_deg", "rotation per frame, deg"), ("jitter", "jitter, inter-ocular units")]),
    ("identity", [("shape_distance", "face shape vs photo, inter-ocular units"),
                  ("colour_drift", "face colour vs photo, CIELAB"), ("face_ssim", "face SSIM vs photo")]),
    ("video", [("frames", "frames"), ("fps", "frames per second"), ("width", "width"), ("height", "height"),
               ("video_seconds", "video, s"), ("audio_seconds", "audio, s"),
               ("av_offset_frames", "video - audio, frames"), ("face_frames", "frames with a face, share")]),
)


@app.command("eval")
def eval_command(
    video: Annotated[Path, typer.Argument(help="Video to measure (any format ffmpeg reads).",
                                          show_default=False)],
    audio: Annotated[Path | None, typer.Option(
        help="Speech to measure lip sync against [default: the video's own sound].",
        show_default=False)] = None,
    source: Annotated[Path | None, typer.Option(
        help="The photo the video was made from, for identity measures.",
        show_default=False)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON line.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks.")] = False,
) -> None:
    """Measure a talking-head video: lip sync, blinks, head motion, jitter, identity."""

    def run():
        from talkinghead.evaluate import evaluate

        return evaluate(video, audio=audio, source=source)

    report = _guard(run, debug=debug).as_dict()
    if as_json:
        print(json.dumps(report))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=str(video), show_header=False)
    for group, rows in _EVAL_ROWS:
        table.add_row(f"[bold]{group}[/bold]", "")
        for key, label in rows:
            value = report[key]
            table.add_row(f"  {label}", "-" if value is None else f"{value:.4g}"
                          if isinstance(value, float) else str(value))
    Console().print(table)


@app.command("corpus")
def corpus_command(
    out: Annotated[Path, typer.Option("--out", help="Folder for the shards (made if missing).",
                                      show_default=False)],
    seed: Annotated[int, typer.Option(help="Corpus seed: same seed, same corpus.")] = 0,
    minutes: Annotated[float, typer.Option(help="Minutes of speech to generate.", min=0.1)] = 30.0,
    workers: Annotated[int, typer.Option(help="Processes (the corpus is the same for any).",
                                         min=1)] = 1,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks.")] = False,
) -> None:
    """Generate the synthetic training corpus: espeak-ng speech with motion from its phonemes."""

    def run():
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        from talkinghead.corpus import generate_corpus

        bars = Progress(TextColumn("{task.description:<22}"), BarColumn(),
                        TextColumn("{task.completed:.0f}/{task.total:.0f} s"), TimeElapsedColumn(),
                        TimeRemainingColumn(), console=Console(stderr=True))
        with bars:
            task = bars.add_task("Synthesizing speech", total=minutes * 60)
            return generate_corpus(out, seed=seed, minutes=minutes, workers=workers,
                                   progress=lambda seconds: bars.advance(task, seconds))

    summary = _guard(run, debug=debug)
    print(json.dumps(summary))


@app.command("train")
def train_command(
    corpus: Annotated[Path | None, typer.Option(help="Synthetic corpus folder (talkinghead corpus).",
                                                show_default=False)] = None,
    videos: Annotated[Path | None, typer.Option(help="Folder of real talking videos.",
                                                show_default=False)] = None,
    out: Annotated[Path, typer.Option("--out", help="Where weights and checkpoints go.")] = Path("weights"),
    steps: Annotated[int, typer.Option(help="Optimiser steps.", min=1)] = 1200,
    batch_size: Annotated[int, typer.Option(help="Windows per step (per process).", min=1)] = 32,
    seed: Annotated[int, typer.Option(help="Training seed.")] = 0,
    threads: Annotated[int, typer.Option(help="CPU threads per process.", min=1)] = 1,
    resume: Annotated[bool, typer.Option("--resume", help="Continue from OUT/checkpoint.pt.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks.")] = False,
) -> None:
    """Train the diffusion motion generator (torchrun for several GPUs) and export weights."""
    command = "talkinghead " + " ".join(sys.argv[1:])

    def run():
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        from talkinghead.train import TrainConfig, train

        config = TrainConfig(steps=steps, batch_size=batch_size, seed=seed, threads=threads)
        bars = Progress(TextColumn("{task.description:<22}"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("loss {task.fields[loss]:.4f}"), TimeElapsedColumn(),
                        TimeRemainingColumn(), console=Console(stderr=True))
        with bars:
            task = bars.add_task("Training", total=steps, loss=float("nan"))
            return train(corpus, out, config, videos=videos, command=command, resume=resume,
                         progress=lambda step, loss: bars.update(task, completed=step, loss=loss))

    manifest = _guard(run, debug=debug)
    if manifest:
        print(out / "MANIFEST.json")


def main() -> None:
    app()
