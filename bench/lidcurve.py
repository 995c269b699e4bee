"""The eyelid curve: how shut the renderer must draw a lid for it to read back as asked.

The motion generator learns eyelids as ``talkinghead.extract`` reads them off real videos,
where a shut eye reads well short of 1 (the face mesh keeps a small gap between closed lids).
A renderer that draws the coefficient as it comes leaves such an eye half open, and a blink the
generator makes in full reads as half a blink. This measures, and prints as the table
``renderer.eyes.LID_CURVE`` holds:

1. real: on realdata *train* videos (never val), the lid reading at the peak of each blink
   (``motionstats.blinks``), both eyes averaged: the median is what "shut" reads as;
2. drawn: on portraits (devdata and the example), both lids held at each level of LEVELS with
   the curve switched off, read back: the median reading per level;
3. the curve: for each reading asked for, the level whose drawn reading matches it (inverse
   interpolation of 2, made monotone), up to the real shut reading, where the lid is drawn shut.

Usage: python bench/lidcurve.py [--videos N] [--size 256]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

import talkinghead
from talkinghead.extract import extract_motion, motion_from_landmarks
from talkinghead.face import track_landmarks
from talkinghead.motionspace import MotionSequence, expression_index
from talkinghead.motionstats import blinks
from talkinghead.renderer import eyes

sys.path.insert(0, str(Path(__file__).resolve().parent))
from realism import split_videos
from roundtrip import FPS, held

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
LEVELS = np.round(np.arange(0.0, 1.01, 0.1), 2)
EYES = ("eyeBlinkLeft", "eyeBlinkRight")
HOLD = 6  # frames per level (the first two let the tracker settle)


def lids(motion: MotionSequence) -> np.ndarray:
    return motion.expression[:, [expression_index(e) for e in EYES]].mean(axis=1).astype(np.float64)


def real_shut(videos: list[Path]) -> tuple[float, float, int]:
    """Median lid reading at blink peaks, median open reading, number of blinks."""
    peaks, opens = [], []
    for video in videos:
        motion = extract_motion(video).motion
        level = lids(motion)
        opens.append(float(np.median(level)))
        events = blinks(level, motion.fps)
        peaks += [float(level[s:e].max()) for s, e in events]
        print(f"  {video.stem}: {len(events)} blinks", file=sys.stderr)
    return float(np.median(peaks)), float(np.median(opens)), len(peaks)


def drawn(photo: Path, size: int) -> np.ndarray:
    """Read-back lid level for each of LEVELS, drawn with the curve switched off."""
    avatar = talkinghead.Avatar.from_photo(photo, size=size)
    motion = held(avatar.source, HOLD * len(LEVELS))
    for k, level in enumerate(LEVELS):
        for e in EYES:
            motion.expression[k * HOLD:(k + 1) * HOLD, expression_index(e)] = level
    frames = list(avatar.frames(motion))
    read = lids(motion_from_landmarks(list(track_landmarks(frames)), FPS)[0])
    return np.array([np.median(read[k * HOLD + 2:(k + 1) * HOLD]) for k in range(len(LEVELS))])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--videos", type=int, default=12, help="realdata train videos to read")
    parser.add_argument("--size", type=int, default=256)
    args = parser.parse_args(argv)
    shut, open_level, count = real_shut(split_videos(SHARED / "realdata", "train")[:args.videos])
    print(f"real (train): open reads {open_level:.2f}, shut reads {shut:.2f} (median of {count} blinks)")
    photos = [*sorted((SHARED / "devdata" / "portraits").glob("p*.*")), ROOT / "examples" / "astronaut.png"]
    saved, eyes.LID_CURVE = eyes.LID_CURVE, ((0.0, 0.0), (1.0, 1.0))  # draw levels as asked
    try:
        readings = []
        for photo in photos:
            readings.append(drawn(photo, args.size))
            print(f"  {photo.stem}: " + " ".join(f"{r:.2f}" for r in readings[-1]), file=sys.stderr)
    finally:
        eyes.LID_CURVE = saved
    read = np.maximum.accumulate(np.median(readings, axis=0))  # monotone
    pairs = zip(LEVELS, read, strict=True)
    print("drawn level -> read back: " + " ".join(f"{lv:.1f}:{r:.2f}" for lv, r in pairs))
    asked = np.round(np.linspace(0.0, shut, 6), 3)
    # The level to draw for each reading asked for (the photo's open reading drawn as is).
    levels = np.interp(asked, read + np.arange(len(read)) * 1e-6, LEVELS)
    table = [(0.0, 0.0)] + [(float(a), float(lv)) for a, lv in zip(asked[1:], levels[1:], strict=True)]
    table[-1] = (table[-1][0], 1.0)  # what a real shut eye reads is drawn shut
    print("LID_CURVE = (" + ", ".join(f"({a:.2f}, {lv:.2f})" for a, lv in table) + ", (1.00, 1.00))")
    return 0


if __name__ == "__main__":
    sys.exit(main())
