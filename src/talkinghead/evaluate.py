"""``talkinghead eval``: measure a talking-head video from its pixels and sound alone.

Independent of how the video was made: it re-detects the face in every decoded frame
(mediapipe face mesh, tracking mode) and reads the audio track (or a given audio file), so
real videos and renders are measured by the same instrument.

Conventions:
- mouth opening: mean inner-lip gap of three lip pairs over the inter-ocular distance (3D).
- lag: the mouth's time offset against the audio; negative = the mouth moves first. The
  search covers +/- 200 ms.
- head pose: the face mesh's own head frame (``facemesh.fit_head_frame``), degrees.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from talkinghead.audio import BILABIALS, OPEN_VOWELS, audio_features
from talkinghead.encode import estimate_gaze
from talkinghead.errors import InputError
from talkinghead.face import find_face, track_landmarks
from talkinghead.load import SAMPLE_RATE, AudioClip, load_audio, load_portrait
from talkinghead.models import facemesh as fm
from talkinghead.mux import decode_audio, probe, read_frames

MAX_LAG = 0.2  # seconds searched either way for the best audio-visual alignment
LIP_PAIRS = ((13, 14), (82, 87), (312, 317))  # upper / lower inner-lip points, centre and sides
STABLE_POINTS = (33, 133, 263, 362, 168, 6, 197, 195, 5, 4, 10, 151, 234, 454)  # rigid on the skull
BLINK_RATIO = 0.6  # an eye is shut when its opening falls below this share of its open level
SILENCE_DB = 35.0  # below the clip's loud level: silence
SPEECH_DB = 25.0  # within this of the loud level: speech
MOUTH_NOISE = 0.015  # mouth-opening spread (p5-p95) below which the mouth counts as still


@dataclass(frozen=True)
class Report:
    video: str
    frames: int
    fps: float
    width: int
    height: int
    video_seconds: float
    audio_seconds: float | None
    av_offset_frames: float | None  # (video - audio duration) in frames
    face_frames: float  # share of frames with a face
    # lip sync
    mouth_std: float  # spread of the mouth opening, inter-ocular units
    corr_lag0: float | None  # mouth opening vs speech-band loudness, Pearson, at lag 0
    corr_best: float | None
    corr_best_lag_ms: float | None
    auc_lag0: float | None  # open vowels vs /p b m/ separated by mouth opening
    auc_best: float | None
    auc_best_lag_ms: float | None
    bilabial_closure: float | None  # share of /p b m/ segments whose lips close
    silence_ratio: float | None  # mouth opening in silence / in speech
    # eyes
    blinks_per_min: float
    blinks_left: int
    blinks_right: int
    blink_ms: float | None
    gaze_yaw_mean: float
    gaze_yaw_std: float
    gaze_pitch_mean: float
    gaze_pitch_std: float
    # head
    yaw_std: float
    pitch_std: float
    roll_std: float
    delta_pose_deg: float  # mean rotation between consecutive frames, degrees
    jitter: float  # mean second difference of skull-fixed landmarks, inter-ocular units
    # identity against the source photo
    shape_distance: float | None  # face shape (pose removed), inter-ocular units, median
    colour_drift: float | None  # CIELAB distance of the face's mean colour, median
    face_ssim: float | None  # photo aligned onto each frame, SSIM over the face bar the mouth

    def as_dict(self) -> dict:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def _mouth_opening(lm: np.ndarray, iod: float) -> float:
    return float(np.mean([np.linalg.norm(lm[b] - lm[a]) for a, b in LIP_PAIRS])) / iod


def _eye_opening(lm: np.ndarray, upper: tuple[int, ...], lower: tuple[int, ...]) -> float:
    width = float(np.linalg.norm(lm[upper[0], :2] - lm[upper[-1], :2]))
    gaps = np.linalg.norm(lm[list(lower[2:-2]), :2] - lm[list(upper[2:-2]), :2], axis=1)
    return float(gaps.mean()) / max(width, 1e-6)


def pearson(a: np.ndarray, b: np.ndarray) -> float | None:
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3 or np.std(a[ok]) < 1e-9 or np.std(b[ok]) < 1e-9:
        return None
    return float(np.corrcoef(a[ok], b[ok])[0, 1])


def auc(positive: np.ndarray, negative: np.ndarray) -> float | None:
    """P(a positive scores above a negative), ties counting half (Mann-Whitney U / n m)."""
    positive, negative = positive[np.isfinite(positive)], negative[np.isfinite(negative)]
    if len(positive) == 0 or len(negative) == 0:
        return None
    greater = (positive[:, None] > negative[None, :]).sum()
    ties = (positive[:, None] == negative[None, :]).sum()
    return float((greater + 0.5 * ties) / (len(positive) * len(negative)))


def shifted(x: np.ndarray, lag: int) -> np.ndarray:
    """x moved so that out[t] = x[t + lag] (NaN beyond the ends)."""
    out = np.full(len(x), np.nan)
    if lag >= 0:
        out[: len(x) - lag] = x[lag:]
    else:
        out[-lag:] = x[: len(x) + lag]
    return out


def best_over_lags(score, mouth: np.ndarray, fps: float) -> tuple[float | None, float | None, float | None]:
    """score(mouth shifted) at lag 0, its best value and the best lag in milliseconds."""
    lags = range(-round(MAX_LAG * fps), round(MAX_LAG * fps) + 1)
    values = {lag: score(shifted(mouth, lag)) for lag in lags}
    valid = {lag: v for lag, v in values.items() if v is not None}
    if not valid:
        return None, None, None
    best = max(valid, key=lambda lag: (valid[lag], -abs(lag)))
    return values.get(0), valid[best], 1000.0 * best / fps


def blink_events(opening: np.ndarray, fps: float) -> list[tuple[int, int]]:
    """(start, end) frame runs where the eye is shut: below BLINK_RATIO of its open level."""
    valid = np.isfinite(opening)
    if valid.sum() < 3:
        return []
    open_level = np.percentile(opening[valid], 75)
    shut = valid & (opening < BLINK_RATIO * open_level)
    events, start = [], None
    for k, s in enumerate(np.append(shut, False)):
        if s and start is None:
            start = k
        elif not s and start is not None:
            if k - start <= 1.0 * fps:  # longer is a closed eye, not a blink
                events.append((start, k))
            start = None
    return events


def _face_region_mask(lm: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    mask = np.zeros(shape, np.uint8)
    cv2.fillPoly(mask, [np.round(lm[list(fm.FACE_OVAL), :2]).astype(np.int32)], 1)
    mouth = lm[list(fm.LIPS_UPPER_OUTER + fm.LIPS_LOWER_OUTER[::-1]), :2]
    centre = mouth.mean(axis=0)
    cv2.fillPoly(mask, [np.round(centre + 1.4 * (mouth - centre)).astype(np.int32)], 0)
    return mask.astype(bool)


def _ssim(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    """Mean SSIM (Gaussian window, sigma 1.5) of two greyscale images over a mask."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    blur = lambda x: cv2.GaussianBlur(x, (0, 0), 1.5)  # noqa: E731
    mu_a, mu_b = blur(a), blur(b)
    var_a, var_b = blur(a * a) - mu_a**2, blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    ssim = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return float(ssim[mask].mean())


