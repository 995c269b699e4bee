"""``talkinghead extract``: the motion of a face in a video, as a file ``render`` can play."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from talkinghead.cli.common import DebugOption, ForceOption, JsonOption, RichProgress, app, guard, stderr


@app.command()
def extract(
    video: Annotated[Path, typer.Argument(metavar="VIDEO", help="Video of a face (mp4, mov, webm, ...).",
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
    """Write the motion of the face in VIDEO to a motion file.

    Per frame: head pose, ARKit coefficients, gaze. `talkinghead render PHOTO AUDIO
    --motion FILE` plays it back on a photo.
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
            with RichProgress() as bars:
                bars.start("extract", max(total, 1))
                extracted = extract_motion(video, max_frames=max_frames, on_frames=bars.advance)
        try:
            write_motion(out, extracted.motion,
                         extra={"source": video.name,
                                "face_found": extracted.face_found.astype(int).tolist()})
        except OSError as exc:
            raise InputError(out, f"cannot write output ({exc.strerror})") from None
        return out, extracted

    out, extracted = guard(run, debug=debug)
    motion = extracted.motion
    if as_json:
        print(json.dumps({"output": str(out), "frames": motion.n_frames, "fps": motion.fps,
                          "face_frames": round(float(extracted.face_found.mean()), 4)}))
    else:
        print(out)
        if not quiet:
            stderr(f"{motion.n_frames} frames at {motion.fps:g} fps, face found in "
                    f"{extracted.face_found.mean():.0%}")


