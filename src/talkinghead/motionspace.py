"""The motion space: what the motion generator produces and the renderer consumes.

Every frame of motion is three named, disentangled parts:

- head pose (``POSE_NAMES``): yaw, pitch, roll in degrees in camera axes (x right, y down,
  z away from the camera). yaw > 0 turns the nose toward the image's right, pitch > 0 lifts
  the nose, roll > 0 tilts the head clockwise as seen in the image. tx, ty move the head, in
  units of the source face's inter-ocular distance, relative to where it is in the photo;
  scale is the head's size relative to the photo (1 = as in the photo, < 1 = farther away).
- facial dynamics (``EXPRESSION_NAMES``): Apple ARKit blendshape coefficients in [0, 1],
  named as ARKit names them ("Left" is the subject's left, the image's right).
- eye gaze (``GAZE_NAMES``): yaw and pitch of the eyes within the head, degrees, with the same
  signs as the head's.

``MotionSequence.to_array`` gives the one flat layout the networks see: pose, then expression,
then gaze, in the orders below. Nothing else may slice motion by position.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

POSE_NAMES: tuple[str, ...] = ("yaw", "pitch", "roll", "tx", "ty", "scale")

EXPRESSION_NAMES: tuple[str, ...] = (
    "jawOpen",
    "mouthClose",
    "mouthFunnel",
    "mouthPucker",
    "mouthSmileLeft",
    "mouthSmileRight",
    "mouthFrownLeft",
    "mouthFrownRight",
    "mouthStretchLeft",
    "mouthStretchRight",
    "mouthPressLeft",
    "mouthPressRight",
    "mouthLowerDownLeft",
    "mouthLowerDownRight",
    "mouthUpperUpLeft",
    "mouthUpperUpRight",
    "mouthRollLower",
    "mouthRollUpper",
    "mouthShrugLower",
    "mouthShrugUpper",
    "browDownLeft",
    "browDownRight",
    "browOuterUpLeft",
    "browOuterUpRight",
    "browInnerUp",
    "cheekSquintLeft",
    "cheekSquintRight",
    "eyeBlinkLeft",
    "eyeBlinkRight",
    "eyeSquintLeft",
    "eyeSquintRight",
    "eyeWideLeft",
    "eyeWideRight",
)

GAZE_NAMES: tuple[str, ...] = ("gazeYaw", "gazePitch")

MOTION_NAMES: tuple[str, ...] = POSE_NAMES + EXPRESSION_NAMES + GAZE_NAMES
NEUTRAL_POSE = np.array([0.0, 0.0, 0.0, 0.0, 0.0, 1.0], dtype=np.float32)


def expression_index(name: str) -> int:
    """Position of an ARKit coefficient in ``EXPRESSION_NAMES``; KeyError names the typo."""
    try:
        return EXPRESSION_NAMES.index(name)
    except ValueError:
        raise KeyError(f"unknown expression coefficient {name!r}") from None


@dataclass(frozen=True)
class MotionSequence:
    """Motion of T frames at ``fps``. Time is axis 0 of every array."""

    fps: float
    pose: np.ndarray  # (T, 6) float32, POSE_NAMES: degrees, inter-ocular units, ratio
    expression: np.ndarray  # (T, E) float32, EXPRESSION_NAMES, each in [0, 1]
    gaze: np.ndarray  # (T, 2) float32, GAZE_NAMES, degrees

    def __post_init__(self) -> None:
        t = self.pose.shape[0]
        expected = {
            "pose": (t, len(POSE_NAMES)),
            "expression": (t, len(EXPRESSION_NAMES)),
            "gaze": (t, len(GAZE_NAMES)),
        }
        for field, shape in expected.items():
            value = getattr(self, field)
            if value.shape != shape:
                raise ValueError(f"MotionSequence.{field} has shape {value.shape}, expected {shape}")
            if not np.all(np.isfinite(value)):
                raise ValueError(f"MotionSequence.{field} holds NaN or infinite values")
        if self.fps <= 0:
            raise ValueError(f"MotionSequence.fps must be positive, got {self.fps}")

    @property
    def n_frames(self) -> int:
        return int(self.pose.shape[0])

    def to_array(self) -> np.ndarray:
        """The flat layout, (T, 6 + E + 2) float32, columns named by ``MOTION_NAMES``."""
        return np.concatenate([self.pose, self.expression, self.gaze], axis=1).astype(np.float32)

    @classmethod
    def from_array(cls, array: np.ndarray, fps: float) -> MotionSequence:
        if array.ndim != 2 or array.shape[1] != len(MOTION_NAMES):
            raise ValueError(f"motion array has shape {array.shape}, expected (T, {len(MOTION_NAMES)})")
        p, e = len(POSE_NAMES), len(EXPRESSION_NAMES)
        array = np.asarray(array, dtype=np.float32)
        return cls(fps=fps, pose=array[:, :p], expression=array[:, p : p + e], gaze=array[:, p + e :])

    @classmethod
    def still(cls, pose: np.ndarray, expression: np.ndarray, gaze: np.ndarray, n_frames: int,
              fps: float) -> MotionSequence:
        """One frame of motion held for ``n_frames``."""
        return cls(
            fps=fps,
            pose=np.repeat(np.asarray(pose, np.float32)[None], n_frames, axis=0),
            expression=np.repeat(np.asarray(expression, np.float32)[None], n_frames, axis=0),
            gaze=np.repeat(np.asarray(gaze, np.float32)[None], n_frames, axis=0),
        )

    def frames(self, start: int, stop: int) -> MotionSequence:
        """Frames ``start:stop`` as a new sequence."""
        return MotionSequence(self.fps, self.pose[start:stop], self.expression[start:stop],
                              self.gaze[start:stop])

    def column(self, name: str) -> np.ndarray:
        """One named channel over time, (T,)."""
        return self.to_array()[:, MOTION_NAMES.index(name)]
