"""Stage 5, motion: the motion sequence for every video frame.

``baseline_motion`` is the BASELINE generator: hand-written rules, deterministic from the
audio plus a seeded random head sway and blinks. The audio-conditioned diffusion transformer
(see DESIGN.md, "The motion generator") replaces it as the default in a later release; until
then ``--motion baseline`` is the only choice.

Rules:
- the jaw follows the loudness of the speech band (300-3000 Hz) on a compressive curve,
  so stops and bilabial closures, which silence that band, close the lips, and pauses rest
  the mouth shut;
- lips round (funnel, pucker) when the speech band's spectral centroid drops, as it does for
  rounded vowels (/u/, /o/, /w/);
- brows lift a little on pitch accents;
- the head sways as smoothed seeded noise whose amplitude grows with speech activity,
  around the photo's own pose;
- blinks arrive at about 18 a minute, more likely at pause onsets, each about 200 ms.
"""

from __future__ import annotations

import numpy as np

from talkinghead.audio import AudioFeatures
from talkinghead.motionspace import MotionSequence, expression_index

HEAD_STD_DEG = np.array([3.0, 2.2, 1.4])  # yaw, pitch, roll sway, degrees
HEAD_TIMESCALE = 0.7  # seconds: correlation time of the sway
BLINK_RATE = 18.0 / 60.0  # per second
BLINK_GAP = 1.2  # seconds: no two blinks closer than this
BLINK_CLOSE, BLINK_OPEN = 0.07, 0.14  # seconds: lid going down, coming back up
JAW_MAX = 0.35  # jawOpen at the loudest speech
SPEECH_RANGE_DB = 28.0  # loudness range mapped onto the jaw below the clip's loud level


def _smooth(x: np.ndarray, sigma_frames: float) -> np.ndarray:
    """Gaussian smoothing along axis 0 (edges reflected)."""
    if sigma_frames <= 0:
        return x
    radius = int(np.ceil(3 * sigma_frames))
    kernel = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma_frames) ** 2)
    kernel /= kernel.sum()
    pad = [(radius, radius)] + [(0, 0)] * (x.ndim - 1)
    padded = np.pad(x, pad, mode="reflect" if len(x) > radius else "edge")
    return np.apply_along_axis(lambda c: np.convolve(c, kernel, mode="valid"), 0, padded)


def speech_activity(features: AudioFeatures) -> np.ndarray:
    """(T,) in [0, 1]: how loud the speech band is against the clip's own loud level."""
    level = features.speech_energy.astype(np.float64)
    loud = np.percentile(level, 95)
    return np.clip((level - (loud - SPEECH_RANGE_DB)) / SPEECH_RANGE_DB, 0.0, 1.0)


def _blinks(n: int, fps: float, pauses: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(T,) eyeBlink in [0, 1]: seeded blink times, each a fast close and slower open."""
    track = np.zeros(n)
    rate = BLINK_RATE * np.where(pauses, 3.0, 0.7)
    last = -np.inf
    close, opening = BLINK_CLOSE * fps, BLINK_OPEN * fps
    for k in range(n):
        t = k / fps
        if t - last < BLINK_GAP or rng.random() >= rate[k] / fps:
            continue
        last = t
        for j in range(int(np.ceil(close + opening)) + 1):
            frame = k + j
            if frame >= n:
                break
            level = j / close if j < close else 1.0 - (j - close) / opening
            track[frame] = max(track[frame], float(np.clip(level, 0.0, 1.0)))
    return track


def baseline_motion(features: AudioFeatures, source: MotionSequence, seed: int
                    ) -> MotionSequence:
    """BASELINE motion for every frame of ``features``, around the ``source`` motion."""
    rng = np.random.default_rng(seed)
    n, fps = features.n_frames, features.fps
    activity = speech_activity(features)
    expression = np.repeat(source.expression, n, axis=0).astype(np.float64)

    # Lips and jaw. A light smoothing keeps closures that last two frames or more.
    jaw = JAW_MAX * _smooth(activity, 0.5 * fps / 25.0) ** 1.3
    centroid = features.centroid.astype(np.float64)
    speaking = activity > 0.3
    if speaking.sum() > 3:
        mid, spread = np.median(centroid[speaking]), np.std(centroid[speaking]) + 1e-6
        rounding = np.clip((mid - centroid) / spread, 0.0, 1.5) / 1.5 * activity
    else:
        rounding = np.zeros(n)
    rounding = _smooth(rounding, 1.0 * fps / 25.0)
    expression[:, expression_index("jawOpen")] = jaw * (1.0 - 0.35 * rounding)
    expression[:, expression_index("mouthFunnel")] = 0.45 * rounding
    expression[:, expression_index("mouthPucker")] = 0.3 * rounding
    for side in ("Left", "Right"):
        expression[:, expression_index(f"mouthLowerDown{side}")] = 0.25 * jaw

    # Brows lift on pitch accents: voiced frames well above the clip's typical pitch.
    pitch = features.pitch.astype(np.float64)
    voiced = pitch > 0
    if voiced.sum() > 3:
        semitones = 12.0 * np.log2(np.where(voiced, pitch, 1.0) / np.median(pitch[voiced]))
        accent = np.clip((semitones - 2.0) / 4.0, 0.0, 1.0) * voiced
    else:
        accent = np.zeros(n)
    expression[:, expression_index("browInnerUp")] += 0.35 * _smooth(accent, 3.0 * fps / 25.0)
    for side in ("Left", "Right"):
        expression[:, expression_index(f"browOuterUp{side}")] += 0.25 * _smooth(accent, 3.0)

    # Blinks, more likely as a pause begins.
    quiet = _smooth(activity, 2.0) < 0.1
    pause_onset = quiet & ~np.roll(quiet, 3)
    blink = _blinks(n, fps, pause_onset, rng)
    for side in ("Left", "Right"):
        index = expression_index(f"eyeBlink{side}")
        expression[:, index] = np.maximum(expression[:, index], blink)

    # Head: seeded smooth sway, livelier while speaking, plus a small nod on each accent.
    noise = _smooth(rng.standard_normal((n + 1, 3)), HEAD_TIMESCALE * fps)[:n]
    noise /= np.maximum(noise.std(axis=0), 1e-6) if n > 10 else 1.0
    liveliness = 0.6 + 0.4 * _smooth(activity, 1.0 * fps)
    sway = noise * HEAD_STD_DEG * liveliness[:, None]
    sway[:, 1] -= 1.5 * _smooth(accent, 2.0 * fps / 25.0)
    pose = np.repeat(source.pose, n, axis=0).astype(np.float64)
    pose[:, :3] += sway
    pose[:, 3] += 0.004 * sway[:, 0]
    pose[:, 4] += -0.004 * sway[:, 1]

    return MotionSequence(
        fps=fps,
        pose=pose.astype(np.float32),
        expression=np.clip(expression, 0.0, 1.0).astype(np.float32),
        gaze=np.repeat(source.gaze, n, axis=0).astype(np.float32),
    )
