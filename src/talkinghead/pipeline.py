"""The pipeline, in the order of DESIGN.md: load, face, encode, audio, motion, render, mux.

``prepare`` runs the stages that depend on the photo alone (1-3, the motion weights and the
decoder) once; ``render_clip`` runs the rest for one audio clip, as often as wanted. ``render``
is the two in one call. The public API (``talkinghead.api``) is built on these.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from talkinghead.config import RenderConfig
from talkinghead.errors import InputError

if TYPE_CHECKING:
    from talkinghead.encode import Appearance
    from talkinghead.generator import MotionGenerator
    from talkinghead.load import AudioClip
    from talkinghead.motionspace import MotionSequence
    from talkinghead.renderer import Decoder
    from talkinghead.sources import MotionSource

Warn = Callable[[str], None]


class Progress(Protocol):
    """Where long work reports itself. The CLI draws bars; library callers may pass nothing."""

    def start(self, stage: str, total: int) -> None: ...

    def advance(self, steps: int = 1) -> None: ...


class _NoProgress:
    def start(self, stage: str, total: int) -> None:
        pass

    def advance(self, steps: int = 1) -> None:
        pass


@dataclass(frozen=True)
class RenderResult:
    output: Path | str  # a file, or "-" (stdout) or a URL for a streamed render
    frames: int
    fps: float
    width: int
    height: int
    audio_seconds: float
    seconds: float  # wall time of the whole render
    first_frame_seconds: float  # from the start until the first frame reached the encoder
    settings: str = ""  # the settings hash written into the output's tags (see provenance)
    stage_seconds: dict[str, float] = field(default_factory=dict)

    @property
    def render_fps(self) -> float:
        """Frames made per second of wall time."""
        return self.frames / max(self.seconds, 1e-9)


def default_output(photo: Path, audio: Path) -> Path:
    """``<photo-stem>_<audio-stem>.mp4`` in the working directory."""
    return Path.cwd() / f"{photo.stem}_{audio.stem}.mp4"


def check_output(path: Path, force: bool) -> None:
    """Refuse, before any work, an output that cannot or must not be written."""
    if path.is_dir():
        raise InputError(path, "output is a folder; give a file name ending in .mp4")
    if path.suffix.lower() != ".mp4":
        raise InputError(path, "output must be an .mp4 file")
    if path.exists() and not force:
        raise InputError(path, "output already exists (use --force to overwrite)")
    folder = path.parent
    if not folder.is_dir():
        raise InputError(path, f"output folder {folder} does not exist")
    try:  # a real write, not os.access: root, read-only mounts and ACLs all answer here
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".talkinghead-write-test-"):
            pass
    except OSError as exc:
        raise InputError(path, f"output folder {folder} is not writable ({exc.strerror})") from None


def check_before_work(output: Path, force: bool) -> None:
    """Refuse what would fail late: the output, and a missing ffmpeg."""
    from talkinghead.mux import ffmpeg_exe

    check_output(output, force)
    ffmpeg_exe()  # a missing ffmpeg is found now, not after minutes of work


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise InputError(None, "--device cuda asked for, but torch sees no CUDA GPU")
    return device


class Stopwatch:
    """Seconds spent per stage: ``lap(stage)`` charges the time since the last lap to it."""

    def __init__(self) -> None:
        self.started = self._clock = time.perf_counter()
        self.times: dict[str, float] = {}

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.times[stage] = self.times.get(stage, 0.0) + now - self._clock
        self._clock = now

    def add(self, times: dict[str, float]) -> None:
        """Charge stage times measured elsewhere (up to now) to their stages."""
        for stage, seconds in times.items():
            self.times[stage] = self.times.get(stage, 0.0) + seconds
        self._clock = time.perf_counter()


@dataclass
class PhotoSetup:
    """What one photo needs before any audio: stages 1-3, the decoder and the motion weights."""

    photo: Path
    appearance: Appearance
    source: MotionSequence  # the photo's own motion, one frame
    decoder: Decoder
    device: str
    seconds: dict[str, float]  # the setup's stage times
    generators: dict[Path, MotionGenerator] = field(default_factory=dict)  # by weights folder

    def generator(self, weights: Path) -> MotionGenerator:
        """The diffusion generator with the weights in ``weights``, loaded once."""
        from talkinghead.generator import MotionGenerator

        if weights not in self.generators:
            self.generators[weights] = MotionGenerator.load(weights, self.device)
        return self.generators[weights]

    def motion_source(self, config: RenderConfig, given: MotionSequence | None = None) -> MotionSource:
        """Where the clip's motion comes from: ``given``, the motion file, or a generator."""
        from talkinghead.motionfile import read_motion
        from talkinghead.sources import BaselineSource, DiffusionSource, GivenMotion

        if given is None and config.motion_file:
            given = read_motion(Path(config.motion_file))
        if given is not None:
            return GivenMotion(given)
        if config.motion == "diffusion":
            return DiffusionSource(self.generator(config.weights), config.sampler)
        return BaselineSource(config.fps)


