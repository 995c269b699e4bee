"""Round trip: render known motion with the public API, read it back with the extractor.

The motion generator learns from motion that ``talkinghead.extract`` reads off real videos, so
the renderer must draw each channel at the strength that reader sees in a real face: a head
rendered at 0.8 of the requested yaw caps how lively every video looks. Per portrait, each of
these is rendered alone around the photo's own motion and read back:
- yaw, pitch, roll, gaze yaw and gaze pitch: a sinusoid (AMPLITUDES, one period of PERIOD
  seconds); the gain is the least-squares slope of the read-back channel on the request
  (1 = drawn at full strength), with their correlation;
- blinks: BLINKS trapezoid blinks of both lids at once; the length asked for is the motion's
  own (``motionstats.blinks``: at half closure), the rendered one is what ``talkinghead eval``
  measures on the video (``blink_ms``: below 0.6 of the eye's open level, a longer stretch) and
  what the extractor's read-back lids give at half closure (``blink_read_ms``, the asked
  length's own definition); ``left/right`` the blinks eval counts per eye; ``eyes
  apart`` is the largest offset in frames between the two eyes' read-back lids closing or
  opening (at half closure; 0: in step, -1: one eye blinked alone).
Frames are read back from memory for the angles (no codec) and from an mp4 for blinks (the
command's own path). Writes out/roundtrip/summary.csv. Usage:

    python bench/roundtrip.py [PHOTO ...] [--size 256] [--frames 50]

With no PHOTO, every devdata portrait.
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

import talkinghead
from talkinghead.evaluate import evaluate
from talkinghead.extract import motion_from_landmarks
from talkinghead.face import track_landmarks
from talkinghead.motionspace import MotionSequence, expression_index
from talkinghead.motionstats import blinks

DEVDATA_PORTRAITS = Path(__file__).resolve().parents[2] / "shared" / "devdata" / "portraits"
# Gaze pitch within the +-3 degrees that real talkers' gaze pitch reads as (real lids follow a
# vertical look, and the extractor reads the iris against the lids; see bench/gazecurve.py).
AMPLITUDES = {"yaw": 8.0, "pitch": 6.0, "roll": 5.0, "gaze_yaw": 12.0, "gaze_pitch": 3.0}  # deg
PERIOD = 2.0  # seconds
FPS = 25.0
BLINKS = 3
BLINK_SHAPE = (0.10, 0.08, 0.16)  # seconds closing, shut, opening: 210 ms at half closure
EYES = ("eyeBlinkLeft", "eyeBlinkRight")


def channel(motion: MotionSequence, name: str) -> np.ndarray:
    """(T,) one pose or gaze channel, degrees."""
    if name.startswith("gaze_"):
        return motion.gaze[:, ("gaze_yaw", "gaze_pitch").index(name)].astype(np.float64)
    return motion.pose[:, ("yaw", "pitch", "roll").index(name)].astype(np.float64)


def held(source: MotionSequence, n: int) -> MotionSequence:
    """The photo's own motion for ``n`` frames."""
    return MotionSequence(fps=FPS, pose=np.repeat(source.pose[:1], n, 0).astype(np.float32),
                          expression=np.repeat(source.expression[:1], n, 0).astype(np.float32),
                          gaze=np.repeat(source.gaze[:1], n, 0).astype(np.float32))


def sinusoid(source: MotionSequence, name: str, n: int) -> tuple[MotionSequence, np.ndarray]:
    """The photo's motion with ``name`` swinging by its amplitude; and the swing (T,)."""
    motion = held(source, n)
    wave = AMPLITUDES[name] * np.sin(2 * np.pi * np.arange(n) / (PERIOD * FPS))
    if name.startswith("gaze_"):
        motion.gaze[:, ("gaze_yaw", "gaze_pitch").index(name)] += wave.astype(np.float32)
    else:
        motion.pose[:, ("yaw", "pitch", "roll").index(name)] += wave.astype(np.float32)
    return motion, wave


