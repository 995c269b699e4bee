"""The gaze curve: how far the renderer must move an iris for it to read back as asked.

The motion generator learns gaze as ``talkinghead.extract`` reads it off real videos: the
iris centre's offset from the middle of the lids, as the face tracker places them. Real lids
follow the eye (most in pitch), and the tracker, trained on real eyes, reads an iris that moves
within still lids as moving less than it did. This measures, and prints as the table
``renderer.eyes.GAZE_CURVE`` holds:

1. drawn: on photos (frame 0 of realdata *train* videos, never val or devdata, which
   ``bench/roundtrip.py`` measures on), the gaze moved by each change of LEVELS from the
   photo's own, one axis at a time, with the curve switched off, read back: the median change
   read per level;
2. the curve: for each change asked for, the change whose drawn reading matches it (inverse
   interpolation of 1, made monotone), within the readings measured.

Usage: python bench/gazecurve.py [--videos N] [--size 256]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

import talkinghead
from talkinghead.extract import motion_from_landmarks
from talkinghead.face import track_landmarks
from talkinghead.renderer import eyes

sys.path.insert(0, str(Path(__file__).resolve().parent))
from realism import first_frame, split_videos
from roundtrip import held

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
AXES = ("yaw", "pitch")
# Drawn changes measured, degrees; the largest is the most the renderer will ever draw. In
# pitch, beyond 15 degrees an iris under lids that stay put looks rolled up or sunk (white
# above or below it), where real lids would follow it.
LEVELS = {"yaw": np.arange(-35.0, 35.1, 5.0), "pitch": np.arange(-15.0, 15.1, 2.5)}
# Changes asked for that the table lists, within what the drawn changes read back as.
ASKED = {"yaw": np.arange(-20.0, 20.1, 5.0), "pitch": np.arange(-3.0, 3.1, 1.0)}
HOLD = 6  # frames per level (the first two let the tracker settle)


def drawn(photo: Path, size: int) -> list[np.ndarray]:
    """Per axis, the read-back gaze change for each of its LEVELS."""
    avatar = talkinghead.Avatar.from_photo(photo, size=size)
    out = []
    for a, axis in enumerate(AXES):
        levels = LEVELS[axis]
        motion = held(avatar.source, HOLD * len(levels))
        motion.gaze[:, a] += np.repeat(levels, HOLD).astype(np.float32)
        read = motion_from_landmarks(list(track_landmarks(list(avatar.frames(motion)))), 25.0)[0].gaze[:, a]
        per_level = np.array([np.median(read[k * HOLD + 2:(k + 1) * HOLD]) for k in range(len(levels))])
        out.append(per_level - per_level[np.flatnonzero(levels == 0)[0]])
    return out


def invert(read: np.ndarray, axis: str) -> np.ndarray:
    """Drawn change for each of the axis's ASKED, from the median reading per level (made
    monotone)."""
    read = np.maximum.accumulate(read) + np.arange(len(read)) * 1e-6
    return np.interp(ASKED[axis], read, LEVELS[axis])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--videos", type=int, default=10, help="realdata train videos whose frame 0 to use")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--frames", type=Path, default=Path("out/gazecurve"))
    args = parser.parse_args(argv)
    videos = split_videos(SHARED / "realdata", "train")[:args.videos]
    photos = [first_frame(v, args.frames / f"{v.stem}.png") for v in videos]
    saved = eyes.GAZE_CURVE
    eyes.GAZE_CURVE = {axis: ((-90.0, -90.0), (90.0, 90.0)) for axis in AXES}  # draw as asked
    try:
        readings = []
        for photo in photos:
            readings.append(drawn(photo, args.size))
            rows = " | ".join(" ".join(f"{r:+.1f}" for r in row) for row in readings[-1])
            print(f"  {photo.stem}: {rows}", file=sys.stderr, flush=True)
    finally:
        eyes.GAZE_CURVE = saved
    lines = []
    for a, axis in enumerate(AXES):
        median = np.median([r[a] for r in readings], axis=0)
        print(f"{axis}: drawn -> read back: " + " ".join(f"{lv:+.1f}:{r:+.1f}" for lv, r in zip(
            LEVELS[axis], median, strict=True)))
        pairs = zip(ASKED[axis], invert(median, axis), strict=True)
        table = ", ".join(f"({x:.1f}, {y:.1f})" for x, y in pairs)
        lines.append(f'    "{axis}": ({table}),')
    print("GAZE_CURVE = {\n" + "\n".join(lines) + "\n}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