def prepare(photo: Path, config: RenderConfig, *, progress: Progress | None = None,
            warn: Warn | None = None) -> PhotoSetup:
    """Stages 1-3 for ``photo`` (load, face, encode), the decoder, and the motion weights
    ``config`` asks for (first: a bad weights folder fails before any work)."""
    from talkinghead.encode import encode
    from talkinghead.face import find_face
    from talkinghead.load import load_portrait
    from talkinghead.renderer import MeshWarpRenderer

    progress = progress or _NoProgress()
    watch = Stopwatch()
    device = resolve_device(config.device)
    generators = {}
    if config.motion == "diffusion" and not config.motion_file:
        from talkinghead.generator import MotionGenerator

        generators[config.weights] = MotionGenerator.load(config.weights, device)
        generators[config.weights].denoiser()  # traced now, not when the first window waits for it
    mouth_net = None  # the procedural painter
    if config.mouth_weights is not None:
        from talkinghead.renderer.mouthnet import load_mouth_net

        mouth_net = load_mouth_net(config.mouth_weights, device)
    watch.lap("weights")
    # 1. load
    portrait = load_portrait(photo)
    watch.lap("load")
    # 2. face
    progress.start("face", 1)
    face = find_face(portrait, face_index=config.face_index, min_face_px=config.min_face_px, warn=warn)
    progress.advance()
    watch.lap("face")
    # 3. encode
    appearance, source = encode(portrait, face, size=config.size, full_frame=config.full_frame,
                                max_side=config.max_side)
    watch.lap("encode")
    decoder = MeshWarpRenderer(appearance, source, device=device, mouth_net=mouth_net)
    watch.lap("render")
    return PhotoSetup(photo=photo, appearance=appearance, source=source, decoder=decoder,
                      device=device, seconds=watch.times, generators=generators)


def clip_motion(setup: PhotoSetup, clip: AudioClip, config: RenderConfig, *,
                given: MotionSequence | None = None, progress: Progress | None = None,
                lap: Callable[[str], None] = lambda stage: None) -> MotionSequence:
    """Stages 4 and 5: the motion for every output frame of ``clip``, controls applied."""
    from talkinghead.audio import audio_features, frame_count
    from talkinghead.controls import apply_controls

    progress = progress or _NoProgress()
    source_of_motion = setup.motion_source(config, given)
    n_frames = frame_count(clip.duration, config.fps)
    features = None
    rate = source_of_motion.features_fps
    if rate is not None:
        # 4. audio features, at the rate the motion source reads them
        progress.start("audio", 1)
        features = audio_features(clip, rate, frame_count(clip.duration, rate))
        progress.advance()
        lap("audio")
    # 5. motion
    progress.start("motion", n_frames)
    motion = source_of_motion.motion(features, setup.source, config.controls, fps=config.fps,
                                     n_frames=n_frames, seed=config.seed)
    motion = apply_controls(motion, setup.source, config.controls)
    if motion.n_frames != n_frames:
        raise ValueError(f"motion has {motion.n_frames} frames, the audio needs {n_frames}")
    progress.advance(n_frames)
    lap("motion")
    return motion


def frame_batches(setup: PhotoSetup, motion: MotionSequence, config: RenderConfig
                  ) -> Iterator[np.ndarray]:
    """Stage 6: (B, H, W, 3) uint8 RGB frames, ``config.batch_size`` at a time, watermarked
    with ``config.watermark``."""
    from talkinghead.provenance import watermark

    for start in range(0, motion.n_frames, config.batch_size):
        frames = setup.decoder.render(motion.frames(start, start + config.batch_size))
        if config.watermark:
            watermark(frames, config.watermark)
        yield frames