def blinking(source: MotionSequence) -> MotionSequence:
    """BLINKS blinks of both eyes, a second apart, after half a second."""
    close, hold, opening = (d * FPS for d in BLINK_SHAPE)
    n = int((0.5 + BLINKS) * FPS)
    t = np.arange(n, dtype=np.float64)
    level = np.zeros(n)
    for k in range(BLINKS):
        rel = t - (0.5 + k) * FPS
        level = np.maximum(level, np.clip(np.minimum(rel / close, (close + hold + opening - rel) / opening),
                                          0.0, 1.0))
    motion = held(source, n)
    for eye in EYES:
        i = expression_index(eye)
        motion.expression[:, i] = np.maximum(motion.expression[:, i], level).astype(np.float32)
    return motion


def read_back(frames: list[np.ndarray]) -> MotionSequence:
    return motion_from_landmarks(list(track_landmarks(frames)), FPS)[0]


def measure(photo: Path, size: int, n: int) -> dict[str, float | str | None]:
    avatar = talkinghead.Avatar.from_photo(photo, size=size)
    source = avatar.source
    row: dict[str, float | str | None] = {"portrait": photo.stem}
    for name in AMPLITUDES:
        motion, wave = sinusoid(source, name, n)
        got = channel(read_back(list(avatar.frames(motion))), name)
        got -= got.mean()
        row[f"{name}_gain"] = float(np.dot(got, wave) / np.dot(wave, wave))
        row[f"{name}_corr"] = float(np.corrcoef(got, wave)[0, 1])
    motion = blinking(source)
    asked = blinks(motion.expression[:, [expression_index(e) for e in EYES]].mean(axis=1), FPS)
    row["blink_asked_ms"] = float(np.mean([e - s for s, e in asked]) * 1000 / FPS)
    frames = list(avatar.frames(motion))
    with tempfile.TemporaryDirectory() as tmp:
        video = Path(tmp) / "blinks.mp4"
        w, h = avatar.size
        writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), FPS, (w, h))
        for frame in frames:
            writer.write(np.ascontiguousarray(frame[..., ::-1]))
        writer.release()
        report = evaluate(video)
    row["blink_rendered_ms"] = report.blink_ms
    row["blinks_left_right"] = f"{report.blinks_left}/{report.blinks_right}"
    lids = read_back(frames).expression[:, [expression_index(e) for e in EYES]]
    # The same length read the way it was asked: the read-back lids, at half closure.
    read = blinks(lids.mean(axis=1).astype(np.float64), FPS)
    row["blink_read_ms"] = float(np.mean([e - s for s, e in read]) * 1000 / FPS) if read else None
    left, right = (blinks(lids[:, k].astype(np.float64), FPS) for k in range(2))
    # Frames between the two eyes' closing or opening (each at half its own closure); -1
    # when one eye blinks and the other does not.
    if len(left) != len(right):
        row["eyes_apart_frames"] = -1
    else:
        row["eyes_apart_frames"] = max((max(abs(a[0] - b[0]), abs(a[1] - b[1]))
                                        for a, b in zip(left, right, strict=True)), default=0)
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("photos", nargs="*", type=Path)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--frames", type=int, default=int(PERIOD * FPS))
    parser.add_argument("--out", type=Path, default=Path("out/roundtrip"))
    args = parser.parse_args(argv)
    photos = args.photos or sorted(DEVDATA_PORTRAITS.glob("*.*"))
    rows = []
    for photo in photos:
        row = measure(photo, args.size, args.frames)
        rows.append(row)
        print(" ".join(f"{k}={v:.2f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()),
              flush=True)
    numeric = [k for k, v in rows[0].items() if isinstance(v, float)]
    print("median " + " ".join(f"{k}={np.median([r[k] for r in rows if r[k] is not None]):.2f}"
                               for k in numeric))
    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.out / "summary.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
