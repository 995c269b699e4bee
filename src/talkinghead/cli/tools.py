"""The measuring and training commands: ``talkinghead eval``, ``corpus`` and ``train``. Heavy
modules are imported inside them."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from talkinghead.cli.common import DebugOption, app, guard

EVAL_ROWS = (
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
    debug: DebugOption = False,
) -> None:
    """Measure a talking-head video: lip sync, eyes, head, identity.

    Lip sync against the sound, blinks and gaze, head motion and jitter, and with --source
    the identity kept from the photo.
    """

    def run():
        from talkinghead.evaluate import evaluate

        return evaluate(video, audio=audio, source=source)

    report = guard(run, debug=debug).as_dict()
    if as_json:
        print(json.dumps(report))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=str(video), show_header=False)
    for group, rows in EVAL_ROWS:
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
    calibration: Annotated[Path | None, typer.Option(
        help="Motion scales measured on real videos (bench/calibrate.py).", show_default=False)] = None,
    debug: DebugOption = False,
) -> None:
    """Generate the synthetic training corpus.

    espeak-ng speech in many voices, with motion made from its phonemes.
    """

    def run():
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        from talkinghead.corpus import Calibration, generate_corpus

        bars = Progress(TextColumn("{task.description:<22}"), BarColumn(),
                        TextColumn("{task.completed:.0f}/{task.total:.0f} s"), TimeElapsedColumn(),
                        TimeRemainingColumn(), console=Console(stderr=True))
        with bars:
            task = bars.add_task("Synthesizing speech", total=minutes * 60)
            return generate_corpus(out, seed=seed, minutes=minutes, workers=workers,
                                   progress=lambda seconds: bars.advance(task, seconds),
                                   calibration=Calibration.load(calibration) if calibration else None)

    summary = guard(run, debug=debug)
    print(json.dumps(summary))


@app.command("train")
def train_command(
    corpus: Annotated[Path | None, typer.Option(help="Synthetic corpus folder (talkinghead corpus).",
                                                show_default=False)] = None,
    videos: Annotated[list[Path] | None, typer.Option(
        help="Real talking video, or a folder of them (repeat for more).", show_default=False)] = None,
    video_cache: Annotated[Path | None, typer.Option(
        help="Folder caching the motion extracted from --videos.", show_default=False)] = None,
    init: Annotated[Path | None, typer.Option(help="Weights folder to start from (fine-tune).",
                                              show_default=False)] = None,
    real_fraction: Annotated[float, typer.Option(help="Share of windows from --videos when "
                                                 "training on a corpus as well.", min=0, max=1)] = 0.5,
    lr: Annotated[float, typer.Option(help="Peak learning rate.", min=0)] = 1e-3,
    pose_weight: Annotated[float, typer.Option(help="Loss weight of the head's rotation (the other "
                                               "channels weigh 1, or 2 for lips and eyelids).", min=0)] = 1.0,
    out: Annotated[Path, typer.Option("--out", help="Where weights and checkpoints go.")] = Path("weights"),
    steps: Annotated[int, typer.Option(help="Optimiser steps.", min=1)] = 12000,
    batch_size: Annotated[int, typer.Option(help="Windows per step (per process).", min=1)] = 32,
    seed: Annotated[int, typer.Option(help="Training seed.")] = 0,
    threads: Annotated[int, typer.Option(help="CPU threads per process.", min=1)] = 1,
    resume: Annotated[bool, typer.Option("--resume", help="Continue from OUT/checkpoint.pt.")] = False,
    debug: DebugOption = False,
) -> None:
    """Train the diffusion motion generator and export its weights.

    On a corpus, real talking videos or both; torchrun runs it on several GPUs.
    """
    command = "talkinghead " + " ".join(sys.argv[1:])

    def run():
        from rich import progress as rp
        from rich.console import Console

        from talkinghead.train import TrainConfig, train

        config = TrainConfig(steps=steps, batch_size=batch_size, seed=seed, threads=threads,
                             real_fraction=real_fraction, lr=lr, pose_weight=pose_weight)
        bars = rp.Progress(rp.TextColumn("{task.description:<22}"), rp.BarColumn(),
                           rp.MofNCompleteColumn(), rp.TextColumn("loss {task.fields[loss]:.4f}"),
                           rp.TimeElapsedColumn(), rp.TimeRemainingColumn(), console=Console(stderr=True))
        with bars:
            task = bars.add_task("Training", total=steps, loss=float("nan"))
            return train(corpus, out, config, videos=videos, video_cache=video_cache, init=init,
                         command=command, resume=resume,
                         progress=lambda step, loss: bars.update(task, completed=step, loss=loss))

    manifest = guard(run, debug=debug)
    if manifest:
        print(out / "MANIFEST.json")


@app.command("train-mouth")
def train_mouth_command(
    videos: Annotated[list[Path], typer.Option(
        help="Real talking video, or a folder of them (repeat for more).", show_default=False)],
    out: Annotated[Path, typer.Option("--out", help="Where the weights and their MANIFEST.json go.")
                   ] = Path("weights/mouth"),
    cache: Annotated[Path | None, typer.Option(
        help="Folder caching each video's tracked mouth crops.", show_default=False)] = None,
    steps: Annotated[int, typer.Option(help="Optimiser steps.", min=1)] = 3000,
    batch_size: Annotated[int, typer.Option(help="Frame pairs per step.", min=1)] = 24,
    lr: Annotated[float, typer.Option(help="Peak learning rate.", min=0)] = 2e-3,
    adversarial_weight: Annotated[float, typer.Option(
        help="Weight of the patch critic's verdict against the pixel loss (0: pixel loss only).",
        min=0)] = 0.0,
    seed: Annotated[int, typer.Option(help="Training seed.")] = 0,
    threads: Annotated[int, typer.Option(help="CPU threads.", min=1)] = 2,
    debug: DebugOption = False,
) -> None:
    """Train the learned mouth interior (teeth, tongue, cavity) on real talking videos."""
    command = "talkinghead " + " ".join(sys.argv[1:])

    def run():
        from rich import progress as rp
        from rich.console import Console

        from talkinghead.mouthtrain import MouthTrainConfig, train_mouth
        from talkinghead.train import video_files

        config = MouthTrainConfig(steps=steps, batch_size=batch_size, lr=lr,
                                  adversarial_weight=adversarial_weight, seed=seed, threads=threads)
        bars = rp.Progress(rp.TextColumn("{task.description:<22}"), rp.BarColumn(), rp.MofNCompleteColumn(),
                           rp.TimeElapsedColumn(), rp.TimeRemainingColumn(), console=Console(stderr=True))
        tasks: dict[str, rp.TaskID] = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bars.add_task(stage.capitalize(), total=total)
            bars.update(tasks[stage], completed=done)

        with bars:
            return train_mouth(video_files(videos), out, config, cache=cache, command=command,
                               progress=progress)

    guard(run, debug=debug)
    print(out / "MANIFEST.json")