class _Identity:
    """Compares frames against the source photo's face."""

    def __init__(self, photo: Path) -> None:
        portrait = load_portrait(photo)
        face = find_face(portrait)
        self.image = portrait.image
        self.landmarks = face.landmarks
        head = fm.fit_head_frame(face.landmarks)
        self.shape = head.to_head(face.landmarks)
        self.lab = self._mean_lab(portrait.image, face.landmarks)
        self.shape_points = list((*fm.FACE_OVAL, 168, 6, 197, 195, 5, 4, 1, *fm.LEFT_BROW, *fm.RIGHT_BROW))

    @staticmethod
    def _mean_lab(image: np.ndarray, lm: np.ndarray) -> np.ndarray:
        mask = _face_region_mask(lm, image.shape[:2])
        lab = cv2.cvtColor(image.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)
        return lab[mask].mean(axis=0)

    def measure(self, frame: np.ndarray, lm: np.ndarray, head: fm.HeadFrame
                ) -> tuple[float, float, float]:
        shape = head.to_head(lm)
        distance = float(np.linalg.norm(shape[self.shape_points] - self.shape[self.shape_points],
                                        axis=1).mean())
        drift = float(np.linalg.norm(self._mean_lab(frame, lm) - self.lab))
        stable = list(STABLE_POINTS)
        matrix, _ = cv2.estimateAffinePartial2D(self.landmarks[stable, :2], lm[stable, :2])
        h, w = frame.shape[:2]
        aligned = cv2.warpAffine(self.image, matrix, (w, h), flags=cv2.INTER_LINEAR)
        grey = lambda x: cv2.cvtColor(x, cv2.COLOR_RGB2GRAY)  # noqa: E731
        ssim = _ssim(grey(aligned), grey(frame), _face_region_mask(lm, (h, w)))
        return distance, drift, ssim