def write_video(setup: PhotoSetup, batches: Iterable[np.ndarray], n_frames: int, output: Path,
                config: RenderConfig, *, audio: Path, channels: int, settings: str,
                progress: Progress, watch: Stopwatch) -> float:
    """Stages 6 and 7: frame batches streamed to the encoder as they come, tagged as
    synthetic with the settings hash. Returns the seconds until the first frame was written."""
    from talkinghead.mux import VideoWriter
    from talkinghead.provenance import metadata

    decoder = setup.decoder
    progress.start("render", n_frames)
    first_frame = 0.0
    with VideoWriter(output, width=decoder.width, height=decoder.height, fps=config.fps,
                     audio=audio, audio_channels=channels, crf=config.crf,
                     metadata=metadata(settings)) as writer:
        watch.lap("mux")
        for frames in batches:
            watch.lap("render")
            writer.write(frames)
            watch.lap("mux")
            first_frame = first_frame or time.perf_counter() - watch.started
            progress.advance(len(frames))
    watch.lap("mux")
    return first_frame


def render_clip(setup: PhotoSetup, audio: Path, output: Path, config: RenderConfig, *,
                force: bool = False, progress: Progress | None = None,
                motion: MotionSequence | None = None, watch: Stopwatch | None = None) -> RenderResult:
    """Stages 4-7: the prepared photo speaking ``audio`` into ``output`` (an mp4, written
    atomically). ``motion``, or the motion file ``config.motion_file``, replaces the
    generator. ``watch`` carries on timing a render that began before (``render``)."""
    from talkinghead.audio import frame_count
    from talkinghead.load import load_audio
    from talkinghead.provenance import settings_hash

    progress = progress or _NoProgress()
    watch = watch or Stopwatch()
    check_before_work(output, force)
    clip = load_audio(audio)
    settings = settings_hash(setup.photo, audio, config, motion)
    watch.lap("load")
    n_frames = frame_count(clip.duration, config.fps)
    # A file renders with the whole-clip window sampler, not the streaming engine: the
    # engine's motion (windows of 5 frames, 120 ms lookahead, from a network trained on whole
    # 3 s windows) measured jitterier, with weaker lip sync and 15x the motion cost (README,
    # "Streaming"); it serves live input only until a generator trained for it exists.
    made = clip_motion(setup, clip, config, given=motion, progress=progress, lap=watch.lap)
    first_frame = write_video(setup, frame_batches(setup, made, config), n_frames, output, config,
                              audio=clip.path, channels=clip.channels, settings=settings,
                              progress=progress, watch=watch)
    return RenderResult(output=output, frames=n_frames, fps=config.fps,
                        width=setup.decoder.width, height=setup.decoder.height,
                        audio_seconds=clip.duration, seconds=time.perf_counter() - watch.started,
                        first_frame_seconds=first_frame, settings=settings,
                        stage_seconds=watch.times)


def render(photo: Path, audio: Path, output: Path, config: RenderConfig, *, force: bool = False,
           progress: Progress | None = None, warn: Warn | None = None,
           motion: MotionSequence | None = None) -> RenderResult:
    """Render ``photo`` speaking ``audio`` into ``output``: ``prepare``, then ``render_clip``."""
    check_before_work(output, force)
    watch = Stopwatch()
    setup = prepare(photo, config, progress=progress, warn=warn)
    watch.add(setup.seconds)
    return render_clip(setup, audio, output, config, force=force, progress=progress, motion=motion,
                       watch=watch)


