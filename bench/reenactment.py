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
- mouth PSNR and SSIM (``*_mouth_psnr``, ``*_mouth_ssim``) on the frames where the real mouth
  is open (lips apart by more than ``mouthtrain.OPEN_GAP`` inter-ocular distances at the
  middle), over the real outer-lip polygon grown by 40% about its centre.
Our renderer is measured twice, with each mouth painter: ``learned`` (the network in
``--mouth-weights``, the shipped one by default) and ``procedural`` (``--mouth-weights none``
leaves the learned one out). Averages leave out frame 0 (the source itself);
``*_most_turned`` average over the tenth of the frames where the real head is turned farthest
from frame 0 (``turn_deg``: the norm of its yaw, pitch and roll change). Writes
out/reenactment/<video>.csv (per frame), out/reenactment/summary.csv and contact sheets
out/reenactment/<video>.png (rows: real, each painter, affine) and <video>_mouth.png (the most
open frames, rows: real, each painter). Usage:

    python bench/reenactment.py [VIDEO ...] [--max-frames N] [--out out/reenactment]
        [--mouth-weights DIR|none]

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
from talkinghead.mouthtrain import OPEN_GAP
from talkinghead.mux import probe, read_frames
from talkinghead.renderer import MeshWarpRenderer
from talkinghead.renderer.mouthnet import MouthNet, load_mouth_net

DEVDATA_VIDEOS = Path(__file__).resolve().parents[2] / "shared" / "devdata" / "videos"
MOUTH_WEIGHTS = Path(__file__).resolve().parents[1] / "weights" / "mouth"
MOUTH_GROWTH = 1.4  # the mouth region: the outer lips scaled by this about their centre
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


