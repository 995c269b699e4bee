"""The public Python API: ``talkinghead.render`` for one video, ``talkinghead.Avatar`` for many
audio clips of one photo (the face work, the decoder and the weights done once).

Options are ``render``'s long option names as keywords (``seed=3``, ``size=256``,
``full_frame=True``, ``motion="baseline"``, ``gaze="camera"``, ``emotion="happy:0.7"``, ...),
with the same defaults and ranges as the command line (``config.RenderConfig``); a bad one
raises ``InputError`` with one line naming it. The CLI and batch are built on these.

    import talkinghead

    talkinghead.render("photo.jpg", "speech.wav", "talk.mp4", seed=3)

    avatar = talkinghead.Avatar.from_photo("photo.jpg", size=256)
    avatar.render("hello.wav", "hello.mp4")
    frames = list(avatar.frames(avatar.motion("bye.wav", emotion="happy")))
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import numpy as np

from talkinghead.audio import preload_phone_decoder
from talkinghead.config import SETUP_OPTIONS, RenderConfig
from talkinghead.errors import InputError
from talkinghead.motionspace import MotionSequence
from talkinghead.pipeline import (
    PhotoSetup,
    Progress,
    RenderResult,
    Warn,
    check_before_work,
    clip_motion,
    default_output,
    frame_batches,
    prepare,
    render_clip,
)
from talkinghead.pipeline import reenact as reenact_video
from talkinghead.pipeline import render as render_video
from talkinghead.stream import Frame

if TYPE_CHECKING:
    from talkinghead.audiostream import PcmFormat
    from talkinghead.renderer import Decoder

PathLike = str | Path


def _options(base: RenderConfig | None, options: dict[str, Any]
             ) -> tuple[RenderConfig, MotionSequence | None]:
    """The config from ``base`` and the keyword options, and motion given in memory
    (``motion=`` a MotionSequence rather than a generator's name or a file)."""
    given = options.pop("motion") if isinstance(options.get("motion"), MotionSequence) else None
    return (base or RenderConfig()).with_options(**options), given


def _output(photo: Path, audio: Path, output: PathLike | None) -> Path:
    return (Path(output) if output is not None else default_output(photo, audio)).expanduser().absolute()


def render(photo: PathLike, audio: PathLike, output: PathLike | None = None, *,
           config: RenderConfig | None = None, force: bool = False, progress: Progress | None = None,
           warn: Warn | None = None, **options: Any) -> RenderResult:
    """Render ``photo`` speaking ``audio`` into ``output`` (default: ``<photo>_<audio>.mp4``
    in the working directory), an H.264 + AAC mp4 written atomically. ``options`` override
    ``config`` (default: ``RenderConfig()``); ``force`` overwrites an existing output."""
    config, given = _options(config, options)
    photo, audio = Path(photo), Path(audio)
    return render_video(photo, audio, _output(photo, audio, output), config, force=force,
                        progress=progress, warn=warn, motion=given)


def render_live(photo: PathLike, audio: PathLike | BinaryIO, output: str, *,
                pcm: PcmFormat | None = None, realtime: bool = False, force: bool = False,
                warn: Warn | None = None, **options: Any) -> RenderResult:
    """Render while the audio arrives and the video leaves: ``audio`` is a file, or a binary
    stream (``-`` is stdin) carrying a WAV stream, or raw PCM described by ``pcm``;
    ``output`` is an .mp4 path, ``-`` (a fragmented MP4 on stdout, playable as it comes) or
    an ffmpeg URL (``udp://``, ``tcp://``, ``srt://``, ``rtp://``, ``rtmp://``). Frames leave
    as soon as they are made (``realtime``: not before their time on the wall clock)."""
    import sys

    from talkinghead.audiostream import pcm_blocks, read_wav_header
    from talkinghead.load import audio_blocks
    from talkinghead.mux import ffmpeg_exe, url_scheme
    from talkinghead.pipeline import Stopwatch
    from talkinghead.pipeline import render_live as render_stream
    from talkinghead.provenance import settings_hash

    config, _ = _options(None, options)
    photo = Path(photo)
    if output != "-" and url_scheme(output) is None:
        if "://" in output:
            raise InputError(output, "unknown output URL scheme: use udp, tcp, srt, rtp or rtmp(s)")
        output = str(_output(photo, photo, output))
        check_before_work(Path(output), force)
    ffmpeg_exe()
    watch = Stopwatch()
    if isinstance(audio, str | Path) and str(audio) != "-":
        path = Path(audio)
        rate, channels, blocks = audio_blocks(path)  # read as the stream takes it
        settings = settings_hash(photo, path, config)
    else:
        stream = sys.stdin.buffer if isinstance(audio, str | Path) else audio
        if stream.isatty():
            raise InputError("-", "stdin is a terminal: pipe audio into it (wav, or raw PCM)")
        declared = None
        if pcm is None:
            pcm, declared = read_wav_header(stream, "-")
        rate, channels = pcm.rate, pcm.channels
        blocks = pcm_blocks(stream, pcm, "-", declared)
        settings = settings_hash(photo, Path(os.devnull), config)  # the audio is not known ahead
    setup = prepare(photo, config, warn=warn)
    watch.add(setup.seconds)
    return render_stream(setup, blocks, rate, channels, output, config, settings=settings,
                         realtime=realtime, watch=watch)


def reenact(photo: PathLike, driving: PathLike, output: PathLike | None = None, *,
            force: bool = False, progress: Progress | None = None, warn: Warn | None = None,
            **options: Any) -> RenderResult:
    """Animate ``photo`` with the motion and sound of the face in the ``driving`` video, at
    the driving video's frame rate unless ``fps`` is given."""
    from talkinghead.mux import probe

    photo, driving = Path(photo), Path(driving)
    if options.get("fps") is None:
        if not driving.is_file():
            raise InputError(driving, "file not found")
        options["fps"] = min(max(probe(driving).fps, 1.0), 120.0)
    config, _ = _options(None, options)
    return reenact_video(photo, driving, _output(photo, driving, output), config, force=force,
                         progress=progress, warn=warn)


class Avatar:
    """One photo, ready to speak any number of audio clips. ``from_photo`` does the work that
    depends on the photo alone, once: loading it, finding the face, encoding it, building
    the decoder and loading the motion weights. ``render``, ``motion`` and ``frames`` then
    take each clip; the same seed gives the same frames as ``talkinghead.render``."""

    def __init__(self, setup: PhotoSetup, config: RenderConfig) -> None:
        self._setup = setup
        self.config = config  # the defaults of every clip; options of a call override them

    @classmethod
    def from_photo(cls, photo: PathLike, *, config: RenderConfig | None = None,
                   progress: Progress | None = None, warn: Warn | None = None,
                   **options: Any) -> Avatar:
        """An Avatar of ``photo``. ``size``, ``full_frame``, ``face``, ``device`` and ``mouth`` are
        fixed here; every other option is a default the calls may override."""
        config, _ = _options(config, options)
        return cls(prepare(Path(photo), config, progress=progress, warn=warn), config)

    @property
    def photo(self) -> Path:
        return self._setup.photo

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the frames, pixels."""
        return self._setup.decoder.width, self._setup.decoder.height

    @property
    def source(self) -> MotionSequence:
        """The photo's own motion (one frame): motion is made and applied relative to it."""
        return self._setup.source

    @property
    def decoder(self) -> Decoder:
        """What turns motion into frames (``frames`` uses it batch by batch)."""
        return self._setup.decoder

    @property
    def setup_seconds(self) -> dict[str, float]:
        """Seconds ``from_photo`` spent per stage (load, face, encode, render)."""
        return dict(self._setup.seconds)

    def _config(self, options: dict[str, Any], base: RenderConfig | None = None
                ) -> tuple[RenderConfig, MotionSequence | None]:
        config, given = _options(base or self.config, options)
        for name in SETUP_OPTIONS:
            field = "face_index" if name == "face" else name
            asked = name in options or base is not None
            if asked and getattr(config, field) != getattr(self.config, field):
                raise InputError(None, f"--{name.replace('_', '-')} is fixed when the Avatar is made: "
                                       "pass it to Avatar.from_photo")
        return config, given

    def motion(self, audio: PathLike, **options: Any) -> MotionSequence:
        """The motion for every frame of ``audio`` (stages 4 and 5), controls applied."""
        from talkinghead.load import load_audio

        config, given = self._config(options)
        return clip_motion(self._setup, load_audio(audio), config, given=given)

    def frames(self, motion: MotionSequence, **options: Any) -> Iterator[np.ndarray]:
        """(H, W, 3) uint8 RGB frames of ``motion`` (stage 6), one by one, without ffmpeg.
        ``watermark`` and ``watermark_text`` apply as in ``render``."""
        config, _ = self._config(options)
        for batch in frame_batches(self._setup, motion, config):
            yield from batch

    def stream(self, chunks: Iterable[np.ndarray | bytes], *, sample_rate: int = 16_000,
               **options: Any) -> Iterator[Frame]:
        """Frames while the audio is still arriving: ``chunks`` are pieces of PCM at
        ``sample_rate`` (numpy arrays, float in [-1, 1] or integer, mono or (n, channels);
        or bytes of 16-bit little-endian mono), e.g. from a text-to-speech engine. Yields
        ``Frame``s (``index``, ``time`` in seconds, ``image`` (H, W, 3) uint8 RGB) as soon as
        each is made: the first after about 0.3 s of audio, then 5 every 0.2 s of audio.
        The frames do not depend on how the audio is cut into chunks; they come from the
        streaming engine (``stream.py``), whose motion differs from the whole-clip sampler's
        that ``render`` and ``motion`` use (README, "Streaming"). Needs the diffusion
        generator (the default motion)."""
        from talkinghead.stream import pcm_chunks, stream_batches

        config, given = self._config(options)
        streamer = None if given is not None else self._setup.motion_source(config).streamer(
            self.source, config.controls, fps=config.fps, seed=config.seed)
        if streamer is None:
            raise InputError(None, "streaming needs the diffusion generator (--motion diffusion): "
                                   "baseline rules and motion files need the whole clip")
        if not 1_000 <= sample_rate <= 384_000:
            raise InputError(None, f"sample_rate must be 1000-384000 Hz, got {sample_rate}")
        fps = config.fps
        batches = stream_batches(streamer, self.decoder, pcm_chunks(chunks, sample_rate),
                                 watermark=config.watermark)
        for first, images in batches:
            for i, image in enumerate(images):
                yield Frame(first + i, (first + i) / fps, image)
        preload_phone_decoder()  # the next clip's, while the caller is busy

    def render(self, audio: PathLike, output: PathLike | None = None, *, force: bool = False,
               progress: Progress | None = None, config: RenderConfig | None = None,
               **options: Any) -> RenderResult:
        """This photo speaking ``audio`` into ``output`` (stages 4-7), as ``talkinghead.render``
        would make it with the same options. ``config`` replaces the Avatar's defaults (its
        setup settings must be the Avatar's); ``options`` override either."""
        config, given = self._config(options, config)
        audio = Path(audio)
        output_path = _output(self.photo, audio, output)
        check_before_work(output_path, force)
        return render_clip(self._setup, audio, output_path, config, force=force,
                           progress=progress, motion=given)
