"""Real versus generated motion: every realdata val video's frame 0 speaking its own audio.

    python bench/realism.py [--realdata ../shared/realdata] [--split val] [--out out/realism]
                            [--generators baseline=baseline,shipped=weights] [--size 256]
                            [--only r03,r19] [--reuse] [--draws 3] [--sheet] [--traces docs/x.png]
                            [--retargeted docs/y.jpg] [--retargeted-videos r03,r04]

For each video of the split: frame 0 becomes the photo, the video's own sound the speech;
each generator (``label=baseline`` for the rule-based motion, ``label=DIR`` for diffusion
weights in DIR, ``label=DIR@steps=8+eta=0`` for them with other sampler settings,
``label=reenact`` for the video's own extracted motion: the ceiling the renderer and the
instruments allow) renders it with the video's own seed, its index in the split (one seed for
every video would give every render the same noise: the same blink moments, for one, and
figures of one draw; ``bench/spread.py``); ``--draws N`` renders it N times (seeds + 1000 per
draw) and takes the means (11 videos of one draw each move a median by up to 0.3 from seed
to seed). The real video and every
render are measured by the same instruments: ``talkinghead eval`` (head pose sd, rotation
per frame, mouth-opening sd, best lip lag, vowel/bilabial AUC at lag 0, blinks, jitter) and the motion encoder
(``extract_motion``), whose 2 s windows of pose and expression spread and speed give a
Frechet distance between all real and all generated windows.

Prints a per-video table and the medians of the ratios generated / real; writes realism.json
(and with --sheet, contact_sheet.png: real frames beside each generator's, for looking at
locally; realdata footage must not be copied into the repository; with --traces PNG, the head
yaw and pitch tracks of each video, real against generated: numbers, no footage; with
--retargeted JPEG, the example portrait moved by each chosen video's real motion above the
same portrait moved by the last generator from that video's sound: motion, no footage).
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import cv2
import numpy as np

from talkinghead.config import RenderConfig, SampleOptions
from talkinghead.evaluate import evaluate
from talkinghead.extract import extract_motion
from talkinghead.motionfile import retime
from talkinghead.motionstats import frechet_distance, window_features
from talkinghead.pipeline import reenact, render

ROOT = Path(__file__).resolve().parents[1]
FPS = 25.0
RATIOS = ("yaw_std", "pitch_std", "roll_std", "delta_pose_deg", "mouth_std", "gaze_yaw_std", "gaze_pitch_std")
LEVELS = ("corr_best_lag_ms", "auc_lag0", "blinks_per_min", "blink_ms", "jitter")


def split_videos(realdata: Path, split: str) -> list[Path]:
    with (realdata / "MANIFEST.tsv").open() as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    return [realdata / "videos" / f"{r['id']}.mp4" for r in rows if r["split"] == split]


def first_frame(video: Path, out: Path) -> Path:
    if not out.exists():
        capture = cv2.VideoCapture(str(video))
        ok, frame = capture.read()
        capture.release()
        if not ok:
            raise RuntimeError(f"{video}: no frame")
        out.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(out), frame)
    return out


def measure(video: Path, audio: Path, cache: Path) -> dict:
    """eval's report, the motion windows and the head pose track (yaw, pitch, roll per frame
    at FPS) of ``video``, cached as JSON beside it."""
    if cache.exists():
        cached = json.loads(cache.read_text())
        if "pose" in cached:
            return cached
    report = evaluate(video, audio=audio).as_dict()
    extracted = extract_motion(video).motion
    n = round(extracted.n_frames / extracted.fps * FPS)
    table = retime(extracted, FPS, n).to_array()
    result = {"eval": report, "windows": window_features(table, FPS).tolist(),
              "pose": np.round(table[:, :3], 3).tolist()}
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps(result))
    return result


def mean_of(values) -> float | None:
    """The mean of the values that are not None (None if none is)."""
    kept = [v for v in values if v is not None]
    return float(np.mean(kept)) if kept else None


def make_render(spec: str, photo: Path, video: Path, out: Path, size: int, seed: int) -> None:
    """Render ``photo`` speaking ``video``'s sound with the generator ``spec`` (see the module doc)."""
    if spec == "reenact":
        reenact(photo, video, out, RenderConfig(device="cpu", size=size, seed=seed), force=True)
        return
    spec, _, sampler = spec.partition("@")  # DIR@steps=8+eta=0: other sampler settings
    options = SampleOptions(**{k: type(getattr(SampleOptions(), k))(v) for k, v in
                               (item.split("=") for item in sampler.split("+") if item)})
    config = RenderConfig(motion="baseline" if spec == "baseline" else "diffusion",
                          weights=Path(spec) if spec != "baseline" else RenderConfig().weights,
                          device="cpu", size=size, seed=seed, sampler=options)
    render(photo, video, out, config, force=True)


COLOURS = ((40, 40, 40), (40, 110, 230), (60, 170, 60), (200, 120, 30), (150, 60, 170))  # BGR


