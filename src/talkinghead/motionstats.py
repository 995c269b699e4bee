"""Statistics of motion tables (frames x ``MOTION_NAMES``), shared by the corpus calibration
(``bench/calibrate.py``) and the real-versus-generated benchmark (``bench/realism.py``).

- ``clip_statistics``: pose spread and speed, mouth amplitude, gaze spread, blinks, lip lag of
  one clip;
- ``window_features`` and ``frechet_distance``: how far two sets of motion are apart as
  distributions of short windows (pose and expression spread and speed per window).
"""

from __future__ import annotations

import numpy as np

from talkinghead.motion import _smooth
from talkinghead.motionspace import EXPRESSION_NAMES, POSE_NAMES

JAW = len(POSE_NAMES) + EXPRESSION_NAMES.index("jawOpen")
BLINK = (len(POSE_NAMES) + EXPRESSION_NAMES.index("eyeBlinkLeft"),
         len(POSE_NAMES) + EXPRESSION_NAMES.index("eyeBlinkRight"))
GAZE = [len(POSE_NAMES) + len(EXPRESSION_NAMES), len(POSE_NAMES) + len(EXPRESSION_NAMES) + 1]  # yaw, pitch
WINDOW_CHANNELS = ("jawOpen", "mouthFunnel", "mouthSmileLeft", "browInnerUp", "eyeBlinkLeft")
AXES = ("yaw", "pitch", "roll")
FAST_SIGMA_S = 0.12  # the head's quick movements: what a Gaussian of this width smooths away
SWAY_SIGMA_S = 1.0  # its sway: between that and a Gaussian of this width; slower is drift


def pose_bands(rot: np.ndarray, fps: float) -> dict[str, float]:
    """Spread (sd, deg) of each head axis's quick movements (``{axis}_fast``: what a
    FAST_SIGMA_S Gaussian removes) and its sway (``{axis}_sway``: between that and a
    SWAY_SIGMA_S Gaussian). A whole clip's sd is mostly its slow drift; these two say how
    the movement is spread over time scales (tracker noise lands in ``_fast``)."""
    rot = rot.astype(np.float64)
    fast = _smooth(rot, FAST_SIGMA_S * fps)
    slow = _smooth(rot, SWAY_SIGMA_S * fps)
    out = {}
    for i, axis in enumerate(AXES):
        out[f"{axis}_fast"] = float((rot[:, i] - fast[:, i]).std())
        out[f"{axis}_sway"] = float((fast[:, i] - slow[:, i]).std())
    return out


def blinks(blink: np.ndarray, fps: float) -> list[tuple[int, int]]:
    """(start, end) frames of each blink in an eyelid channel: above half of its own
    range over the clip's open level, for at most a second."""
    level = np.median(blink)
    peak = np.percentile(blink, 99.5)
    if peak - level < 0.15:  # eyelids that never close far enough: no blinks
        return []
    closed = np.concatenate([[False], blink > level + 0.5 * (peak - level), [False]])
    edges = np.flatnonzero(np.diff(closed.astype(int)))
    return [(s, e) for s, e in zip(edges[::2], edges[1::2], strict=True) if e - s <= fps]


def lip_lag_ms(jaw: np.ndarray, speech: np.ndarray, fps: float) -> float | None:
    """The jaw's time offset against speech loudness at which they correlate best, ms
    (negative: the jaw moves first; ``talkinghead eval``'s search), or None when either is flat."""
    from talkinghead.evaluate import best_over_lags, pearson

    return best_over_lags(lambda m: pearson(m, speech), jaw.astype(np.float64), fps)[2]


def clip_statistics(motion: np.ndarray, fps: float, speech: np.ndarray | None = None) -> dict:
    """Pose sd (deg), its spread by time scale (``pose_bands``), rotation per frame (deg), jaw
    sd, gaze sd (deg), blinks per minute and their length (ms, at half closure), and lip lag against
    ``speech`` loudness when given."""
    rot = motion[:, :3].astype(np.float64)
    eyes = motion[:, list(BLINK)].mean(axis=1)
    events = blinks(eyes, fps)
    minutes = len(motion) / fps / 60.0
    return {
        "yaw_std": float(rot[:, 0].std()), "pitch_std": float(rot[:, 1].std()),
        "roll_std": float(rot[:, 2].std()),
        "delta_pose_deg": float(np.linalg.norm(np.diff(rot, axis=0), axis=1).mean()),
        "jaw_std": float(motion[:, JAW].std()),
        "gaze_yaw_std": float(motion[:, GAZE[0]].std()), "gaze_pitch_std": float(motion[:, GAZE[1]].std()),
        "blinks_per_min": len(events) / max(minutes, 1e-9),
        "blink_ms": float(np.mean([e - s for s, e in events]) * 1000 / fps) if events else None,
        "lip_lag_ms": None if speech is None else lip_lag_ms(motion[:, JAW], speech, fps),
        **pose_bands(rot, fps),
    }


def window_features(motion: np.ndarray, fps: float, seconds: float = 2.0) -> np.ndarray:
    """(N, F) one row per half-overlapping window: the spread and mean speed of yaw, pitch,
    roll and of a few expression channels (mouth, smile, brows, eyelids)."""
    from talkinghead.motionspace import MOTION_NAMES

    cols = [0, 1, 2] + [MOTION_NAMES.index(n) for n in WINDOW_CHANNELS]
    x = motion[:, cols].astype(np.float64)
    w = max(2, round(seconds * fps))
    rows = []
    for start in range(0, len(x) - w + 1, w // 2):
        chunk = x[start : start + w]
        rows.append(np.concatenate([chunk.std(axis=0), np.abs(np.diff(chunk, axis=0)).mean(axis=0)]))
    return np.array(rows).reshape(-1, 2 * len(cols))


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Frechet distance between Gaussians fitted to the rows of ``a`` and of ``b``."""
    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    eps = 1e-6 * np.eye(a.shape[1])
    cov_a, cov_b = np.cov(a, rowvar=False) + eps, np.cov(b, rowvar=False) + eps
    # trace of sqrt(cov_a cov_b): the square roots of its (real, non-negative) eigenvalues
    root = np.sqrt(np.clip(np.linalg.eigvals(cov_a @ cov_b).real, 0.0, None)).sum()
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a + cov_b) - 2 * root)
