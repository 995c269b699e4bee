"""Controls: what a user asks of the motion besides the audio (gaze, head distance, emotion,
amplitudes, stillness), and how a generated motion sequence is made to obey them.

Both generators share ``apply_controls``: the diffusion generator is also conditioned on gaze,
distance and emotion, and this pass makes the requests exact (the distance sets the mean head
scale, ``camera`` gaze counter-rotates the eyes against the head) and applies the amplitude
scales and ``still``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from talkinghead.limits import OptionError, check_range
from talkinghead.motionspace import EXPRESSION_NAMES, MotionSequence, expression_index

EMOTIONS: tuple[str, ...] = ("neutral", "happy", "sad", "angry", "surprised")

# Expression offsets of each emotion at intensity 1 (added to the face's own expression).
EMOTION_EXPRESSION: dict[str, dict[str, float]] = {
    "neutral": {},
    "happy": {"mouthSmileLeft": 0.55, "mouthSmileRight": 0.55, "cheekSquintLeft": 0.35,
              "cheekSquintRight": 0.35, "eyeSquintLeft": 0.2, "eyeSquintRight": 0.2},
    "sad": {"mouthFrownLeft": 0.45, "mouthFrownRight": 0.45, "browInnerUp": 0.5,
            "mouthShrugLower": 0.2, "eyeSquintLeft": 0.1, "eyeSquintRight": 0.1},
    "angry": {"browDownLeft": 0.6, "browDownRight": 0.6, "mouthPressLeft": 0.25,
              "mouthPressRight": 0.25, "eyeSquintLeft": 0.3, "eyeSquintRight": 0.3,
              "mouthStretchLeft": 0.15, "mouthStretchRight": 0.15},
    "surprised": {"browInnerUp": 0.6, "browOuterUpLeft": 0.6, "browOuterUpRight": 0.6,
                  "eyeWideLeft": 0.5, "eyeWideRight": 0.5, "jawOpen": 0.05},
}
# Head motion energy of each emotion relative to neutral, and its mean head pitch (degrees).
EMOTION_ENERGY: dict[str, float] = {"neutral": 1.0, "happy": 1.25, "sad": 0.6, "angry": 1.4,
                                    "surprised": 1.2}
EMOTION_PITCH: dict[str, float] = {"neutral": 0.0, "happy": 1.0, "sad": -3.0, "angry": -1.0,
                                   "surprised": 2.0}

# Channels that carry speech (lips, jaw) or blinks: kept by --still and --expression.
SPEECH_CHANNELS: tuple[str, ...] = (
    "jawOpen", "mouthClose", "mouthFunnel", "mouthPucker", "mouthPressLeft", "mouthPressRight",
    "mouthLowerDownLeft", "mouthLowerDownRight", "mouthUpperUpLeft", "mouthUpperUpRight",
    "mouthRollLower", "mouthRollUpper", "mouthStretchLeft", "mouthStretchRight",
    "eyeBlinkLeft", "eyeBlinkRight",
)


@dataclass(frozen=True)
class Controls:
    gaze: tuple[float, float] | Literal["camera"] | None = None  # eyes in the head, degrees
    head_distance: float = 1.0  # 1 = as in the photo, < 1 = farther away (smaller head)
    emotion: str = "neutral"  # one of EMOTIONS
    emotion_intensity: float = 1.0  # 0-1
    head_motion: float = 1.0  # scale of head movement around the photo's pose
    expression: float = 1.0  # scale of non-speech expression movement (brows, smiles, ...)
    still: bool = False  # head and eyes held still: lips and blinks only

    def __post_init__(self) -> None:
        if self.emotion not in EMOTIONS:
            raise OptionError("emotion", f"{self.emotion!r} is unknown: choose from {', '.join(EMOTIONS)}")
        for name in ("emotion_intensity", "head_distance", "head_motion", "expression"):
            check_range(name, getattr(self, name))

    def emotion_vector(self) -> np.ndarray:
        """(len(EMOTIONS),) one-hot times intensity."""
        out = np.zeros(len(EMOTIONS), np.float32)
        out[EMOTIONS.index(self.emotion)] = self.emotion_intensity
        return out


def emotion_offsets(emotion: str, intensity: float) -> np.ndarray:
    """(E,) expression offsets of an emotion."""
    out = np.zeros(len(EXPRESSION_NAMES), np.float32)
    for name, value in EMOTION_EXPRESSION[emotion].items():
        out[expression_index(name)] = value * intensity
    return out


def parse_gaze(text: str) -> tuple[float, float] | Literal["camera"]:
    """``"yaw,pitch"`` in degrees, or ``"camera"``."""
    if text.strip().lower() == "camera":
        return "camera"
    try:
        yaw, pitch = (float(v) for v in text.split(","))
    except ValueError:
        raise ValueError(f"gaze must be 'yaw,pitch' in degrees or 'camera', got {text!r}") from None
    if abs(yaw) > 40 or abs(pitch) > 30:
        raise ValueError(f"gaze within +-40 deg yaw and +-30 deg pitch, got {text!r}")
    return yaw, pitch


def parse_emotion(text: str) -> tuple[str, float]:
    """``"NAME"`` or ``"NAME:INTENSITY"`` (intensity 0-1, default 1)."""
    name, _, value = text.strip().lower().partition(":")
    if name not in EMOTIONS:
        raise ValueError(f"unknown emotion {name!r}: choose from {', '.join(EMOTIONS)}")
    try:
        intensity = float(value) if value else 1.0
    except ValueError:
        raise ValueError(f"emotion intensity must be a number in [0, 1], got {value!r}") from None
    if not 0.0 <= intensity <= 1.0:
        raise ValueError(f"emotion intensity must be in [0, 1], got {intensity}")
    return name, intensity


def with_emotion(motion: MotionSequence, controls: Controls) -> MotionSequence:
    """``motion`` with the emotion's expression offsets added (for generators that do not
    model emotion themselves, such as the baseline)."""
    expression = motion.expression + emotion_offsets(controls.emotion, controls.emotion_intensity)
    return MotionSequence(fps=motion.fps, pose=motion.pose, gaze=motion.gaze,
                          expression=np.clip(expression, 0.0, 1.0).astype(np.float32))


def apply_controls(motion: MotionSequence, source: MotionSequence, controls: Controls, *,
                   scale_mean: np.ndarray | None = None, gaze_mean: np.ndarray | None = None
                   ) -> MotionSequence:
    """``motion`` (generated around ``source``) with the controls' requests made exact.
    The head distance and a requested gaze are set against the motion's mean scale and gaze:
    ``scale_mean`` (T,) and ``gaze_mean`` (T, 2) give them per frame (the streaming engine's
    running means up to each frame), else they are ``motion``'s own."""
    pose = motion.pose.astype(np.float64).copy()
    expression = motion.expression.astype(np.float64).copy()
    gaze = motion.gaze.astype(np.float64).copy()
    speech = np.isin(np.array(EXPRESSION_NAMES), SPEECH_CHANNELS)

    head_scale = 0.0 if controls.still else controls.head_motion
    pose[:, :5] = source.pose[0, :5] + head_scale * (pose[:, :5] - source.pose[0, :5])
    mean_scale = pose[:, 5].mean() if scale_mean is None else scale_mean
    relative_scale = pose[:, 5] / np.maximum(mean_scale, 1e-6)
    pose[:, 5] = source.pose[0, 5] * controls.head_distance * (1.0 + head_scale * (relative_scale - 1.0))

    expression_scale = 0.0 if controls.still else controls.expression
    rest = source.expression[0].astype(np.float64)
    if controls.still:
        rest = rest + emotion_offsets(controls.emotion, controls.emotion_intensity)
    expression[:, ~speech] = rest[~speech] + expression_scale * (expression[:, ~speech] - rest[~speech])

    if controls.gaze == "camera":
        gaze = -pose[:, :2]  # eyes turn against the head: the line of sight stays on the lens
    elif controls.gaze is not None:
        requested = np.asarray(controls.gaze, np.float64)
        mean_gaze = gaze.mean(axis=0) if gaze_mean is None else gaze_mean
        movement = 0.0 if controls.still else gaze - mean_gaze
        gaze = requested + movement
    elif controls.still:
        gaze = np.repeat(source.gaze[:1].astype(np.float64), motion.n_frames, axis=0)
    return MotionSequence(fps=motion.fps, pose=pose.astype(np.float32),
                          expression=np.clip(expression, 0.0, 1.0).astype(np.float32),
                          gaze=gaze.astype(np.float32))
