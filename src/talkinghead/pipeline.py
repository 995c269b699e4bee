"""The pipeline, in the order of DESIGN.md: load, face, encode, audio, motion, render, mux."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from talkinghead import __version__
from talkinghead.config import RenderConfig
from talkinghead.errors import InputError


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


def render(photo: Path, audio: Path, output: Path, config: RenderConfig, *, force: bool = False,
           progress: Progress | None = None,
           warn: Callable[[str], None] | None = None) -> RenderResult:
    """Render ``photo`` speaking ``audio`` into ``output`` (an mp4, written atomically)."""
    from talkinghead.audio import audio_features, frame_count
    from talkinghead.controls import apply_controls, with_emotion
    from talkinghead.encode import encode
    from talkinghead.face import find_face
    from talkinghead.load import load_audio, load_portrait
    from talkinghead.motion import baseline_motion
    from talkinghead.mux import VideoWriter
    from talkinghead.render import MeshWarpRenderer

    progress = progress or _NoProgress()
    check_output(output, force)
    device = resolve_device(config.device)
    times: dict[str, float] = {}
    started = clock = time.perf_counter()

    def lap(stage: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        times[stage] = times.get(stage, 0.0) + now - clock
        clock = now

    # 1. load (the motion weights first: a bad weights folder fails before any work)
    generator = None
    if config.motion == "diffusion":
        from talkinghead.generator import MotionGenerator

        generator = MotionGenerator.load(config.weights, device)
    portrait = load_portrait(photo)
    clip = load_audio(audio)
    lap("load")
    # 2. face
    progress.start("face", 1)
    face = find_face(portrait, face_index=config.face_index, min_face_px=config.min_face_px,
                     warn=warn)
    progress.advance()
    lap("face")
    # 3. encode
    appearance, source = encode(portrait, face, config)
    lap("encode")
    # 4. audio features
    n_frames = frame_count(clip.duration, config.fps)
    progress.start("audio", 1)
    features = audio_features(clip, config.fps, n_frames)
    progress.advance()
    lap("audio")
    # 5. motion
    progress.start("motion", n_frames)
    controls = config.controls()
    if generator is not None:
        from talkinghead.generator import SampleOptions, diffusion_motion

        options = SampleOptions(steps=config.steps, cfg_audio=config.cfg_audio,
                                cfg_controls=config.cfg_controls)
        motion = diffusion_motion(features, source, controls, generator, seed=config.seed,
                                  options=options)
    else:
        motion = with_emotion(baseline_motion(features, source, config.seed), controls)
    motion = apply_controls(motion, source, controls)
    progress.advance(n_frames)
    lap("motion")
    # 6. render and 7. mux, streamed batch by batch
    renderer = MeshWarpRenderer(appearance, source, device=device)
    lap("render")
    progress.start("render", n_frames)
    first_frame = 0.0
    metadata = {"comment": f"Synthetic video generated by talkinghead {__version__}"}
    with VideoWriter(output, width=renderer.width, height=renderer.height, fps=config.fps,
                     audio=clip.path, audio_channels=clip.channels, crf=config.crf,
                     metadata=metadata) as writer:
        lap("mux")
        for start in range(0, n_frames, config.batch_size):
            frames = renderer.render(motion.frames(start, start + config.batch_size))
            lap("render")
            writer.write(frames)
            lap("mux")
            first_frame = first_frame or time.perf_counter() - started
            progress.advance(len(frames))
    lap("mux")
    return RenderResult(output=output, frames=n_frames, fps=config.fps, width=renderer.width,
                        height=renderer.height, audio_seconds=clip.duration,
                        seconds=time.perf_counter() - started, first_frame_seconds=first_frame,
                        stage_seconds=times)
