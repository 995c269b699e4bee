"""Stage 5, motion: the motion sequence for every video frame.

``baseline_motion`` is the BASELINE generator: hand-written rules, deterministic from the
audio plus a seeded random head sway and blinks. The audio-conditioned diffusion transformer
(``generator.py``, ``--motion diffusion``; see DESIGN.md, "The motion generator") is the
default; this one (``--motion baseline``) scores higher on lip sync, lower on head motion and
blinks (bench/motion.py, README "Motion generator").

Rules:
- the jaw follows the loudness of the speech band (300-3000 Hz) on a compressive curve,
  so stops, which silence that band, close the mouth, and pauses rest it shut;
- the phone track (pocketsphinx, English phones used for every language) closes the lips on
  /p b m/, tucks the lower lip on /f v/, rounds them on /u o w/ and spreads them on /i/;
  without phones, lips round when the speech band's spectral centroid drops;
- brows lift a little on pitch accents;
- the head sways as smoothed seeded noise whose amplitude grows with speech activity,
  around the photo's own pose;
- blinks arrive at about 20 a minute, more likely at pause onsets, each about 250 ms from
  the lid starting down to fully open again.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from talkinghead.audio import BILABIALS, AudioFeatures
from talkinghead.motionspace import MotionSequence, expression_index

# Yaw, pitch, roll sway, degrees. The renderer shows about 80% of a turn and the sway is
# calmer in pauses, so eval measures about 2.6, 2.1, 1.6: inside the range of real videos.
HEAD_STD_DEG = np.array([4.0, 3.0, 2.0])
HEAD_TIMESCALE = 0.7  # seconds: correlation time of the sway
BLINK_RATE = 20.0 / 60.0  # per second
BLINK_GAP = 1.2  # seconds: no two blinks closer than this
BLINK_CLOSE, BLINK_HOLD, BLINK_OPEN = 0.08, 0.06, 0.13  # seconds: down, shut, back up
ROUNDED = frozenset({"UW", "UH", "OW", "OY", "W", "AO"})
SPREAD = frozenset({"IY", "IH", "EY"})
LABIODENTAL = frozenset({"F", "V"})
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


def blink_track(n: int, fps: float, rate: np.ndarray, gap: float, rng: np.random.Generator,
                durations: Callable[[], tuple[float, float, float]]) -> np.ndarray:
    """(T,) eyeBlink in [0, 1]: seeded blink times (``rate`` per second at each frame, none
    within ``gap`` seconds of the last), each a close, a hold and an opening whose lengths in
    seconds ``durations()`` gives (called once per blink, after its time is drawn)."""
    track = np.zeros(n)
    last = -np.inf
    for k in range(n):
        t = k / fps
        if t - last < gap or rng.random() >= rate[k] / fps:
            continue
        last = t
        close, hold, opening = (d * fps for d in durations())
        for j in range(int(np.ceil(close + hold + opening)) + 1):
            frame = k + j
            if frame >= n:
                break
            if j < close:
                level = j / close
            elif j < close + hold:
                level = 1.0
            else:
                level = 1.0 - (j - close - hold) / opening
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
    phones = features.phones
    has_phones = bool(np.any(phones != ""))

    def phone_shape(labels: frozenset[str]) -> np.ndarray:
        return _smooth(np.isin(phones, list(labels)).astype(np.float64), 0.6 * fps / 25.0)

    if has_phones:
        rounding = phone_shape(ROUNDED) * activity ** 0.5
        closed, tucked, spread = phone_shape(BILABIALS), phone_shape(LABIODENTAL), phone_shape(SPREAD)
    else:
        centroid = features.centroid.astype(np.float64)
        speaking = activity > 0.3
        rounding = np.zeros(n)
        if speaking.sum() > 3:
            mid, width = np.median(centroid[speaking]), np.std(centroid[speaking]) + 1e-6
            rounding = np.clip((mid - centroid) / width, 0.0, 1.5) / 1.5 * activity
        rounding = _smooth(rounding, 1.0 * fps / 25.0)
        closed = tucked = spread = np.zeros(n)
    jaw = jaw * (1.0 - 0.35 * rounding) * (1.0 - 0.95 * closed) * (1.0 - 0.6 * tucked)
    expression[:, expression_index("jawOpen")] = jaw
    expression[:, expression_index("mouthFunnel")] = 0.45 * rounding
    expression[:, expression_index("mouthPucker")] = 0.3 * rounding
    expression[:, expression_index("mouthPressLeft")] += 0.4 * closed
    expression[:, expression_index("mouthPressRight")] += 0.4 * closed
    expression[:, expression_index("mouthRollLower")] += 0.5 * tucked
    for side in ("Left", "Right"):
        expression[:, expression_index(f"mouthLowerDown{side}")] = 0.25 * jaw
        expression[:, expression_index(f"mouthStretch{side}")] += 0.25 * spread * activity

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
    blink = blink_track(n, fps, BLINK_RATE * np.where(pause_onset, 4.0, 1.0), BLINK_GAP, rng,
                        lambda: (BLINK_CLOSE, BLINK_HOLD, BLINK_OPEN))
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
