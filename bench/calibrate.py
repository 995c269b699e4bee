"""Calibrate the synthetic corpus's hand-set motion to real talking videos, by measurement.

    python bench/calibrate.py [--realdata ../shared/realdata] [--split train] [--cache out/video-cache]
                              [--current FILE] [--clips 60] [--seed 7] [--out bench/corpus-calibration.json]

1. Real: every video of the split, motion from the project's own encoder (cached, as
   ``talkinghead train --videos`` reads it): per video, yaw, pitch and roll sd, jaw sd, blinks
   per minute and their length, the jaw's lag behind the speech loudness (``motionstats``).
2. Corpus: ``--clips`` clips of seed ``--seed`` made with the ``--current`` calibration
   (default: none), measured the same way.
3. New scales: each current scale times real median / corpus median (pose sd per axis, jaw,
   blink rate, blink length); per axis, the sway and the quick movements (``motionstats.
   pose_bands``) get the rest of their own ratio, so that the corpus's motion is spread over
   time scales as the real heads' is (a whole-clip sd alone let the quick roll wiggles
   stand in for slow tilts); the lips' lead moved by the difference of the median lags.
   Running it again on its own output checks (and refines) the fit.

Writes the calibration with both sets of statistics; ``talkinghead corpus --calibration FILE``
makes a corpus with it.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from talkinghead import corpus
from talkinghead.generator import audio_conditioning
from talkinghead.motionstats import clip_statistics
from talkinghead.train import TRAIN_FPS, cached_video_motion

sys.path.insert(0, str(Path(__file__).resolve().parent))
from realism import split_videos

ROOT = Path(__file__).resolve().parents[1]
SPEECH_ENERGY = 81  # column of audio_conditioning: speech-band energy
AXES = ("yaw", "pitch", "roll")
KEYS = ("yaw_std", "pitch_std", "roll_std", *(f"{a}_{band}" for band in ("sway", "fast") for a in AXES),
        "delta_pose_deg", "jaw_std", "blinks_per_min", "blink_ms", "lip_lag_ms")


def medians(stats: list[dict]) -> dict[str, float]:
    return {k: float(np.median([s[k] for s in stats if s[k] is not None])) for k in KEYS}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--realdata", type=Path, default=ROOT.parent / "shared" / "realdata")
    parser.add_argument("--split", default="train")
    parser.add_argument("--cache", type=Path, default=ROOT / "out" / "video-cache")
    parser.add_argument("--current", type=Path, help="calibration to start from (default: none)")
    parser.add_argument("--clips", type=int, default=60)
    parser.add_argument("--seed", type=int, default=7, help="corpus seed of the measured clips")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "corpus-calibration.json")
    args = parser.parse_args()

    real_stats = []
    videos = split_videos(args.realdata, args.split)
    for video in videos:
        extracted = cached_video_motion(video, args.cache)
        if extracted is not None:
            motion, audio = extracted
            real_stats.append(clip_statistics(motion, TRAIN_FPS, audio[:, SPEECH_ENERGY]))
    real = medians(real_stats)

    current = corpus.Calibration.load(args.current) if args.current else corpus.Calibration()
    corpus.CALIBRATION = current  # the forked clip makers inherit it
    made = []
    for arrays, motion, _, _ in corpus.make_clips(args.seed, range(args.clips), args.workers):
        audio = audio_conditioning(corpus.features_from_arrays(arrays, corpus.FPS))
        made.append(clip_statistics(motion, corpus.FPS, audio[:, SPEECH_ENERGY]))
    synthetic = medians(made)

    ratio = {k: real[k] / max(synthetic[k], 1e-9) for k in KEYS if k != "lip_lag_ms"}

    def band(scales: tuple[float, ...], name: str) -> tuple[float, ...]:
        # head_scale multiplies every band: a band's own scale takes the rest of its ratio
        return tuple(round(s * ratio[f"{a}_{name}"] / ratio[f"{a}_std"], 3)
                     for s, a in zip(scales, AXES, strict=True))

    calibration = replace(
        current,
        head_scale=tuple(round(s * ratio[f"{a}_std"], 3)
                         for s, a in zip(current.head_scale, AXES, strict=True)),
        sway_scale=band(current.sway_scale, "sway"),
        fast_scale=band(current.fast_scale, "fast"),
        jaw_scale=round(current.jaw_scale * ratio["jaw_std"], 3),
        blink_rate_scale=round(current.blink_rate_scale * ratio["blinks_per_min"], 3),
        blink_length_scale=round(current.blink_length_scale * ratio["blink_ms"], 3),
        anticipation_s=round(current.anticipation_s
                             - (real["lip_lag_ms"] - synthetic["lip_lag_ms"]) / 1000, 3))
    result = {"calibration": asdict(calibration), "real": real, "corpus": synthetic,
              "real_videos": len(real_stats), "split": args.split, "corpus_clips": len(made),
              "corpus_seed": args.seed, "started_from": asdict(current),
              "command": "python bench/calibrate.py " + " ".join(sys.argv[1:])}
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"{'':16s}{'real':>10s}{'corpus':>10s}")
    for k in KEYS:
        print(f"{k:16s}{real[k]:10.3f}{synthetic[k]:10.3f}")
    print(json.dumps(asdict(calibration)))


if __name__ == "__main__":
    main()