def evaluate(video: Path, audio: Path | None = None, source: Path | None = None) -> Report:
    """Measure ``video``; lip sync against ``audio`` (default: the video's own sound track);
    identity against the ``source`` photo when given."""
    video = Path(video)
    if not video.exists():
        raise InputError(video, "file not found")
    info = probe(video)
    if info.video_codec is None:
        raise InputError(video, "has no video stream")
    fps = info.fps or 25.0

    identity = _Identity(source) if source is not None else None
    mouth, eye_l, eye_r, poses, gaze, stable, iods, ident = [], [], [], [], [], [], [], []
    n = 0
    frames = (f for batch in read_frames(video, info.width, info.height) for f in batch)
    for k, (frame, lm) in enumerate(with_landmarks(frames)):
        n = k + 1
        if lm is None:
            for series in (mouth, eye_l, eye_r, iods):
                series.append(np.nan)
            poses.append(None)
            gaze.append((np.nan, np.nan))
            stable.append(np.full((len(STABLE_POINTS), 2), np.nan))
            continue
        head = fm.fit_head_frame(lm)
        iods.append(head.iod)
        mouth.append(_mouth_opening(lm, head.iod))
        eye_l.append(_eye_opening(lm, fm.LEFT_EYE_UPPER, fm.LEFT_EYE_LOWER))
        eye_r.append(_eye_opening(lm, fm.RIGHT_EYE_UPPER, fm.RIGHT_EYE_LOWER))
        poses.append(head.rotation)
        gaze.append(tuple(estimate_gaze(lm, head)))
        stable.append(lm[list(STABLE_POINTS), :2])
        if identity is not None and k % max(1, round(fps / 5)) == 0:  # 5 samples a second
            ident.append(identity.measure(frame, lm, head))
    if n == 0:
        raise InputError(video, "no video frames could be decoded")
    mouth_a, eye_l_a, eye_r_a = np.array(mouth), np.array(eye_l), np.array(eye_r)
    has_face = np.isfinite(mouth_a)
    if not has_face.any():
        raise InputError(video, "no face found in any frame")

    clip = _audio_clip(video, audio)
    lip = _lip_sync(mouth_a, clip, fps) if clip is not None else {}

    angles = np.array([fm.euler_angles(r) if r is not None else (np.nan,) * 3 for r in poses])
    steps = [np.degrees(np.arccos(np.clip((np.trace(a.T @ b) - 1) / 2, -1, 1)))
             for a, b in itertools.pairwise(poses) if a is not None and b is not None]
    pts = np.array(stable)
    second = np.linalg.norm(pts[2:] - 2 * pts[1:-1] + pts[:-2], axis=2).mean(axis=1)
    jitter = np.nanmean(second / np.array(iods)[1:-1]) if len(second) else 0.0
    blinks_l, blinks_r = blink_events(eye_l_a, fps), blink_events(eye_r_a, fps)
    both = blink_events((eye_l_a + eye_r_a) / 2, fps)
    gaze_a = np.array(gaze, dtype=np.float64)
    ident_a = np.array(ident) if ident else None
    audio_seconds = clip.duration if clip is not None else None
    return Report(
        video=str(video), frames=n, fps=fps, width=info.width, height=info.height,
        video_seconds=n / fps, audio_seconds=audio_seconds,
        av_offset_frames=None if audio_seconds is None else (n / fps - audio_seconds) * fps,
        face_frames=float(has_face.mean()), mouth_std=float(np.nanstd(mouth_a)),
        corr_lag0=lip.get("corr_lag0"), corr_best=lip.get("corr_best"),
        corr_best_lag_ms=lip.get("corr_lag"), auc_lag0=lip.get("auc_lag0"),
        auc_best=lip.get("auc_best"), auc_best_lag_ms=lip.get("auc_lag"),
        bilabial_closure=lip.get("closure"), silence_ratio=lip.get("silence"),
        blinks_per_min=len(both) / (n / fps / 60.0), blinks_left=len(blinks_l),
        blinks_right=len(blinks_r),
        blink_ms=float(np.mean([(e - s) for s, e in both]) * 1000 / fps) if both else None,
        gaze_yaw_mean=float(np.nanmean(gaze_a[:, 0])), gaze_yaw_std=float(np.nanstd(gaze_a[:, 0])),
        gaze_pitch_mean=float(np.nanmean(gaze_a[:, 1])),
        gaze_pitch_std=float(np.nanstd(gaze_a[:, 1])),
        yaw_std=float(np.nanstd(angles[:, 0])), pitch_std=float(np.nanstd(angles[:, 1])),
        roll_std=float(np.nanstd(angles[:, 2])),
        delta_pose_deg=float(np.mean(steps)) if steps else 0.0, jitter=float(jitter),
        shape_distance=float(np.median(ident_a[:, 0])) if ident_a is not None else None,
        colour_drift=float(np.median(ident_a[:, 1])) if ident_a is not None else None,
        face_ssim=float(np.median(ident_a[:, 2])) if ident_a is not None else None,
    )


