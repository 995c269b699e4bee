"""``talkinghead extract``: the motion of a real video, in the motion space the renderer reads.

Each frame's 478 landmarks (mediapipe face mesh, tracking mode) are compared with a reference
frame, the first one with a face:
- pose: a similarity fitted on skull-fixed points (``facemesh.SKULL_POINTS``) takes the
  reference to the frame. yaw, pitch and roll are the angles of the reference's head frame
  turned by it (absolute, as ``encode`` measures a photo); scale is its scale; tx, ty move the
  point the renderer turns the head about, in the reference's inter-ocular distances.
- expression: the reference's own coefficients (``encode.estimate_expression``) plus the
  change that best explains the frame's non-rigid displacement with the reference's rig
  (``encode.fit_expression_change``), each within [0, 1].
- gaze: the iris position in each eye (``encode.estimate_gaze``), absolute.
Frames where no face is found hold the nearest frame that has one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from talkinghead.encode import estimate_gaze, expression_and_rig, fit_expression_change, lid_gap
from talkinghead.errors import InputError
from talkinghead.models import facemesh as fm
from talkinghead.motionspace import MotionSequence, expression_index


@dataclass(frozen=True)
class ExtractedMotion:
    motion: MotionSequence  # per frame of the video, at its frame rate
    face_found: np.ndarray  # (T,) bool: frames whose face was found (others hold a neighbour)
    landmarks: np.ndarray  # (T, 478, 3) float32 pixels, gaps filled as the motion's are
    width: int  # video frame size, pixels
    height: int


def pivot(vertices: np.ndarray, head: fm.HeadFrame) -> np.ndarray:
    """(3,) pixels: the point the renderer turns the head about (the top of the neck, behind
    the ears at mouth level; render.py uses the same point)."""
    vh = head.to_head(vertices)
    point = np.array([[0.5 * (vh[fm.CHEEK_RIGHT, 0] + vh[fm.CHEEK_LEFT, 0]),
                       vh[fm.LIPS_UPPER_INNER[5], 1],
                       0.5 * (vh[fm.CHEEK_RIGHT, 2] + vh[fm.CHEEK_LEFT, 2]) + 0.5]])
    return head.to_image(point)[0]


def _fill_gaps(landmarks: list[np.ndarray | None]) -> tuple[np.ndarray, np.ndarray]:
    """(T, 478, 3) landmarks with each missing frame taken from the nearest found one, and
    the (T,) mask of found frames."""
    found = np.array([lm is not None for lm in landmarks])
    valid = np.flatnonzero(found)
    nearest = valid[np.abs(np.arange(len(landmarks))[:, None] - valid[None, :]).argmin(axis=1)]
    return np.stack([landmarks[i] for i in nearest]).astype(np.float64), found


EYES = {"Left": (fm.LEFT_EYE_UPPER, fm.LEFT_EYE_LOWER), "Right": (fm.RIGHT_EYE_UPPER, fm.RIGHT_EYE_LOWER)}


def blink_from_lids(gap: np.ndarray, ref_gap: float, ref_blink: float) -> np.ndarray:
    """(T,) eyeBlink read from the lid gap itself (``encode.lid_gap`` per frame), linear from
    the reference frame's (gap ``ref_gap``, coefficient ``ref_blink``) to 1 at a shut eye. The
    rig fit reads a shut eye as about 0.6 (the tracker's lids never quite meet, and the fit's
    prior shares the closing with other shapes); the renderer shuts it at 1, so motion
    extracted from real blinks would play back as half blinks."""
    return np.clip(1.0 - (1.0 - ref_blink) * gap / max(ref_gap, 1e-6), 0.0, 1.0)


def motion_from_landmarks(landmarks: list[np.ndarray | None], fps: float) -> tuple[MotionSequence,
                                                                                   np.ndarray]:
    """Motion of a landmark track ((478, 3) pixels per frame, None where no face) and the
    (T,) mask of frames with a face. Raises ValueError when no frame has a face."""
    if not any(lm is not None for lm in landmarks):
        raise ValueError("no face in any frame")
    points, found = _fill_gaps(landmarks)
    reference = points[int(np.argmax(found))]
    ref_head = fm.fit_head_frame(reference)
    ref_expression, rig = expression_and_rig(reference, ref_head)
    ref_pivot = pivot(reference, ref_head)
    skull = list(fm.SKULL_POINTS)

    n = len(points)
    pose = np.zeros((n, 6))
    gaze = np.zeros((n, 2))
    displacement = np.zeros((n, fm.N_LANDMARKS, 3))
    reference_in_head = ref_head.to_head(reference)
    lids = {side: np.zeros(n) for side in EYES}
    for t, frame in enumerate(points):
        scale, rotation, shift = fm.fit_similarity(reference[skull], frame[skull])
        pose[t, :3] = fm.euler_angles(rotation @ ref_head.rotation)
        moved_pivot = scale * rotation @ ref_pivot + shift
        pose[t, 3:5] = (moved_pivot[:2] - ref_pivot[:2]) / ref_head.iod
        pose[t, 5] = scale
        # The frame brought back onto the reference rigidly: what remains is expression.
        unposed = (frame - shift) @ rotation / scale
        displacement[t] = ref_head.to_head(unposed) - reference_in_head
        head = fm.fit_head_frame(frame)
        gaze[t] = estimate_gaze(frame, head)
        frame_in_head = head.to_head(frame)
        for side, (upper, lower) in EYES.items():
            lids[side][t] = lid_gap(frame_in_head, upper, lower)
    change = fit_expression_change(rig, displacement, -ref_expression, 1.0 - ref_expression)
    expression = np.clip(ref_expression + change, 0.0, 1.0)
    for side, (upper, lower) in EYES.items():
        i = expression_index(f"eyeBlink{side}")
        expression[:, i] = blink_from_lids(lids[side], lid_gap(reference_in_head, upper, lower),
                                           ref_expression[i])
    motion = MotionSequence(fps=fps, pose=pose.astype(np.float32), expression=expression.astype(np.float32),
                            gaze=gaze.astype(np.float32))
    return motion, found


def extract_motion(video: Path, *, max_frames: int | None = None,
                   on_frames: Callable[[int], None] | None = None) -> ExtractedMotion:
    """Per-frame motion of the face in ``video`` (the largest face, tracked).

    Raises InputError when the file is not a video or no frame shows a face.
    ``on_frames`` is called with the number of frames done after each decoded batch.
    """
    from talkinghead.face import track_landmarks
    from talkinghead.mux import probe, read_frames

    if not video.is_file():
        raise InputError(video, "file not found")
    info = probe(video)
    if info.video_codec is None or info.width == 0 or info.fps <= 0:
        raise InputError(video, "has no video stream")

    def frames() -> Iterable[np.ndarray]:
        done = 0
        for batch in read_frames(video, info.width, info.height):
            for frame in batch:
                if max_frames is not None and done >= max_frames:
                    return
                yield frame
                done += 1
            if on_frames is not None:
                on_frames(len(batch))

    landmarks = list(track_landmarks(frames()))
    if not landmarks:
        raise InputError(video, "no frames could be decoded")
    try:
        motion, found = motion_from_landmarks(landmarks, info.fps)
    except ValueError:
        raise InputError(video, "no face found in any frame") from None
    points, _ = _fill_gaps(landmarks)
    return ExtractedMotion(motion=motion, face_found=found, landmarks=points.astype(np.float32),
                           width=info.width, height=info.height)
