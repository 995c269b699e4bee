"""Run configuration: the one home for defaults. The CLI fills it, the pipeline reads it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from talkinghead.controls import Controls

Device = Literal["cpu", "cuda", "auto"]
MotionKind = Literal["baseline", "diffusion"]
# The weights the project trains and ships (weights/ beside src/ in a checkout).
DEFAULT_WEIGHTS = Path(__file__).resolve().parents[2] / "weights"


@dataclass(frozen=True)
class RenderConfig:
    fps: float = 25.0  # output frames per second
    size: int = 512  # side of the face-centred square crop, pixels (ignored with full_frame)
    full_frame: bool = False  # keep the photo's own framing instead of a face-centred crop
    max_side: int = 1920  # full-frame outputs are scaled down to fit this, pixels
    seed: int = 0  # one seed drives every random choice: same inputs + seed = same video
    device: Device = "auto"  # torch device for motion and rendering
    motion: MotionKind = "diffusion"  # motion generator: the diffusion transformer, or rules
    weights: Path = DEFAULT_WEIGHTS  # folder with the diffusion weights and their MANIFEST.json
    steps: int = 8  # diffusion sampler steps per window
    cfg_audio: float = 1.5  # guidance scale of the audio (1 = plain conditional)
    cfg_controls: float = 1.0  # guidance scale of gaze, head distance and emotion
    gaze: tuple[float, float] | Literal["camera"] | None = None  # eyes in the head, degrees
    head_distance: float = 1.0  # 1 = as in the photo, < 1 = farther away
    emotion: str = "neutral"  # neutral, happy, sad, angry, surprised
    emotion_intensity: float = 1.0  # 0-1
    head_motion: float = 1.0  # scale of the head's movement
    expression: float = 1.0  # scale of non-speech expression movement
    still: bool = False  # lips and blinks only: head and eyes held
    motion_file: str | None = None  # a motion file (.json/.csv) played instead of the generator
    face_index: int | None = None  # which face when several are found (0 = largest)
    batch_size: int = 8  # frames rendered per batch
    crf: int = 18  # x264 quality (lower is better, 18 is visually lossless)
    min_face_px: int = 48  # faces narrower than this in the photo are refused, pixels
    watermark: str | None = None  # a visible label drawn into every frame, or none

    def __post_init__(self) -> None:
        if not 1.0 <= self.fps <= 120.0:
            raise ValueError(f"fps must be between 1 and 120, got {self.fps}")
        if not 64 <= self.size <= 2048:
            raise ValueError(f"size must be between 64 and 2048, got {self.size}")
        if self.size % 2:
            raise ValueError(f"size must be even (H.264 needs even frame sides), got {self.size}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {self.batch_size}")
        if not 1 <= self.steps <= 50:
            raise ValueError(f"steps must be between 1 and 50, got {self.steps}")
        self.controls()  # checks the control values

    def controls(self) -> Controls:
        return Controls(gaze=self.gaze, head_distance=self.head_distance, emotion=self.emotion,
                        emotion_intensity=self.emotion_intensity, head_motion=self.head_motion,
                        expression=self.expression, still=self.still)