def with_landmarks(frames):
    """Pairs (frame, landmarks or None), tracking through the video."""
    frames = iter(frames)
    buffer: list[np.ndarray] = []

    def feed():
        for frame in frames:
            buffer.append(frame)
            yield frame

    for lm in track_landmarks(feed()):
        yield buffer.pop(0), lm


def _audio_clip(video: Path, audio: Path | None) -> AudioClip | None:
    if audio is not None:
        return load_audio(audio)
    data = decode_audio(video, SAMPLE_RATE)
    if data is None or len(data) == 0:
        return None
    return AudioClip(path=video, samples=data.mean(axis=1).astype(np.float32),
                     sample_rate=SAMPLE_RATE, channels=data.shape[1])


def _lip_sync(mouth: np.ndarray, clip: AudioClip, fps: float) -> dict:
    n = len(mouth)
    if np.nanpercentile(mouth, 95) - np.nanpercentile(mouth, 5) < MOUTH_NOISE:
        # A mouth that moves less than the tracker's own noise does not move: score it as
        # still, so that noise and the tracker's settling cannot pass for lip sync.
        mouth = np.where(np.isfinite(mouth), np.nanmedian(mouth), np.nan)
    features = audio_features(clip, fps, n)
    phones = features.phones
    level = features.speech_energy.astype(np.float64)
    loud = np.percentile(level, 95)
    envelope = np.maximum(level, loud - 50.0)
    out: dict = {}
    out["corr_lag0"], out["corr_best"], out["corr_lag"] = best_over_lags(
        lambda m: pearson(m, envelope), mouth, fps)

    vowel = np.array([p in OPEN_VOWELS for p in phones])
    bilabial = np.array([p in BILABIALS for p in phones])
    out["auc_lag0"], out["auc_best"], out["auc_lag"] = best_over_lags(
        lambda m: auc(m[vowel], m[bilabial]), mouth, fps)

    open_level = np.nanmedian(mouth[vowel]) if vowel.any() else np.nanmedian(mouth)
    threshold = max(0.02, 0.2 * float(open_level))
    segments, start = [], None
    for k, b in enumerate(np.append(bilabial, False)):
        if b and start is None:
            start = k
        elif not b and start is not None:
            segments.append((start, k))
            start = None
    if segments:
        closed = [np.nanmin(mouth[max(s - 1, 0) : e + 1]) < threshold for s, e in segments]
        out["closure"] = float(np.mean(closed))

    quiet = level < loud - SILENCE_DB
    run = max(1, round(0.2 * fps))
    silent = np.convolve(quiet, np.ones(run), mode="same") >= run  # inside a 200 ms pause
    speech = level > loud - SPEECH_DB
    if silent.any() and speech.any():
        out["silence"] = float(np.nanmean(mouth[silent]) / max(np.nanmean(mouth[speech]), 1e-9))
    return out