def mouth_region(landmarks: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """(H, W) bool: the outer-lip polygon grown by MOUTH_GROWTH about its centre."""
    outer = landmarks[list(fm.LIPS_UPPER_OUTER) + list(fm.LIPS_LOWER_OUTER[-2:0:-1]), :2]
    grown = outer.mean(axis=0) + MOUTH_GROWTH * (outer - outer.mean(axis=0))
    mask = np.zeros(shape, np.uint8)
    cv2.fillPoly(mask, [np.round(grown).astype(np.int32)], 1)
    return mask.astype(bool)


def lips_apart(landmarks: np.ndarray) -> float:
    """Lips apart at the middle, inter-ocular distances."""
    return float(np.linalg.norm(landmarks[14, :2] - landmarks[13, :2])
                 / np.linalg.norm(landmarks[263, :2] - landmarks[33, :2]))


def mouth_scores(frame: np.ndarray, real: np.ndarray, real_lm: np.ndarray) -> tuple[float, float]:
    """(PSNR, SSIM) of one frame against the real one over the real mouth region, NaN where the
    real mouth is shut."""
    if lips_apart(real_lm) <= OPEN_GAP:
        return np.nan, np.nan
    mask = mouth_region(real_lm, real.shape[:2])
    if not mask.any():
        return np.nan, np.nan
    diff = frame.astype(np.float64)[mask] - real.astype(np.float64)[mask]
    psnr = 10 * np.log10(255.0**2 / max(float((diff**2).mean()), 1e-10))
    ys, xs = np.nonzero(mask)
    box = (slice(max(ys.min() - 4, 0), ys.max() + 5), slice(max(xs.min() - 4, 0), xs.max() + 5))
    grey = [cv2.cvtColor(np.ascontiguousarray(x[box]), cv2.COLOR_RGB2GRAY) for x in (frame, real)]
    _, ssim_map = structural_similarity(grey[0], grey[1], data_range=255, full=True, win_size=7)
    return psnr, float(ssim_map[mask[box]].mean())


def reenact_video(path: Path, out: Path, max_frames: int | None, device: str,
                  mouth_net: MouthNet | None) -> dict[str, float]:
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
    painters = {"learned": mouth_net, "procedural": None} if mouth_net is not None else {"procedural": None}
    renders = {}
    for name, net in painters.items():
        renderer = MeshWarpRenderer(appearance, source, device=device, mouth_net=net)
        renders[name] = np.concatenate([renderer.render(motion.frames(s, s + 8)) for s in range(0, n, 8)])
    render_seconds = time.perf_counter() - started
    real_lm = extracted.landmarks
    renders["affine"] = np.stack([affine_baseline(real[0], real_lm[0], real_lm[t]) for t in range(n)])
    tracked = {name: list(track_landmarks(frames)) for name, frames in renders.items()}

    pose = extracted.motion.pose[:, :3].astype(np.float64)
    turn = np.linalg.norm(pose - pose[0], axis=1)  # the real head's yaw/pitch/roll from frame 0, deg
    rows = []
    for t in range(n):
        row = {"frame": t, "turn_deg": float(turn[t])}
        for name, frames in renders.items():
            lm_error, psnr, ssim = scores(frames[t], real[t], real_lm[t], tracked[name][t])
            mouth_psnr, mouth_ssim = mouth_scores(frames[t], real[t], real_lm[t])
            row.update({f"{name}_landmark_error": lm_error, f"{name}_psnr": psnr, f"{name}_ssim": ssim,
                        f"{name}_mouth_psnr": mouth_psnr, f"{name}_mouth_ssim": mouth_ssim})
        rows.append(row)
    with open(out / f"{path.stem}.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows({k: (round(v, 5) if isinstance(v, float) else v) for k, v in r.items()}
                         for r in rows)

    picks = np.linspace(0, n - 1, SHEET_FRAMES).round().astype(int)
    tiles = []
    crop = _face_crop(real_lm[0], real.shape[1:3])
    for frames in (real, *renders.values()):
        tiles.append(np.concatenate([cv2.resize(frames[t][crop], (SHEET_SIDE, SHEET_SIDE),
                                                interpolation=cv2.INTER_AREA) for t in picks], axis=1))
    cv2.imwrite(str(out / f"{path.stem}.png"), cv2.cvtColor(np.concatenate(tiles), cv2.COLOR_RGB2BGR))
    _mouth_sheet(out / f"{path.stem}_mouth.png", real, {k: v for k, v in renders.items() if k != "affine"},
                 real_lm)

    later = rows[1:] or rows
    summary = {"video": path.stem, "frames": n}
    for key in rows[0]:
        if key != "frame":
            summary[key] = float(np.nanmean([r[key] for r in later]))
    # The frames that move most: the tenth of them where the real head is turned farthest
    # from the first frame (where a renderer's large-pose faults show).
    turned = sorted(later, key=lambda r: r["turn_deg"])[-max(1, len(later) // 10):]
    for key in ("turn_deg", *(f"{name}_landmark_error" for name in renders)):
        summary[f"{key}_most_turned"] = float(np.nanmean([r[key] for r in turned]))
    summary["open_frames"] = int(np.isfinite([r["affine_mouth_psnr"] for r in later]).sum())
    summary["seconds"] = time.perf_counter() - started
    summary["render_seconds"] = render_seconds
    return summary


def _mouth_sheet(path: Path, real: np.ndarray, renders: dict[str, np.ndarray], real_lm: np.ndarray) -> None:
    """The most open frames (at least half a second apart), around the mouth: real, then
    each painter's, one row each."""
    gaps = np.array([lips_apart(lm) for lm in real_lm])
    picks: list[int] = []
    for t in np.argsort(-gaps):
        if gaps[t] > OPEN_GAP and t > 0 and all(abs(int(t) - p) >= 12 for p in picks):
            picks.append(int(t))
        if len(picks) == SHEET_FRAMES:
            break
    if not picks:
        return
    rows = []
    for frames in (real, *renders.values()):
        tiles = []
        for t in sorted(picks):
            lm = real_lm[t]
            side = 1.8 * float(np.linalg.norm(lm[fm.MOUTH_CORNER_LEFT, :2] - lm[fm.MOUTH_CORNER_RIGHT, :2]))
            (cx, cy), half = lm[[13, 14], :2].mean(axis=0), side / 2
            box = np.float32([[cx - half, cy - half], [cx + half, cy - half], [cx - half, cy + half]])
            square = np.float32([[0, 0], [SHEET_SIDE, 0], [0, SHEET_SIDE]])
            tiles.append(cv2.warpAffine(frames[t], cv2.getAffineTransform(box, square), (SHEET_SIDE,) * 2,
                                        flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REPLICATE))
        rows.append(np.concatenate(tiles, axis=1))
    cv2.imwrite(str(path), cv2.cvtColor(np.concatenate(rows), cv2.COLOR_RGB2BGR))


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
    parser.add_argument("--mouth-weights", type=Path, default=MOUTH_WEIGHTS,
                        help="the learned mouth painter's weights, or 'none' [weights/mouth]")
    args = parser.parse_args()
    videos = args.videos or sorted(DEVDATA_VIDEOS.glob("*.mp4"))
    if not videos:
        sys.exit(f"no videos given and none in {DEVDATA_VIDEOS}")
    args.out.mkdir(parents=True, exist_ok=True)
    weights = None if str(args.mouth_weights) == "none" else args.mouth_weights
    net = load_mouth_net(weights) if weights is not None else None
    summaries = [reenact_video(v, args.out, args.max_frames, args.device, net) for v in videos]
    keys = list(summaries[0])
    mean = {"video": "mean", "frames": sum(s["frames"] for s in summaries)}
    for key in keys[2:]:
        mean[key] = float(np.nanmean([s[key] for s in summaries]))
    summaries.append(mean)
    with open(args.out / "summary.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=keys)
        writer.writeheader()
        writer.writerows({k: (round(v, 4) if isinstance(v, float) else v) for k, v in s.items()}
                         for s in summaries)
    decoders = [key.removesuffix("_landmark_error") for key in keys if key.endswith("_landmark_error")]
    print(f"{'video':<34} {'frames':>6} {'open':>5}  {'decoder':<10} {'landmark err':>12} {'face PSNR':>9} "
          f"{'SSIM':>6}  {'mouth PSNR':>10} {'SSIM':>6}  {'most turned err':>15}")
    for s in summaries:
        for i, name in enumerate(decoders):
            head = f"{s['video']:<34} {s['frames']:>6} {s['open_frames']:>5.0f}" if i == 0 else " " * 47
            print(f"{head}  {name:<10} {s[f'{name}_landmark_error']:>12.4f} {s[f'{name}_psnr']:>9.2f} "
                  f"{s[f'{name}_ssim']:>6.3f}  {s[f'{name}_mouth_psnr']:>10.2f} "
                  f"{s[f'{name}_mouth_ssim']:>6.3f}  "
                  f"{s[f'{name}_landmark_error_most_turned']:>15.4f}")
    print(f"per-frame CSVs, summary.csv and contact sheets ({args.out}/<video>.png rows: real, "
          f"{', '.join(decoders)}; <video>_mouth.png: the most open frames) in {args.out}")

if __name__ == "__main__":
    main()
