"""The README's pictures: frames of the demo, and the renderer across poses and mouth shapes.

    python bench/sheets.py [--demo out/demo.mp4] [--out docs] [--local out/sheets]

- demo_frames.jpg: 8 frames spread over ``make demo``'s output, 2 rows of 4.
- poses.jpg: the example portrait (public domain) rendered by the mesh-warp renderer with the
  motions in POSES (columns): head turns up to 20° yaw and 12° pitch, with the jaw, smile,
  pucker, blink, brows and gaze changed against the photo's own.
- poses_combined.jpg: the same portrait with yaw, pitch and roll changed at once (COMBINED:
  15/10/8 degrees, signs mixed), the head motion real talkers reach at their peaks.
- mouths.jpg: open mouths (MOUTHS, columns) by each mouth painter (rows: procedural, then
  learned) on the example portrait as a photo, in black and white, as a painting and as an
  illustration (the last three made from the photo by OpenCV filters).
- ``--local``/poses-devdata.jpg, poses-combined-devdata.jpg and mouths-devdata.jpg: the same
  for every devdata portrait (rows), for looking at locally only: devdata's photos (and
  pictures made from them) may not enter the repository.
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
from talkinghead.face import track_landmarks
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

# Open mouths: (label, yaw, {expression: value}).
MOUTHS = (
    ("jaw 0.25", 0, {"jawOpen": 0.25}),
    ("jaw 0.45", 0, {"jawOpen": 0.45}),
    ("jaw 0.7", 0, {"jawOpen": 0.7}),
    ("smile, jaw 0.35", 0, {"jawOpen": 0.35, "mouthSmileLeft": 0.7, "mouthSmileRight": 0.7}),
    ("yaw 15, jaw 0.5", 15, {"jawOpen": 0.5}),
)
MOUTH_TILE = 160


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


def styled(photo: Path, folder: Path) -> list[Path]:
    """``photo`` and three versions of it: black and white, a painting, an illustration."""
    image = cv2.imread(str(photo))
    grey = cv2.cvtColor(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
    smooth = cv2.edgePreservingFilter(image, flags=cv2.RECURS_FILTER, sigma_s=50, sigma_r=0.4)
    painting = cv2.detailEnhance(smooth, sigma_s=10, sigma_r=0.15)  # flat strokes, crisp edges
    flat = np.clip((smooth.astype(int) // 48) * 48 + 24, 0, 255)  # a few flat tones per channel
    edges = cv2.Canny(cv2.GaussianBlur(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), (5, 5), 0), 80, 160)
    illustration = np.where(edges[..., None] > 0, 20, flat)
    illustration = illustration.astype(np.uint8)
    paths = [photo]
    for name, picture in (("bw", grey), ("painting", painting), ("illustration", illustration)):
        paths.append(folder / f"{photo.stem}_{name}.png")
        cv2.imwrite(str(paths[-1]), picture)
    return paths


def mouth_sheet(photos: list[Path], out: Path) -> None:
    """Two rows per photo (the procedural painter, then the learned one), one column per
    entry of MOUTHS, each tile around the mouth."""
    rows = []
    for photo in photos:
        for painter in ("procedural", "learned"):
            avatar = Avatar.from_photo(photo, config=RenderConfig(size=512), motion="baseline", mouth=painter)
            source = avatar.source
            pose = np.repeat(source.pose, len(MOUTHS), axis=0)
            expression = np.repeat(source.expression, len(MOUTHS), axis=0)
            for k, (_, yaw, changes) in enumerate(MOUTHS):
                pose[k, 0] += yaw
                for name, value in changes.items():
                    expression[k, expression_index(name)] = value
            gaze = np.repeat(source.gaze, len(MOUTHS), axis=0)
            frames = list(avatar.frames(MotionSequence(source.fps, pose, expression, gaze)))
            tiles = []
            for frame, landmarks in zip(frames, track_landmarks(frames), strict=True):
                if landmarks is None:
                    tiles.append(np.zeros((MOUTH_TILE, MOUTH_TILE, 3), np.uint8))
                    continue
                iod = float(np.linalg.norm(landmarks[263, :2] - landmarks[33, :2]))
                cx, cy = landmarks[[13, 14], :2].mean(axis=0)
                half = int(0.55 * iod)
                x0, y0 = (int(np.clip(c - half, 0, 512 - 2 * half)) for c in (cx, cy))
                tiles.append(cv2.resize(frame[y0 : y0 + 2 * half, x0 : x0 + 2 * half], (MOUTH_TILE,) * 2,
                                        interpolation=cv2.INTER_AREA))
            rows.append(np.concatenate(tiles, axis=1))
        print(photo.name)
    sheet = cv2.cvtColor(np.concatenate(rows), cv2.COLOR_RGB2BGR)
    cv2.imwrite(str(out), sheet, [cv2.IMWRITE_JPEG_QUALITY, 88])


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
    with tempfile.TemporaryDirectory() as tmp:
        mouth_sheet(styled(ROOT / "examples" / "astronaut.png", Path(tmp)), args.out / "mouths.jpg")
    if (DEVDATA / "portraits").is_dir():
        args.local.mkdir(parents=True, exist_ok=True)
        portraits = sorted((DEVDATA / "portraits").glob("*"))
        pose_sheet(portraits, args.local / "poses-devdata.jpg")
        pose_sheet(portraits, args.local / "poses-combined-devdata.jpg", COMBINED)
        mouth_sheet(portraits, args.local / "mouths-devdata.jpg")
    else:
        print(f"{DEVDATA / 'portraits'}: not found; pose sheet skipped")
    print(f"wrote pictures to {args.out}")


if __name__ == "__main__":
    main()