def pose_traces(tracks: dict[str, dict[str, list]], out: Path, seconds: float = 8.0) -> None:
    """One panel per video: head yaw (top) and pitch (bottom) over the first ``seconds``, the
    real video's in dark grey and each generator's in colour (numbers only: no footage)."""
    width, height, pad = 420, 120, 18
    panels = []
    for name, by_label in tracks.items():
        panel = np.full((2 * height + 3 * pad, width, 3), 255, np.uint8)
        cv2.putText(panel, name, (6, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
        for row, axis in enumerate(("yaw", "pitch")):
            top = pad + row * (height + pad)
            cv2.putText(panel, f"{axis}, +-10 deg", (width - 100, top + 10), cv2.FONT_HERSHEY_SIMPLEX,
                        0.33, (90, 90, 90), 1, cv2.LINE_AA)
            cv2.line(panel, (0, top + height // 2), (width, top + height // 2), (220, 220, 220), 1)
            for colour, (label, pose) in zip(COLOURS, by_label.items(), strict=False):
                track = np.array(pose)[: int(seconds * FPS), row]
                track = track - np.median(track)
                xs = np.arange(len(track)) * width / (seconds * FPS)
                ys = top + height / 2 - np.clip(track, -10, 10) * height / 20
                points = np.stack([xs, ys], axis=1).round().astype(np.int32)
                cv2.polylines(panel, [points], False, colour, 1, cv2.LINE_AA)
                if row == 0:
                    cv2.putText(panel, label, (60 + 70 * COLOURS.index(colour), 13),
                                cv2.FONT_HERSHEY_SIMPLEX, 0.35, colour, 1, cv2.LINE_AA)
        panels.append(panel)
    while len(panels) % 2:
        panels.append(np.full_like(panels[0], 255))
    rows = [np.hstack([panels[i], np.full((panels[i].shape[0], 8, 3), 200, np.uint8), panels[i + 1]])
            for i in range(0, len(panels), 2)]
    cv2.imwrite(str(out), np.vstack(rows))


def tile(capture: cv2.VideoCapture, side: int) -> np.ndarray:
    """The next frame of ``capture`` as a ``side`` x ``side`` tile (black past the end)."""
    ok, frame = capture.read()
    return cv2.resize(frame, (side, side)) if ok else np.zeros((side, side, 3), np.uint8)


def contact_sheet(rows: list[tuple[str, list[Path]]], out: Path, times=(0.25, 0.5, 0.75)) -> None:
    """One row per (video, time): the real frame, then each render's, 192 px each."""
    tiles = []
    for _, videos in rows:
        for t in times:
            row = []
            for video in videos:
                capture = cv2.VideoCapture(str(video))
                capture.set(cv2.CAP_PROP_POS_FRAMES, int(t * capture.get(cv2.CAP_PROP_FRAME_COUNT)))
                row.append(tile(capture, 192))
                capture.release()
            tiles.append(np.hstack(row))
    cv2.imwrite(str(out), np.vstack(tiles))


def retargeted_sheet(videos: list[Path], portrait: Path, spec: str, work: Path, out: Path,
                     seconds: float = 4.0, step: float = 0.5, side: int = 128) -> None:
    """The example ``portrait`` moved by each video's real motion (``reenact``: the head
    motion the encoder reads in the video, retargeted) above the same portrait moved by the
    generator ``spec`` from that video's sound: two rows per video, a frame every ``step``
    seconds. No realdata footage reaches the picture, only the motion."""
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    for video in videos:
        name = video.stem.split("_")[0]
        pair = []
        for label in ("real", "generated"):
            path = work / f"{name}-{label}.mp4"
            if label == "real":
                reenact(portrait, video, path, RenderConfig(device="cpu", size=256, seed=0), force=True)
            else:
                make_render(spec, portrait, video, path, 256, seed=0)
            capture = cv2.VideoCapture(str(path))
            tiles = []
            for k in range(round(seconds / step) + 1):
                capture.set(cv2.CAP_PROP_POS_MSEC, 1000 * k * step)
                tiles.append(tile(capture, side))
            capture.release()
            strip = np.hstack(tiles)
            cv2.putText(strip, f"{name} {label}", (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255),
                        1, cv2.LINE_AA)
            pair.append(strip)
        rows.append(np.vstack([*pair, np.full((6, pair[0].shape[1], 3), 255, np.uint8)]))
    cv2.imwrite(str(out), np.vstack(rows), [cv2.IMWRITE_JPEG_QUALITY, 85])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--realdata", type=Path, default=ROOT.parent / "shared" / "realdata")
    parser.add_argument("--split", default="val")
    parser.add_argument("--out", type=Path, default=ROOT / "out" / "realism")
    parser.add_argument("--generators", default="baseline=baseline,shipped=weights",
                        help="comma-separated label=baseline, label=reenact or label=WEIGHTS_DIR")
    parser.add_argument("--size", type=int, default=256, help="render side, pixels")
    parser.add_argument("--only", default="", help="comma-separated video id prefixes")
    parser.add_argument("--reuse", action="store_true", help="keep renders and measures already made")
    parser.add_argument("--draws", type=int, default=1,
                        help="renders per video and generator, each with its own seed (the video's index "
                             "+ 1000 per draw); a video's figures are their means")
    parser.add_argument("--sheet", action="store_true", help="write contact_sheet.png")
    parser.add_argument("--traces", type=Path, default=None,
                        help="write the head pose tracks, real against generated, to this PNG")
    parser.add_argument("--retargeted", type=Path, default=None,
                        help="write examples/astronaut.png moved by real and by generated motion (the "
                             "last generator) for the --retargeted-videos, to this JPEG")
    parser.add_argument("--retargeted-videos", default="r03,r04,r05,r26")
    args = parser.parse_args()
    videos = split_videos(args.realdata, args.split)
    seeds = {video: index for index, video in enumerate(videos)}
    if args.only:
        videos = [v for v in videos if any(v.name.startswith(p) for p in args.only.split(","))]
    generators = dict(spec.split("=", 1) for spec in args.generators.split(","))
    results: dict = {"videos": {}, "medians": {}, "frechet": {}, "generators": generators}
    windows: dict[str, list] = {"real": []}
    sheet_rows = []
    tracks: dict[str, dict[str, list]] = {}
    for video in videos:
        name = video.stem.split("_")[0]
        photo = first_frame(video, args.out / "frames" / f"{name}.png")
        cache = args.out / "measures"
        if not args.reuse:
            for stale in cache.glob(f"{name}-*.json"):
                if not stale.name.endswith("-real.json"):
                    stale.unlink()
        real = measure(video, video, cache / f"{name}-real.json")
        windows["real"] += real["windows"]
        row = {"real": {k: real["eval"][k] for k in RATIOS + LEVELS}}
        tracks[name] = {"real": real["pose"]}
        rendered = [video]
        for label, spec in generators.items():
            draws = []
            for draw in range(1 if spec == "reenact" else args.draws):
                suffix = f"-d{draw}" if draw else ""
                out = args.out / label / f"{name}{suffix}.mp4"
                if not (args.reuse and out.exists()):
                    out.parent.mkdir(parents=True, exist_ok=True)
                    make_render(spec, photo, video, out, args.size, seeds[video] + 1000 * draw)
                made = measure(out, video, cache / f"{name}-{label}{suffix}.json")
                windows.setdefault(label, []).extend(made["windows"])
                draws.append(made["eval"])
                if not draw:
                    tracks[name][label] = made["pose"]
                    rendered.append(out)
            row[label] = {k: mean_of(d[k] for d in draws) for k in RATIOS + LEVELS}
            row[label].update({f"{k}_ratio": row[label][k] / max(real["eval"][k], 1e-9) for k in RATIOS})
        results["videos"][name] = row
        sheet_rows.append((name, rendered))
        print(name, json.dumps(row), flush=True)

    real_windows = np.array(windows["real"])
    for label in generators:
        rows = [r[label] for r in results["videos"].values()]
        med = {f"{k}_ratio": float(np.median([r[f"{k}_ratio"] for r in rows])) for k in RATIOS}
        for k in LEVELS:
            values = [r[k] for r in rows if r[k] is not None]
            med[k] = float(np.median(values)) if values else None
        results["medians"][label] = med
        results["frechet"][label] = frechet_distance(real_windows, np.array(windows[label]))
    real_rows = [r["real"] for r in results["videos"].values()]
    results["medians"]["real"] = {k: float(np.median([r[k] for r in real_rows if r[k] is not None]))
                                  for k in LEVELS if any(r[k] is not None for r in real_rows)}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "realism.json").write_text(json.dumps(results, indent=1) + "\n")
    keys = [f"{k}_ratio" for k in RATIOS] + list(LEVELS)
    print(f"\nmedians over {len(videos)} {args.split} videos")
    print(f"{'':10s}" + "".join(f"{k:>22s}" for k in keys) + f"{'frechet':>10s}")
    for label, med in results["medians"].items():
        cells = "".join(f"{med[k]:22.3g}" if med.get(k) is not None else f"{'-':>22s}" for k in keys)
        fd = results["frechet"].get(label)
        print(f"{label:10s}{cells}" + (f"{fd:10.3g}" if fd is not None else ""))
    if args.sheet:
        contact_sheet(sheet_rows, args.out / "contact_sheet.png")
    if args.traces:
        pose_traces(tracks, args.traces)
    if args.retargeted:
        chosen = [v for p in args.retargeted_videos.split(",") for v in videos if v.name.startswith(p)]
        retargeted_sheet(chosen, ROOT / "examples" / "astronaut.png", list(generators.values())[-1],
                         args.out / "retargeted", args.retargeted)


if __name__ == "__main__":
    main()
