"""Self-reenactment: how close the renderer comes to real frames when driven by real motion.

For each real talking video: extract its motion from every frame (``talkinghead.extract``),
drive the video's first frame with it (full frame, so renders and real frames share pixels),
and compare each rendered frame with the real one. Two decoders are measured:
- ours: the mesh-warp renderer driven by the extracted motion, relative to the first frame;
- affine: the first frame warped by the similarity transform (rotation, scale, shift) that
  best maps its landmarks onto the real frame's landmarks (an oracle fit, 2D).
Per frame:
- landmark error: mean 2D distance between the face mesh re-detected on the rendered frames
  (tracking mode) and on the real frames, 468 surface points, in the real frame's
  inter-ocular distances;
- PSNR (dB) over the real face (inside the face-oval polygon) and SSIM (grey levels, 7-pixel
  window) averaged over the same pixels.
Averages leave out frame 0 (the source itself); ``*_most_turned`` average over the tenth of
the frames where the real head is turned farthest from frame 0 (``turn_deg``: the norm of its
yaw, pitch and roll change). Writes out/reenactment/<video>.csv (per frame),
out/reenactment/summary.csv and contact sheets out/reenactment/<video>.png (rows: real | ours
| affine). Usage:

    python bench/reenactment.py [VIDEO ...] [--max-frames N] [--out out/reenactment]

With no VIDEO, every mp4 in ../shared/devdata/videos.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import cv2
import numpy as np
from skimage.metrics import structural_similarity

from talkinghead.encode import encode
from talkinghead.extract import extract_motion
from talkinghead.face import find_face, track_landmarks
from talkinghead.load import Portrait
from talkinghead.models import facemesh as fm
from talkinghead.motionfile import relative_to
from talkinghead.mux import probe, read_frames
from talkinghead.renderer import MeshWarpRenderer

DEVDATA_VIDEOS = Path(__file__).resolve().parents[2] / "shared" / "devdata" / "videos"
SHEET_FRAMES = 5  # frames per contact sheet
SHEET_SIDE = 256  # pixels per contact-sheet tile


def read_video(path: Path, max_frames: int | None) -> tuple[np.ndarray, float]:
    info = probe(path)
    frames = np.concatenate(list(read_frames(path, info.width, info.height)))
    return (frames if max_frames is None else frames[:max_frames]), info.fps


def face_mask(landmarks: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    mask = np.zeros(shape, np.uint8)
    cv2.fillPoly(mask, [np.round(landmarks[list(fm.FACE_OVAL), :2]).astype(np.int32)], 1)
    return mask.astype(bool)


def affine_baseline(first: np.ndarray, first_lm: np.ndarray, real_lm: np.ndarray) -> np.ndarray:
    """The first frame warped by the similarity taking its landmarks onto ``real_lm``."""
    h, w = first.shape[:2]
    # Least squares in the complex plane: dst = a (src - mean_src) + mean_dst.
    src = first_lm[: fm.N_SURFACE, 0] + 1j * first_lm[: fm.N_SURFACE, 1]
    dst = real_lm[: fm.N_SURFACE, 0] + 1j * real_lm[: fm.N_SURFACE, 1]
    ms, md = src.mean(), dst.mean()
    a = np.sum(np.conj(src - ms) * (dst - md)) / np.sum(np.abs(src - ms) ** 2)
    shift = md - a * ms
    matrix = np.array([[a.real, -a.imag, shift.real], [a.imag, a.real, shift.imag]])
    return cv2.warpAffine(first, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def scores(frame: np.ndarray, real: np.ndarray, real_lm: np.ndarray,
           frame_lm: np.ndarray | None) -> tuple[float, float, float]:
    """(landmark error, PSNR, SSIM) of one frame against the real one."""
    iod = float(np.linalg.norm(real_lm[263, :2] - real_lm[33, :2]))
    lm_error = (float(np.linalg.norm(frame_lm[: fm.N_SURFACE, :2] - real_lm[: fm.N_SURFACE, :2],
                                     axis=1).mean()) / iod if frame_lm is not None else np.nan)
    mask = face_mask(real_lm, real.shape[:2])
    diff = frame.astype(np.float64)[mask] - real.astype(np.float64)[mask]
    psnr = 10 * np.log10(255.0**2 / max(float((diff**2).mean()), 1e-10))
    ys, xs = np.nonzero(mask)
    box = (slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1))
    grey = [cv2.cvtColor(np.ascontiguousarray(x[box]), cv2.COLOR_RGB2GRAY) for x in (frame, real)]
    _, ssim_map = structural_similarity(grey[0], grey[1], data_range=255, full=True, win_size=7)
    return lm_error, psnr, float(ssim_map[mask[box]].mean())


def reenact_video(path: Path, out: Path, max_frames: int | None, device: str) -> dict[str, float]:
    started = time.perf_counter()
    real, _ = read_video(path, max_frames)
    n = len(real)
    extracted = extract_motion(path, max_frames=n)
    portrait = Portrait(path, real[0])
    face = find_face(portrait)
    appearance, source = encode(portrait, face, full_frame=True)
    if appearance.image.shape != real[0].shape:  # odd sides were cropped to even ones
        h, w = appearance.image.shape[:2]
        real = real[:, :h, :w]
    motion = relative_to(extracted.motion, source)
    renderer = MeshWarpRenderer(appearance, source, device=device)
    ours = np.concatenate([renderer.render(motion.frames(s, s + 8)) for s in range(0, n, 8)])
    render_seconds = time.perf_counter() - started
    real_lm = extracted.landmarks
    affine = np.stack([affine_baseline(real[0], real_lm[0], real_lm[t]) for t in range(n)])
    ours_lm = list(track_landmarks(ours))
    affine_lm = list(track_landmarks(affine))

    pose = extracted.motion.pose[:, :3].astype(np.float64)
    turn = np.linalg.norm(pose - pose[0], axis=1)  # the real head's yaw/pitch/roll from frame 0, deg
    rows = []
    for t in range(n):
        row = {"frame": t, "turn_deg": float(turn[t])}
        for name, frames, lms in (("ours", ours, ours_lm), ("affine", affine, affine_lm)):
            lm_error, psnr, ssim = scores(frames[t], real[t], real_lm[t], lms[t])
            row.update({f"{name}_landmark_error": lm_error, f"{name}_psnr": psnr, f"{name}_ssim": ssim})
        rows.append(row)
    with open(out / f"{path.stem}.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows({k: (round(v, 5) if isinstance(v, float) else v) for k, v in r.items()}
                         for r in rows)

    picks = np.linspace(0, n - 1, SHEET_FRAMES).round().astype(int)
    tiles = []
    for frames in (real, ours, affine):
        crop = _face_crop(real_lm[0], real.shape[1:3])
        tiles.append(np.concatenate([cv2.resize(frames[t][crop], (SHEET_SIDE, SHEET_SIDE),
                                                interpolation=cv2.INTER_AREA) for t in picks], axis=1))
    cv2.imwrite(str(out / f"{path.stem}.png"), cv2.cvtColor(np.concatenate(tiles), cv2.COLOR_RGB2BGR))

    later = rows[1:] or rows
    summary = {"video": path.stem, "frames": n}
    for key in rows[0]:
        if key != "frame":
            summary[key] = float(np.nanmean([r[key] for r in later]))
    # The frames that move most: the tenth of them where the real head is turned farthest
    # from the first frame (where a renderer's large-pose faults show).
    turned = sorted(later, key=lambda r: r["turn_deg"])[-max(1, len(later) // 10):]
    for key in ("turn_deg", "ours_landmark_error", "affine_landmark_error"):
        summary[f"{key}_most_turned"] = float(np.nanmean([r[key] for r in turned]))
    summary["seconds"] = time.perf_counter() - started
    summary["render_seconds"] = render_seconds
    return summary


def _face_crop(landmarks: np.ndarray, shape: tuple[int, int]) -> tuple[slice, slice]:
    """A square around the face, 4 inter-ocular distances wide, inside the frame."""
    h, w = shape
    iod = float(np.linalg.norm(landmarks[263, :2] - landmarks[33, :2]))
    side = int(min(4.0 * iod, h, w))
    cx, cy = landmarks[: fm.N_SURFACE, :2].mean(axis=0)
    x0 = int(np.clip(cx - side / 2, 0, w - side))
    y0 = int(np.clip(cy - side / 2 + 0.2 * iod, 0, h - side))
    return slice(y0, y0 + side), slice(x0, x0 + side)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("videos", nargs="*", type=Path)
    parser.add_argument("--max-frames", type=int, default=None, help="frames per video [all]")
    parser.add_argument("--out", type=Path, default=Path("out/reenactment"))
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    videos = args.videos or sorted(DEVDATA_VIDEOS.glob("*.mp4"))
    if not videos:
        sys.exit(f"no videos given and none in {DEVDATA_VIDEOS}")
    args.out.mkdir(parents=True, exist_ok=True)
    summaries = [reenact_video(v, args.out, args.max_frames, args.device) for v in videos]
    keys = list(summaries[0])
    mean = {"video": "mean", "frames": sum(s["frames"] for s in summaries)}
    for key in keys[2:]:
        mean[key] = float(np.mean([s[key] for s in summaries]))
    summaries.append(mean)
    with open(args.out / "summary.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=keys)
        writer.writeheader()
        writer.writerows({k: (round(v, 4) if isinstance(v, float) else v) for k, v in s.items()}
                         for s in summaries)
    print(f"{'video':<28} {'frames':>6}  {'landmark err (iod)':>19}  {'PSNR face (dB)':>15}  "
          f"{'SSIM face':>13}  {'most turned: deg, err ours/affine':>34}")
    print(f"{'':<28} {'':>6}  {'ours':>9} {'affine':>9}  {'ours':>7} {'affine':>7}  "
          f"{'ours':>6} {'affine':>6}")
    for s in summaries:
        print(f"{s['video']:<28} {s['frames']:>6}  {s['ours_landmark_error']:>9.4f} "
              f"{s['affine_landmark_error']:>9.4f}  {s['ours_psnr']:>7.2f} {s['affine_psnr']:>7.2f}  "
              f"{s['ours_ssim']:>6.3f} {s['affine_ssim']:>6.3f}  {s['turn_deg_most_turned']:>12.1f} "
              f"{s['ours_landmark_error_most_turned']:>10.4f} "
              f"{s['affine_landmark_error_most_turned']:>10.4f}")
    print(f"per-frame CSVs, summary.csv and contact sheets (rows: real | ours | affine) in {args.out}")


if __name__ == "__main__":
    main()
