"""The pipeline, in the order of DESIGN.md: load, face, encode, audio, motion, render, mux."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from talkinghead.config import RenderConfig
from talkinghead.errors import InputError

if TYPE_CHECKING:
    from talkinghead.encode import Appearance
    from talkinghead.load import Portrait
    from talkinghead.motionspace import MotionSequence


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
    output: Path
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


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise InputError(None, "--device cuda asked for, but torch sees no CUDA GPU")
    return device


class _Stopwatch:
    """Seconds spent per stage: ``lap(stage)`` charges the time since the last lap to it."""

    def __init__(self) -> None:
        self.started = self._clock = time.perf_counter()
        self.times: dict[str, float] = {}

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.times[stage] = self.times.get(stage, 0.0) + now - self._clock
        self._clock = now


def _before_any_work(output: Path, force: bool, config: RenderConfig) -> str:
    """Refuse what would fail late (the output, a missing ffmpeg, the device); the device."""
    from talkinghead.mux import ffmpeg_exe

    check_output(output, force)
    ffmpeg_exe()  # a missing ffmpeg is found now, not after minutes of work
    return resolve_device(config.device)


def _face_and_encode(portrait: Portrait, config: RenderConfig, progress: Progress,
                     warn: Callable[[str], None] | None,
                     lap: Callable[[str], None]) -> tuple[Appearance, MotionSequence]:
    """Stages 2 and 3: find the face, then split the photo into appearance and its own motion."""
    from talkinghead.encode import encode
    from talkinghead.face import find_face

    progress.start("face", 1)
    face = find_face(portrait, face_index=config.face_index, min_face_px=config.min_face_px,
                     warn=warn)
    progress.advance()
    lap("face")
    appearance, source = encode(portrait, face, config)
    lap("encode")
    return appearance, source


def render(photo: Path, audio: Path, output: Path, config: RenderConfig, *, force: bool = False,
           progress: Progress | None = None, warn: Callable[[str], None] | None = None,
           motion: MotionSequence | None = None) -> RenderResult:
    """Render ``photo`` speaking ``audio`` into ``output`` (an mp4, written atomically).

    ``motion``, or the motion file ``config.motion_file``, replaces the generator: it is
    retimed to ``config.fps``, trimmed or held to the audio's length, and applied relative to
    the photo (``motionfile.relative_to``).
    """
    from talkinghead.audio import audio_features, frame_count
    from talkinghead.controls import apply_controls, with_emotion
    from talkinghead.load import load_audio, load_portrait
    from talkinghead.motion import baseline_motion
    from talkinghead.motionfile import read_motion, relative_to, retime
    from talkinghead.provenance import settings_hash

    progress = progress or _NoProgress()
    device = _before_any_work(output, force, config)
    watch = _Stopwatch()
    lap, started, times = watch.lap, watch.started, watch.times

    # 1. load (the motion weights first: a bad weights folder fails before any work)
    generator = None
    if config.motion == "diffusion" and motion is None and not config.motion_file:
        from talkinghead.generator import MotionGenerator

        generator = MotionGenerator.load(config.weights, device)
    portrait = load_portrait(photo)
    clip = load_audio(audio)
    if motion is None and config.motion_file:
        motion = read_motion(Path(config.motion_file))
    settings = settings_hash(photo, audio, config)
    lap("load")
    # 2. face and 3. encode
    appearance, source = _face_and_encode(portrait, config, progress, warn, lap)
    n_frames = frame_count(clip.duration, config.fps)
    controls = config.controls()
    if motion is None:
        # 4. audio features, at the frame rate the motion is made at: the generator's own (it
        # learned motion at that rate), else the output's
        progress.start("audio", 1)
        fps = generator.fps if generator is not None else config.fps
        features = audio_features(clip, fps, frame_count(clip.duration, fps))
        progress.advance()
        lap("audio")
        # 5. motion
        progress.start("motion", n_frames)
        if generator is not None:
            from talkinghead.generator import SampleOptions, diffusion_motion

            options = SampleOptions(steps=config.steps, cfg_audio=config.cfg_audio,
                                    cfg_controls=config.cfg_controls)
            motion = diffusion_motion(features, source, controls, generator, seed=config.seed,
                                      options=options)
            if fps != config.fps:
                motion = retime(motion, config.fps, n_frames)
        else:
            motion = with_emotion(baseline_motion(features, source, config.seed), controls)
        progress.advance(n_frames)
    else:
        motion = relative_to(retime(motion, config.fps, n_frames), source)
    motion = apply_controls(motion, source, controls)
    lap("motion")
    # 6. render and 7. mux, streamed batch by batch
    width, height, first_frame = _render_and_mux(
        appearance, source, motion, output, config, device, clip.path, clip.channels, settings,
        progress, lap, started)
    return RenderResult(output=output, frames=n_frames, fps=config.fps, width=width,
                        height=height, audio_seconds=clip.duration,
                        seconds=time.perf_counter() - started, first_frame_seconds=first_frame,
                        settings=settings, stage_seconds=times)


def _render_and_mux(appearance: Appearance, source: MotionSequence, motion: MotionSequence,
                    output: Path, config: RenderConfig, device: str, audio: Path, channels: int,
                    settings: str, progress: Progress, lap: Callable[[str], None],
                    started: float) -> tuple[int, int, float]:
    """Stages 6 and 7: frames rendered batch by batch (watermarked with
    ``config.watermark``) and streamed to the encoder, tagged as synthetic with the settings
    hash. Returns the frame width, height and the seconds until the first frame was written."""
    from talkinghead.mux import VideoWriter
    from talkinghead.provenance import metadata, watermark
    from talkinghead.render import MeshWarpRenderer

    renderer = MeshWarpRenderer(appearance, source, device=device)
    lap("render")
    progress.start("render", motion.n_frames)
    first_frame = 0.0
    with VideoWriter(output, width=renderer.width, height=renderer.height, fps=config.fps,
                     audio=audio, audio_channels=channels, crf=config.crf,
                     metadata=metadata(settings)) as writer:
        lap("mux")
        for start in range(0, motion.n_frames, config.batch_size):
            frames = renderer.render(motion.frames(start, start + config.batch_size))
            if config.watermark:
                watermark(frames, config.watermark)
            lap("render")
            writer.write(frames)
            lap("mux")
            first_frame = first_frame or time.perf_counter() - started
            progress.advance(len(frames))
    lap("mux")
    return renderer.width, renderer.height, first_frame


def reenact(photo: Path, driving: Path, output: Path, config: RenderConfig, *,
            force: bool = False, progress: Progress | None = None,
            warn: Callable[[str], None] | None = None) -> RenderResult:
    """Animate ``photo`` with the motion of the face in the ``driving`` video and its sound.

    The driving face's change from its first frame moves the photo's face from its own
    state (pose, expression, gaze). The output has the driving video's length, at
    ``config.fps``; a driving video without sound gives a silent track (and a warning).
    """
    import soundfile as sf

    from talkinghead.audio import frame_count
    from talkinghead.extract import extract_motion
    from talkinghead.load import load_portrait
    from talkinghead.motionfile import relative_to, retime
    from talkinghead.mux import decode_audio, probe
    from talkinghead.provenance import settings_hash

    progress = progress or _NoProgress()
    device = _before_any_work(output, force, config)
    watch = _Stopwatch()
    lap, started, times = watch.lap, watch.started, watch.times

    # 1. load, 2. face, 3. encode: the photo as for render
    portrait = load_portrait(photo)
    lap("load")
    appearance, source = _face_and_encode(portrait, config, progress, warn, lap)
    # 4-5. the driving video's motion and sound instead of audio features and a generator
    if not driving.is_file():
        raise InputError(driving, "file not found")
    info = probe(driving)
    settings = settings_hash(photo, driving, config)
    progress.start("extract", max(1, round(info.duration * info.fps)))
    extracted = extract_motion(driving, on_frames=progress.advance)
    lap("extract")
    driven = extracted.motion
    n_frames = frame_count(driven.n_frames / driven.fps, config.fps)
    motion = relative_to(retime(driven, config.fps, n_frames), source)
    lap("motion")
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
        width, height, first_frame = _render_and_mux(
            appearance, source, motion, output, config, device, audio, channels, settings,
            progress, lap, started)
    return RenderResult(output=output, frames=n_frames, fps=config.fps, width=width,
                        height=height, audio_seconds=n_frames / config.fps,
                        seconds=time.perf_counter() - started, first_frame_seconds=first_frame,
                        settings=settings, stage_seconds=times)
