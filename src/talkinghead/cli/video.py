"""``talkinghead render`` and ``talkinghead reenact``: one video each, through the API.

The options' defaults come from ``RenderConfig`` and their ranges from ``limits``: the
config checks them, for the command line, batch rows and API calls alike.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from talkinghead.audiostream import ENCODINGS
from talkinghead.cli.common import (
    DebugOption,
    DeviceOption,
    FaceOption,
    ForceOption,
    FullFrameOption,
    JsonOption,
    MouthOption,
    OutputOption,
    PhotoArgument,
    QuietOption,
    WatermarkOption,
    WatermarkTextOption,
    app,
    guard,
    report,
    stderr,
    with_bars,
)
from talkinghead.config import OPTION_NAMES, WATERMARK_TEXT, RenderConfig
from talkinghead.limits import describe

DEFAULTS = RenderConfig()
SizeOption = Annotated[int, typer.Option(
    metavar="PIXELS", help=f"Side of the face-centred square crop, even {describe('size')}.")]


def api_options(params: dict[str, Any]) -> dict[str, Any]:
    """The API's keyword options among a command's parsed parameters."""
    return {name: value for name, value in params.items() if name in OPTION_NAMES}


LiveOutputOption = Annotated[str | None, typer.Option(
    "--output", "-o", metavar="FILE.mp4|-|URL", show_default=False,
    help="Output .mp4 (default: <photo>_<audio>.mp4 in the working folder); '-' streams a "
         "fragmented MP4 to stdout; udp://, tcp://, srt://, rtp:// (MPEG-TS) or rtmp:// "
         "(FLV) stream to that address.")]


@app.command()
def render(
    ctx: typer.Context,
    photo: PhotoArgument,
    audio: Annotated[Path, typer.Argument(metavar="AUDIO", show_default=False,
                                          help="Speech (wav, flac, mp3, ogg, m4a, ...), or '-' "
                                               "to read a WAV stream (or raw PCM) from stdin.")],
    output: LiveOutputOption = None,
    realtime: Annotated[bool, typer.Option(
        "--realtime", help="Send each frame no earlier than its time on the wall clock.")] = False,
    audio_format: Annotated[str | None, typer.Option(
        metavar="ENC", show_default=False,
        help=f"Raw PCM on stdin instead of WAV: {', '.join(ENCODINGS)} (with --audio-rate).")] = None,
    audio_rate: Annotated[int | None, typer.Option(
        metavar="HZ", show_default=False, help="Sample rate of raw PCM on stdin.")] = None,
    audio_channels: Annotated[int, typer.Option(
        metavar="N", help="Channels of raw PCM on stdin.")] = 1,
    fps: Annotated[float, typer.Option(help=f"Frames per second {describe('fps')}.")] = DEFAULTS.fps,
    size: SizeOption = DEFAULTS.size,
    full_frame: FullFrameOption = DEFAULTS.full_frame,
    seed: Annotated[int, typer.Option(help="Random seed: same inputs and seed, same video.")
                    ] = DEFAULTS.seed,
    device: DeviceOption = DEFAULTS.device,
    mouth: MouthOption = DEFAULTS.mouth,
    motion: Annotated[str, typer.Option(
        metavar="KIND|FILE",
        help="Where motion comes from: 'diffusion' (the transformer, with --weights), "
             "'baseline' (rules), or a motion file (.json or .csv, e.g. from `talkinghead "
             "extract`), applied relative to the photo and fitted to the audio.",
    )] = DEFAULTS.motion,
    weights: Annotated[Path | None, typer.Option(
        metavar="DIR", show_default=False,
        help="Folder with the diffusion weights (default: the shipped weights).")] = None,
    gaze: Annotated[str | None, typer.Option(
        metavar="YAW,PITCH", show_default=False,
        help="Eye gaze in the head, degrees, or 'camera' (default: the photo's).")] = None,
    head_distance: Annotated[float, typer.Option(
        help=f"Head size: 1 = as in the photo, < 1 = farther away {describe('head_distance')}."
    )] = DEFAULTS.controls.head_distance,
    emotion: Annotated[str, typer.Option(
        metavar="NAME[:INTENSITY]",
        help="neutral, happy, sad, angry or surprised, optionally :INTENSITY (0-1).",
    )] = DEFAULTS.controls.emotion,
    cfg_audio: Annotated[float, typer.Option(
        help=f"Guidance scale of the audio (diffusion) {describe('cfg_audio')}.")
    ] = DEFAULTS.sampler.cfg_audio,
    cfg_controls: Annotated[float, typer.Option(
        help=f"Guidance scale of gaze, distance, emotion {describe('cfg_controls')}.")
    ] = DEFAULTS.sampler.cfg_controls,
    steps: Annotated[int, typer.Option(
        help=f"Sampler steps per window (diffusion) {describe('steps')}.")] = DEFAULTS.sampler.steps,
    eta: Annotated[float, typer.Option(
        help=f"Fresh noise per sampler step: 0 deterministic, 1 ancestral (diffusion) {describe('eta')}.")
    ] = DEFAULTS.sampler.eta,
    head_motion: Annotated[float, typer.Option(
        help=f"Scale of head movement {describe('head_motion')}.")] = DEFAULTS.controls.head_motion,
    expression: Annotated[float, typer.Option(
        help=f"Scale of expression movement (brows, smiles; not lips or blinks) "
             f"{describe('expression')}.")] = DEFAULTS.controls.expression,
    face: FaceOption = DEFAULTS.face_index,
    watermark: WatermarkOption = False,
    watermark_text: WatermarkTextOption = WATERMARK_TEXT,
    still: Annotated[bool, typer.Option(
        "--still", help="Lips and blinks only: head and eyes held.")] = DEFAULTS.controls.still,
    force: ForceOption = False,
    quiet: QuietOption = False,
    as_json: JsonOption = False,
    debug: DebugOption = False,
) -> None:
    """Render PHOTO speaking AUDIO into an mp4 (H.264 + AAC).

    Streaming: with AUDIO '-' the audio is read from stdin as it arrives, and with '-o -'
    (or a URL) the video leaves while it is made, e.g.
    `tts ... | talkinghead render photo.jpg - -o - | ffplay -`.
    """
    from talkinghead import api

    options = api_options(ctx.params)
    live = str(audio) == "-" or output == "-" or "://" in (output or "") or realtime

    def run():
        pcm = raw_format(audio, audio_format, audio_rate, audio_channels)
        if not live:
            return with_bars(quiet, lambda bars: api.render(photo, audio, output, force=force,
                                                            progress=bars, warn=stderr, **options))
        return api.render_live(photo, audio, output or str(api.default_output(photo, audio)),
                               pcm=pcm,
                               realtime=realtime, force=force, warn=stderr, **options)

    result = guard(run, debug=debug)
    # the video itself may be on stdout: then the report goes to stderr
    report(result, as_json=as_json, quiet=quiet, stream=sys.stderr if output == "-" else sys.stdout)


def raw_format(audio: Path, encoding: str | None, rate: int | None, channels: int):
    """--audio-format, --audio-rate and --audio-channels: raw PCM on stdin, or None (WAV)."""
    from talkinghead.audiostream import PcmFormat
    from talkinghead.errors import InputError

    if encoding is None and rate is None:
        return None
    if str(audio) != "-":
        raise InputError(None, "--audio-format and --audio-rate describe raw PCM on stdin (AUDIO '-')")
    if encoding not in ENCODINGS or rate is None:
        raise InputError(None, f"raw PCM needs --audio-format ({', '.join(ENCODINGS)}) and --audio-rate")
    if not 1_000 <= rate <= 384_000 or not 1 <= channels <= 32:
        raise InputError(None, "--audio-rate must be 1000-384000 Hz and --audio-channels 1-32")
    return PcmFormat(rate, channels, encoding)


@app.command()
def reenact(
    ctx: typer.Context,
    photo: PhotoArgument,
    driving: Annotated[Path, typer.Argument(
        metavar="DRIVING", show_default=False,
        help="Video of a face whose motion and sound drive the photo (mp4, mov, webm, ...).")],
    output: OutputOption = None,
    fps: Annotated[float | None, typer.Option(
        show_default=False,
        help=f"Frames per second {describe('fps')} (default: the driving video's).")] = None,
    size: SizeOption = DEFAULTS.size,
    full_frame: FullFrameOption = DEFAULTS.full_frame,
    face: FaceOption = DEFAULTS.face_index,
    device: DeviceOption = DEFAULTS.device,
    mouth: MouthOption = DEFAULTS.mouth,
    force: ForceOption = False,
    watermark: WatermarkOption = False,
    watermark_text: WatermarkTextOption = WATERMARK_TEXT,
    as_json: JsonOption = False,
    quiet: QuietOption = False,
    debug: DebugOption = False,
) -> None:
    """Animate PHOTO with the motion and sound of the face in DRIVING.

    The driving face's change from its first frame moves the photo's face from its own pose
    and expression. A driving video without sound gives a silent audio track.
    """
    from talkinghead import api

    options = api_options(ctx.params)

    def run():
        return with_bars(quiet, lambda bars: api.reenact(photo, driving, output, force=force,
                                                         progress=bars, warn=stderr, **options))

    report(guard(run, debug=debug), as_json=as_json, quiet=quiet)
