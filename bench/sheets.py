"""The README's pictures: frames of the demo, and the renderer across poses and mouth shapes.

    python bench/sheets.py [--demo out/demo.mp4] [--out docs] [--local out/sheets]

- demo_frames.jpg: 8 frames spread over ``make demo``'s output, 2 rows of 4.
- poses.jpg: the example portrait (public domain) rendered by the mesh-warp renderer with the
  motions in POSES (columns): head turns up to 20° yaw and 12° pitch, with the jaw, smile,
  pucker, blink, brows and gaze changed against the photo's own.
- poses_combined.jpg: the same portrait with yaw, pitch and roll changed at once (COMBINED:
  15/10/8 degrees, signs mixed), the head motion real talkers reach at their peaks.
- ``--local``/poses-devdata.jpg and poses-combined-devdata.jpg: the same for every devdata
  portrait (rows), for looking at locally only: devdata's photos (and pictures made from them)
  may not enter the repository.
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
from pathlib import Path

import cv2
import imageio_ffmpeg
import numpy as np

from talkinghead.api import Avatar
from talkinghead.config import RenderConfig
from talkinghead.motionspace import MotionSequence, expression_index

ROOT = Path(__file__).resolve().parents[1]
DEVDATA = ROOT.parent / "shared" / "devdata"
TILE = 192
# (label, yaw, pitch, roll, {expression: value}, gaze yaw) changes against the photo's own motion.
POSES = (
    ("photo's pose, jaw 0.35", 0, 0, 0, {"jawOpen": 0.35}, 0),
    ("yaw +20, jaw 0.6", 20, 0, 0, {"jawOpen": 0.6}, 0),
    ("yaw -20, smile", -20, 0, 0, {"mouthSmileLeft": 0.8, "mouthSmileRight": 0.8}, 0),
    ("pitch +12, pucker", 0, 12, 0, {"mouthPucker": 0.8, "mouthFunnel": 0.4}, 0),
    ("pitch -10, blink", 0, -10, 0, {"eyeBlinkLeft": 1.0, "eyeBlinkRight": 1.0}, 0),
    ("yaw 10, brows up, gaze 15", 10, 0, 0, {"browInnerUp": 0.8, "browOuterUpLeft": 0.6,
                                            "browOuterUpRight": 0.6}, 15),
)
# All three axes at once, at a talker's peaks (the renderer issue's 15/10/8 degrees).
COMBINED = (
    ("photo's pose", 0, 0, 0, {}, 0),
    ("yaw 15, pitch 10, roll 8", 15, 10, 8, {"jawOpen": 0.4}, 0),
    ("yaw -15, pitch 10, roll -8", -15, 10, -8, {"jawOpen": 0.4}, 0),
    ("yaw 15, pitch -10, roll -8", 15, -10, -8, {"jawOpen": 0.4}, 0),
    ("yaw -15, pitch -10, roll 8", -15, -10, 8, {"jawOpen": 0.4}, 0),
)


def demo_frames(video: Path, out: Path, count: int = 8) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-i", str(video),
                        "-vf", "fps=2", str(Path(tmp) / "f_%03d.png")], check=True)
        files = sorted(Path(tmp).glob("f_*.png"))
        picks = [files[i] for i in np.linspace(1, len(files) - 1, count).astype(int)]
        tiles = [cv2.resize(cv2.imread(str(f)), (228, 228), interpolation=cv2.INTER_AREA)
                 for f in picks]
    rows = [np.concatenate(tiles[i : i + 4], axis=1) for i in range(0, count, 4)]
    cv2.imwrite(str(out), np.concatenate(rows, axis=0), [cv2.IMWRITE_JPEG_QUALITY, 88])


def pose_sheet(photos: list[Path], out: Path, poses: tuple = POSES) -> None:
    """One row per photo, one column per entry of ``poses`` (POSES or COMBINED)."""
    config = RenderConfig(size=512)
    rows = []
    for photo in photos:
        avatar = Avatar.from_photo(photo, config=config, motion="baseline")
        source = avatar.source
        pose = np.repeat(source.pose, len(poses), axis=0)
        expression = np.repeat(source.expression, len(poses), axis=0)
        gaze = np.repeat(source.gaze, len(poses), axis=0)
        for k, (_, yaw, pitch, roll, changes, gaze_yaw) in enumerate(poses):
            pose[k, :3] += (yaw, pitch, roll)
            gaze[k, 0] += gaze_yaw
            for name, value in changes.items():
                expression[k, expression_index(name)] = value
        frames = list(avatar.frames(MotionSequence(source.fps, pose, expression, gaze)))
        tiles = [cv2.resize(frame, (TILE, TILE), interpolation=cv2.INTER_AREA) for frame in frames]
        rows.append(np.concatenate(tiles, axis=1))
        print(photo.name)
    sheet = np.concatenate(rows, axis=0)
    cv2.imwrite(str(out), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 85])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo", type=Path, default=ROOT / "out" / "demo.mp4")
    parser.add_argument("--out", type=Path, default=ROOT / "docs")
    parser.add_argument("--local", type=Path, default=ROOT / "out" / "sheets",
                        help="folder for the devdata pose sheet (not for the repository)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.demo.exists():
        demo_frames(args.demo, args.out / "demo_frames.jpg")
    else:
        print(f"{args.demo}: not found, run `make demo` first; demo frames skipped")
    pose_sheet([ROOT / "examples" / "astronaut.png"], args.out / "poses.jpg")
    pose_sheet([ROOT / "examples" / "astronaut.png"], args.out / "poses_combined.jpg", COMBINED)
    if (DEVDATA / "portraits").is_dir():
        args.local.mkdir(parents=True, exist_ok=True)
        portraits = sorted((DEVDATA / "portraits").glob("*"))
        pose_sheet(portraits, args.local / "poses-devdata.jpg")
        pose_sheet(portraits, args.local / "poses-combined-devdata.jpg", COMBINED)
    else:
        print(f"{DEVDATA / 'portraits'}: not found; pose sheet skipped")
    print(f"wrote pictures to {args.out}")


if __name__ == "__main__":
    main()
