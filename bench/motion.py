"""Motion generators side by side: `talkinghead eval` on renders from baseline and diffusion
motion, window seams, controls obeyed, and motion sampling speed.

    python bench/motion.py [--devdata ../shared/devdata] [--weights weights] [--out out/motion]
                           [--portraits p15,p08 | all] [--size 512] [--quick]

1. Lip sync, blinks, head motion: every devdata audio clip spoken by each chosen devdata
   portrait (seed 0), once per generator, measured by `talkinghead eval`; means per generator
   over all renders.
2. Seams: diffusion motion's frame-to-frame change at window joins against within windows.
   Seeds: mean correlation of yaw, and of jawOpen, between 4 seeds' motion for each clip
   (different head motion, the same lip sync).
3. Controls (diffusion; the baseline goes through the same ``apply_controls``), on the
   shortest clip: gaze and head distance measured on renders (face mesh: gaze in the head, and the
   inter-ocular distance against the distance-1 render); emotion measured as mouth width and
   brow height on renders against neutral.
4. Speed: seconds of CPU sampling per second of audio (8 steps; plain = one network pass,
   guided = the default cfg-audio 1.5, three passes).
Writes motion.json in --out and prints a table.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from talkinghead.api import render
from talkinghead.audio import audio_features
from talkinghead.controls import Controls
from talkinghead.evaluate import evaluate, with_landmarks
from talkinghead.generator import MotionGenerator, SampleOptions
from talkinghead.load import load_audio
from talkinghead.models import facemesh as fm
from talkinghead.motionspace import MOTION_NAMES
from talkinghead.mux import probe, read_frames

ROOT = Path(__file__).resolve().parents[1]
KEYS = ("auc_lag0", "auc_best", "bilabial_closure", "corr_lag0", "silence_ratio", "blinks_per_min",
        "blink_ms", "yaw_std", "pitch_std", "roll_std", "delta_pose_deg", "jitter")


def face_measures(video: Path) -> dict[str, float]:
    """Median inter-ocular distance (pixels), mouth width and brow height (inter-ocular units)."""
    info = probe(video)
    iod, mouth, brow = [], [], []
    frames = (f for batch in read_frames(video, info.width, info.height) for f in batch)
    for _, lm in with_landmarks(frames):
        if lm is None:
            continue
        head = fm.fit_head_frame(lm)
        iod.append(head.iod)
        mouth.append(np.linalg.norm(lm[61, :2] - lm[291, :2]) / head.iod)
        eye_centre = 0.5 * (lm[159, :2] + lm[386, :2])
        brow.append(np.linalg.norm(0.5 * (lm[105, :2] + lm[334, :2]) - eye_centre) / head.iod)
    return {"iod_px": float(np.median(iod)), "mouth_width": float(np.median(mouth)),
            "brow_height": float(np.median(brow))}


def seams(motion: np.ndarray, window: int, overlap: int) -> dict[str, float]:
    """Mean frame-to-frame change (pose degrees; expression L2) in cross-fades vs elsewhere."""
    step = np.abs(np.diff(motion[:, :3], axis=0)).sum(axis=1)
    expr = np.linalg.norm(np.diff(motion[:, 6:39], axis=0), axis=1)
    join = np.zeros(len(step), bool)
    for start in range(window - overlap, len(motion), window - overlap):
        join[max(start - 1, 0) : start + overlap] = True
    return {"pose_step_at_joins": float(step[join].mean()), "pose_step_within": float(step[~join].mean()),
            "expr_step_at_joins": float(expr[join].mean()), "expr_step_within": float(expr[~join].mean())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devdata", type=Path, default=ROOT.parent / "shared" / "devdata")
    parser.add_argument("--weights", type=Path, default=ROOT / "weights")
    parser.add_argument("--out", type=Path, default=ROOT / "out" / "motion")
    parser.add_argument("--portraits", default="p15",
                        help="comma-separated name prefixes of devdata portraits, or 'all'")
    parser.add_argument("--size", type=int, default=512, help="render side, pixels")
    parser.add_argument("--quick", action="store_true", help="skip the controls renders")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    everyone = sorted(p for p in (args.devdata / "portraits").iterdir() if p.is_file())
    wanted = args.portraits.split(",")
    photos = everyone if args.portraits == "all" else [
        p for p in everyone if any(p.name.startswith(w) for w in wanted)]
    photo = photos[0]
    audios = sorted((args.devdata / "audio").glob("*.wav"))
    results: dict = {"lip_sync": {}, "means": {}, "seams": {}, "seeds": {}, "speed": {}, "controls": {}}

    # 1. eval on renders, both generators
    for portrait in photos:
        for audio in audios:
            for motion in ("baseline", "diffusion"):
                name = f"{portrait.stem.split('_')[0]}_{audio.stem}"
                out = args.out / f"{name}_{motion}.mp4"
                render(portrait, audio, out, motion=motion, weights=args.weights, device="cpu",
                       size=args.size, force=True)
                report = evaluate(out, audio=audio).as_dict()
                results["lip_sync"].setdefault(motion, {})[name] = {k: report[k] for k in KEYS}
                print(f"{name:32s} {motion:9s} " + " ".join(
                    f"{k}={report[k]:.3g}" for k in KEYS if report[k] is not None), flush=True)
    for motion, rows in results["lip_sync"].items():
        results["means"][motion] = {k: float(np.mean([r[k] for r in rows.values() if r[k] is not None]))
                                    for k in KEYS if any(r[k] is not None for r in rows.values())}
        print(f"mean over {len(rows)} renders, {motion:9s} " + " ".join(
            f"{k}={v:.3g}" for k, v in results["means"][motion].items()), flush=True)

    # 2. seams and 4. speed, on motion alone
    generator = MotionGenerator.load(args.weights)
    cfg = generator.model.config
    for audio in audios:
        features = audio_features(load_audio(audio), 25.0)
        seconds = features.n_frames / 25.0
        for name, options in (("plain", SampleOptions(cfg_audio=1.0)), ("guided", SampleOptions())):
            started = time.perf_counter()
            motion = generator.sample(features, Controls(), seed=0, options=options)
            results["speed"].setdefault(name, []).append((time.perf_counter() - started) / seconds)
        results["seams"][audio.stem] = seams(motion, cfg.window, SampleOptions().overlap)
        # Seeds: head motion should differ, lip sync should not.
        by_seed = [generator.sample(features, Controls(), seed=seed) for seed in range(4)]
        jaw = MOTION_NAMES.index("jawOpen")
        pairs = [(a, b) for i, a in enumerate(by_seed) for b in by_seed[i + 1 :]]
        results["seeds"][audio.stem] = {
            "yaw_corr": float(np.mean([np.corrcoef(a[:, 0], b[:, 0])[0, 1] for a, b in pairs])),
            "jaw_corr": float(np.mean([np.corrcoef(a[:, jaw], b[:, jaw])[0, 1] for a, b in pairs]))}
    results["speed"] = {k: float(np.mean(v)) for k, v in results["speed"].items()}
    print("seeds (mean correlation between 4 seeds)", json.dumps(results["seeds"]), flush=True)
    print("seams", json.dumps(results["seams"]), "\nspeed (s per s of audio)", results["speed"], flush=True)

    # 3. controls, on renders of one clip
    if not args.quick:
        audio = min(audios, key=lambda a: a.stat().st_size)  # the shortest clip
        cases = {"neutral": {}, "gaze_10_-5": {"gaze": (10.0, -5.0)}, "gaze_camera": {"gaze": "camera"},
                 "distance_0.8": {"head_distance": 0.8}, "happy": {"emotion": "happy"},
                 "surprised": {"emotion": "surprised"}}
        for motion in ("diffusion",):
            for name, options in cases.items():
                out = args.out / f"controls_{motion}_{name}.mp4"
                render(photo, audio, out, motion=motion, weights=args.weights, device="cpu",
                       size=args.size, force=True, **options)
                report = evaluate(out, audio=audio).as_dict()
                row = {"gaze_yaw_mean": report["gaze_yaw_mean"], "gaze_pitch_mean": report["gaze_pitch_mean"],
                       **face_measures(out)}
                results["controls"].setdefault(motion, {})[name] = row
                print(f"controls {motion:9s} {name:14s} " + " ".join(f"{k}={v:.3g}" for k, v in row.items()),
                      flush=True)
    (args.out / "motion.json").write_text(json.dumps(results, indent=1))
    print(args.out / "motion.json")


if __name__ == "__main__":
    main()