def reenact(photo: Path, driving: Path, output: Path, config: RenderConfig, *,
            force: bool = False, progress: Progress | None = None,
            warn: Warn | None = None) -> RenderResult:
    """Animate ``photo`` with the motion of the face in the ``driving`` video and its sound.

    The driving face's change from its first frame moves the photo's face from its own
    state (pose, expression, gaze). The output has the driving video's length, at
    ``config.fps``; a driving video without sound gives a silent track (and a warning).
    """
    import soundfile as sf

    from talkinghead.audio import frame_count
    from talkinghead.extract import extract_motion
    from talkinghead.motionfile import relative_to, retime
    from talkinghead.mux import decode_audio, probe
    from talkinghead.provenance import settings_hash

    progress = progress or _NoProgress()
    check_before_work(output, force)
    watch = Stopwatch()
    # 1. load, 2. face, 3. encode: the photo as for render
    setup = prepare(photo, config, progress=progress, warn=warn)
    watch.add(setup.seconds)
    # 4-5. the driving video's motion and sound instead of audio features and a generator
    if not driving.is_file():
        raise InputError(driving, "file not found")
    info = probe(driving)
    settings = settings_hash(photo, driving, config)
    progress.start("extract", max(1, round(info.duration * info.fps)))
    extracted = extract_motion(driving, on_frames=progress.advance)
    watch.lap("extract")
    driven = extracted.motion
    n_frames = frame_count(driven.n_frames / driven.fps, config.fps)
    motion = relative_to(retime(driven, config.fps, n_frames), setup.source)
    watch.lap("motion")
    sound = decode_audio(driving, 48_000)
    with tempfile.TemporaryDirectory(prefix="talkinghead-") as scratch:
        if sound is None or not np.any(sound):
            if warn is not None:
                warn(f"{driving}: no sound; the output's audio track is silent")
            audio, channels = Path(scratch) / "silence.wav", 1
            sf.write(audio, np.zeros(round(n_frames / config.fps * 16_000), np.float32), 16_000)
        else:
            audio, channels = driving, sound.shape[1]
        # 6. render and 7. mux
        first_frame = write_video(setup, frame_batches(setup, motion, config), motion.n_frames,
                                  output, config, audio=audio, channels=channels,
                                  settings=settings, progress=progress, watch=watch)
    return RenderResult(output=output, frames=n_frames, fps=config.fps, width=setup.decoder.width,
                        height=setup.decoder.height, audio_seconds=n_frames / config.fps,
                        seconds=time.perf_counter() - watch.started, first_frame_seconds=first_frame,
                        settings=settings, stage_seconds=watch.times)


def render_live(setup: PhotoSetup, audio: Iterable[np.ndarray], pcm_rate: int, channels: int,
                target: str, config: RenderConfig, *, settings: str, realtime: bool = False,
                watch: Stopwatch | None = None) -> RenderResult:
    """Stages 4-7 while the audio arrives: ``audio`` yields (n, channels) float32 blocks at
    ``pcm_rate`` (a pipe, a file read in pieces); frames go to ``target`` (an .mp4 path,
    ``-`` for stdout, or an ffmpeg URL) as soon as they are made, with the audio beside them.
    ``realtime`` holds each frame back until its time has come on the wall clock."""
    from talkinghead.load import check_duration
    from talkinghead.mux import StreamWriter
    from talkinghead.provenance import metadata
    from talkinghead.stream import pcm_chunks, stream_batches

    watch = watch or Stopwatch()
    streamer = setup.motion_source(config).streamer(setup.source, config.controls, fps=config.fps,
                                                    seed=config.seed)
    if streamer is None:
        raise InputError(None, "streaming needs the diffusion generator (--motion diffusion): "
                               "baseline rules and motion files need the whole clip")
    heard = 0
    first_frame, started = 0.0, None
    engine: dict[str, float] = {}
    with StreamWriter(target, width=setup.decoder.width, height=setup.decoder.height, fps=config.fps,
                      audio_rate=pcm_rate, audio_channels=channels, crf=config.crf,
                      metadata=metadata(settings)) as writer:

        def passed_on() -> Iterator[np.ndarray]:
            nonlocal heard
            for block in audio:
                writer.write_audio(block)
                heard += len(block)
                yield block

        watch.lap("mux")
        for first, frames in stream_batches(streamer, setup.decoder, pcm_chunks(passed_on(), pcm_rate),
                                            watermark=config.watermark, seconds=engine):
            watch.lap("render")
            if realtime:
                started = started or time.perf_counter()
                time.sleep(max(0.0, started + first / config.fps - time.perf_counter()))
            writer.write(frames)
            watch.lap("mux")
            first_frame = first_frame or time.perf_counter() - watch.started
        check_duration(None, heard / pcm_rate)
    watch.lap("mux")
    # The engine's stages ran on its own thread beside the renderer (``stream_batches``): each
    # stage's own seconds, which may add up to more than the wall time. What this thread spent
    # waiting for motion is no stage's.
    for stage, seconds in engine.items():
        watch.times[stage] = seconds if stage == "render" else watch.times.get(stage, 0.0) + seconds
    return RenderResult(output=target, frames=writer.frames_written, fps=config.fps,
                        width=setup.decoder.width, height=setup.decoder.height,
                        audio_seconds=heard / pcm_rate, seconds=time.perf_counter() - watch.started,
                        first_frame_seconds=first_frame, settings=settings, stage_seconds=watch.times)
